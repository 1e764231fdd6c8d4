"""Cross-resource checks of ExternalServices: names shared with Services without collisions,
dependencies on them, Routes and TrafficPolicies for them, and no ``caFile`` left unread."""

from __future__ import annotations

from gossamer.errors import FieldError
from gossamer.model.route import Route
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Dependency


def external_dependency(
    snap: ModelSnapshot, ref: Ref, dep: Dependency, path: str, where: str, out: list[FieldError]
) -> tuple[str, int] | None:
    """Where the sidecar listens for ``dep`` on the ExternalService ``ref`` (None, with an
    error, when the dependency names a port: an external service has exactly one)."""
    ext = snap.external_services[ref]
    if dep.port is not None:
        out.append(
            FieldError(
                f"ExternalService {ref[0]}/{ref[1]} has one port ({ext.spec.port}): remove port "
                "(localPort sets where the app dials it)",
                f"{path}.port",
                where,
            )
        )
        return None
    return (dep.localAddress or snap.local_addresses[ref], dep.localPort or ext.spec.port)


def check_route_target(snap: ModelSnapshot, r: Route, out: list[FieldError]) -> bool:
    """Check a Route whose ``service`` is an ExternalService (True: it is one, and checked
    here). Its rules shape calls to that service only: every destination and mirror names
    it, without port or subset."""
    ns = r.metadata.namespace
    target = (ns, r.spec.service or "")
    ext = snap.external_services.get(target)
    if ext is None or target in snap.services:
        return False
    where = str(r.key)
    if not ext.is_http:
        out.append(
            FieldError(
                f"routes are HTTP rules, but ExternalService {target[0]}/{target[1]} is "
                f"{ext.spec.protocol}: only http and https external services take Routes",
                "spec.service",
                where,
            )
        )
    for i, rule in enumerate(r.spec.rules):
        targets = [(f"destinations[{j}]", d) for j, d in enumerate(rule.destinations or [])]
        if rule.mirror is not None:
            targets.append(("mirror", rule.mirror))  # type: ignore[arg-type]
        for at, d in targets:
            path = f"spec.rules[{i}].{at}"
            if (d.namespace or ns, d.service) != target:
                out.append(
                    FieldError(
                        f"a Route for ExternalService {target[1]} sends only to it: name "
                        f"service {target[1]} here (Routes of mesh services cannot send to "
                        "external ones either)",
                        f"{path}.service",
                        where,
                    )
                )
            elif d.port is not None or getattr(d, "subset", None):
                out.append(
                    FieldError(
                        "an ExternalService has one port and no subsets: remove port and subset",
                        path,
                        where,
                    )
                )
    return True


def is_external_destination(snap: ModelSnapshot, ref: Ref) -> bool:
    return ref in snap.external_services and ref not in snap.services


def _check_policy(snap: ModelSnapshot, p: TrafficPolicy, out: list[FieldError]) -> None:
    where = str(p.key)
    if p.spec.subset:
        out.append(
            FieldError("an ExternalService has no subsets: remove subset", "spec.subset", where)
        )
    if p.spec.rateLimit is not None:
        out.append(
            FieldError(
                "rateLimit is enforced by a service's own sidecars, and an ExternalService "
                "has none: limit its callers with a Route's rateLimit (Route service: "
                f"{p.spec.service}) instead",
                "spec.rateLimit",
                where,
            )
        )


def _check_via(snap: ModelSnapshot, out: list[FieldError]) -> None:
    """``via.gateway`` names an existing Gateway, and the port it would listen on there is
    free: not the Gateway's own ports, not another external service's through it."""
    taken: dict[tuple[str, str, int], str] = {}
    for ref, ext in sorted(snap.external_services.items()):
        gw_ref, port = ext.gateway, ext.gateway_port
        if gw_ref is None or port is None:
            continue
        where = str(ext.key)
        gw = snap.gateways.get(gw_ref)
        if gw is None:
            known = sorted(f"{ns}/{n}" for ns, n in snap.gateways)
            out.append(
                FieldError(
                    f"Gateway {gw_ref[0]}/{gw_ref[1]} does not exist: name an existing "
                    f"Gateway (spec.via.namespace for another namespace; existing: "
                    f"{', '.join(known) or 'none'}), or remove via to reach it directly",
                    "spec.via.gateway",
                    where,
                )
            )
            continue
        own = [gw.spec.port]
        if gw.spec.tls is not None and gw.spec.tls.httpPort is not None:
            own.append(gw.spec.tls.httpPort)
        field = "spec.via.port" if ext.spec.via and ext.spec.via.port else "spec.port"
        if port in own:
            out.append(
                FieldError(
                    f"Gateway {gw_ref[0]}/{gw_ref[1]} serves clients on port {port}: give "
                    "spec.via.port, a free port the gateway listens on for this service",
                    field,
                    where,
                )
            )
            continue
        other = taken.setdefault((*gw_ref, port), f"{ref[0]}/{ref[1]}")
        if other != f"{ref[0]}/{ref[1]}":
            out.append(
                FieldError(
                    f"ExternalService {other} goes through Gateway {gw_ref[0]}/{gw_ref[1]} on "
                    f"port {port} too: give one of them another spec.via.port",
                    field,
                    where,
                )
            )


def check_external_services(snap: ModelSnapshot, out: list[FieldError]) -> None:
    """Append what is inconsistent about ExternalServices (and policies for them) to ``out``."""
    for ref, ext in snap.external_services.items():
        where = str(ext.key)
        if ref in snap.services:
            out.append(
                FieldError(
                    f"Service {ref[0]}/{ref[1]} has this name: Services and ExternalServices "
                    "share names (a dependency names either): rename one",
                    "metadata.name",
                    where,
                )
            )
        if ext.spec.tls is not None and ext.spec.tls.caFile is not None:
            out.append(
                FieldError(
                    "caFile is read by gossamer apply (relative to the manifest) and sent as "
                    "ca: send the PEM in tls.ca (proxies never read CA files)",
                    "spec.tls.caFile",
                    where,
                )
            )
    _check_via(snap, out)
    for p in snap.resources.values():
        if isinstance(p, TrafficPolicy):
            ref = (p.metadata.namespace, p.spec.service)
            if is_external_destination(snap, ref):
                _check_policy(snap, p, out)
