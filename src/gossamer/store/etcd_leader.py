"""One leader per role among the control-plane replicas on one etcd, with a fencing token.

The leader key ``<prefix>/leader/<role>`` holds the leading replica's name and is bound to
its lease (``etcd_lease.py``). Every ``every`` seconds each replica keeps its lease alive
and sends one transaction: *if the key does not exist, create it* (campaign) and, either
way, read it. The replica whose lease holds the key leads, and the key's create revision
is its fencing token: a singleton write compares it inside its own transaction
(``EtcdStore.apply(fence=...)``), so a replica that lost the key can never write as
leader, whatever it believes.

The leader stops leading at once when a round fails (it cannot tell whether its lease
still holds); when etcd answers again and its key is still there under its lease, it leads
again with the same token. A leader that stops revokes its lease, so another replica leads
within ``every`` seconds; one that dies leaves its key until the lease expires (``ttl``).
A campaign writes one revision; a round that changes nothing writes none.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.store.base import Fence
from gossamer.store.election import Election
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_lease import EtcdLease, what_failed

log = logging.getLogger(__name__)

#: seconds a dead leader's key outlives it (its lease's time to live)
LEASE_TTL = 10
#: seconds between two rounds
EVERY = 1.0


class EtcdLeader:
    """Campaigns for ``role`` in the etcd of ``store`` until cancelled, then resigns (its
    lease revoked). Implements ``controlplane.leadership.Leadership``."""

    def __init__(
        self,
        store: EtcdStore,
        role: str,
        *,
        replica: str | None = None,
        ttl: int = LEASE_TTL,
        every: float = EVERY,
    ) -> None:
        self.store = store
        self.role = role
        self.election = Election(role, replica or secrets.token_hex(6))
        self.lease = EtcdLease(store.connection, ttl, what=f"leadership of {role!r}")
        self.every = every
        self._failing = False
        #: rounds done
        self.rounds = 0

    # -- Leadership --------------------------------------------------------------------------

    @property
    def replica(self) -> str:
        return self.election.replica

    @property
    def leading(self) -> bool:
        return self.election.leading

    @property
    def leader(self) -> str | None:
        return self.election.leader

    def fence(self) -> Fence | None:
        return self.election.fence()

    async def changed(self) -> None:
        await self.election.changed()

    # -- the rounds --------------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds every ``every`` seconds until cancelled; never ends the control plane."""
        try:
            while True:
                try:
                    await self.round()
                    if self._failing:
                        log.info("leadership of %r: etcd answers again", self.role)
                    self._failing = False
                except Exception as e:  # a broken etcd stream, in any of its forms
                    if not self._failing:
                        log.warning(
                            "leadership of %r: %s; %s",
                            self.role,
                            what_failed(e),
                            "stepping down until etcd answers"
                            if self.leading
                            else "not campaigning until etcd answers",
                        )
                    self._failing = True
                    self.election.saw(None)
                    self.lease.drop_stream()
                    self.store.connection.next_member()
                await asyncio.sleep(self.every)
        finally:
            self.election.saw(None)
            await self.lease.revoke(self.store.closed)

    async def round(self) -> None:
        """Keep the lease alive (or get one); create the leader key if there is none; learn
        who holds it."""
        conn = self.store.connection
        conn.check_open()
        await self.lease.keep()
        key = self.store.keys.leader_key(self.role)
        read = rpc.RequestOp(request_range=rpc.RangeRequest(key=key))
        absent = rpc.Compare(
            key=key,
            target=rpc.Compare.CompareTarget.CREATE,
            result=rpc.Compare.CompareResult.EQUAL,
            create_revision=0,
        )
        put = rpc.PutRequest(key=key, value=self.replica.encode(), lease=self.lease.id)
        answer = await conn.txn(
            rpc.TxnRequest(
                compare=[absent],
                success=[rpc.RequestOp(request_put=put), read],
                failure=[read],
            )
        )
        kvs = answer.responses[-1].response_range.kvs
        if kvs and int(kvs[0].lease) == self.lease.id:
            if not self.leading:
                log.info("leadership of %r: this replica (%s) leads", self.role, self.replica)
            self.election.won(int(kvs[0].create_revision))
        else:
            self.election.saw(bytes(kvs[0].value).decode(errors="replace") if kvs else None)
        self.rounds += 1
