"""Chains without Envoy's tracer, beside chains with it, in one run of
``bench/telemetry_chain.py``: what the tracer configured at 0 % sampling costs inside the
``stats`` figure.

The translator gives every HCM the OpenTelemetry tracer whenever a telemetry service is
configured, so that changing ``Mesh.spec.tracing.sampling`` pushes route tables only and
drains no listener (docs/telemetry.md, "Traces"). The control planes of a chain bench run
in the bench's own process, so a plane whose Mesh has the trust domain ``TRUST_DOMAIN`` has
the tracer taken out of every HCM of every proxy it serves (a copy: the translator's
memoised listeners are shared). Only for the bench.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from gossamer.model.snapshot import ModelSnapshot
from gossamer.translate.hcm import HCM_FILTER
from gossamer.translate.proxy import ProxyResources, Translator

TRUST_DOMAIN = "untraced.bench.local"


def untraced(listener: listener_pb2.Listener) -> listener_pb2.Listener:
    """A copy of ``listener`` whose HTTP connection managers have no tracer."""
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    for chain in out.filter_chains:
        for f in chain.filters:
            if f.name != HCM_FILTER:
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            hcm.ClearField("tracing")
            f.typed_config.Pack(hcm, deterministic=True)
    return out


def install() -> None:
    """Every translator of this process serves ``TRUST_DOMAIN`` planes untraced."""
    original: Callable[..., ProxyResources] = Translator.proxy

    def proxy(self: Translator, snap: ModelSnapshot, *args: Any, **kwargs: Any) -> ProxyResources:
        out = original(self, snap, *args, **kwargs)
        if snap.mesh.spec.trustDomain == TRUST_DOMAIN:
            out.listeners.update({name: untraced(lst) for name, lst in out.listeners.items()})
        return out

    Translator.proxy = proxy  # type: ignore[method-assign]
