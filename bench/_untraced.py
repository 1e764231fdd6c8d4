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

from gossamer.model.snapshot import ModelSnapshot
from gossamer.translate.hcm import each_hcm
from gossamer.translate.proxy import ProxyResources, Translator

TRUST_DOMAIN = "untraced.bench.local"


def untraced(listener: listener_pb2.Listener) -> listener_pb2.Listener:
    """A copy of ``listener`` whose HTTP connection managers have no tracer."""
    return each_hcm(listener, lambda hcm: hcm.ClearField("tracing"))


def install() -> None:
    """Every translator of this process serves ``TRUST_DOMAIN`` planes untraced."""
    original: Callable[..., ProxyResources] = Translator.proxy

    def proxy(self: Translator, snap: ModelSnapshot, *args: Any, **kwargs: Any) -> ProxyResources:
        out = original(self, snap, *args, **kwargs)
        if snap.mesh.spec.trustDomain == TRUST_DOMAIN:
            out.listeners.update({name: untraced(lst) for name, lst in out.listeners.items()})
        return out

    Translator.proxy = proxy  # type: ignore[method-assign]
