"""The seed of a mesh's stable local addresses (``AddressSeed``, ``model.internal``).

Services without an explicit ``localAddress`` are hashed into 127.128.0.0/9
(``ModelSnapshot.local_addresses``). Hashing ``namespace/name`` alone gave every mesh the
same addresses: two meshes on one machine (two demos, two test workers) each had
``default/reviews`` at 127.139.215.108, so one sidecar could not bind its outbound listener
and its app's requests reached the other mesh. So each store gets a random seed, mixed into
the hash, at its first start, before anything else is written; it is a record like any
other, so restarts keep it and a backup carries it. A store created before seeds (it has
resources but no seed) is given the seed "", which hashes as before: upgrading never moves
the addresses running apps dial.
"""

from __future__ import annotations

import logging
import secrets

from gossamer.controlplane.plane import ControlPlane
from gossamer.model.internal import ADDRESS_SEED_KEY, AddressSeed
from gossamer.types import API_VERSION

log = logging.getLogger(__name__)


def seed_record(seed: str) -> AddressSeed:
    key = ADDRESS_SEED_KEY
    return AddressSeed.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace},
            "spec": {"seed": seed},
        }
    )


async def ensure_address_seed(plane: ControlPlane) -> str:
    """The store's address seed, written first if it has none: random for a fresh store,
    "" (the hash of before seeds) for one that already holds resources. Call it right
    after ``plane.load()``, before anything else writes to the store."""
    model = plane.model
    assert model is not None, "load the plane first"
    if isinstance(model.resources.get(ADDRESS_SEED_KEY), AddressSeed):
        return model.address_seed
    seed = "" if model.resources else secrets.token_hex(16)
    await plane.apply([seed_record(seed)], internal=True)
    if not seed:
        log.info("this store predates address seeds: its services keep their addresses")
    return seed
