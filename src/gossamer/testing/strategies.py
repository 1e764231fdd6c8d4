"""Hypothesis strategies that generate valid manifests of every kind (the model's property
tests and the config fuzz bench, `bench/fuzz_config.py`). Needs `hypothesis` (a dev
dependency): import this module explicitly; `gossamer.testing` does not."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gossamer.types import API_VERSION, Manifest

names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
label_keys = st.from_regex(
    r"([a-z0-9.-]{1,8}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?", fullmatch=True
)
labels = st.dictionaries(label_keys, st.text(max_size=8), max_size=3)
ports = st.integers(min_value=1, max_value=65535)
loopbacks = st.builds(
    lambda a, b, c: f"127.{a}.{b}.{c}",
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(1, 254),
) | st.just("::1")
ips = loopbacks | st.ip_addresses().map(str)


@st.composite
def durations(draw: st.DrawFn, min_ms: int = 0) -> Any:
    """A whole number of milliseconds (at least ``min_ms``), written in any accepted form."""
    ms = draw(st.integers(min_value=min_ms, max_value=10**8))
    form = draw(st.sampled_from(["ms", "s", "m", "h", "int", "float"]))
    if form == "ms":
        return f"{ms}ms"
    if form == "s":
        return f"{ms / 1000:.3f}s"
    if form == "m" and ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if form == "m" and ms % 6_000 == 0:
        return f"{ms / 60_000:.1f}m"
    if form == "h" and ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    if form == "int" and ms % 1000 == 0:
        return ms // 1000
    if form == "float" and ms % 250 == 0:
        return ms / 1000
    return f"{ms}ms"


def envelope(kind: str, metadata: dict[str, Any], spec: Any) -> Manifest:
    out: Manifest = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    return out


metadatas = st.fixed_dictionaries(
    {"name": names},
    optional={
        "namespace": names,
        "labels": labels,
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    },
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


meshes = st.builds(
    envelope,
    st.just("Mesh"),
    metadatas,
    st.none()
    | optional(
        trustDomain=st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}", fullmatch=True),
        defaults=optional(
            requestTimeout=durations(),
            idleTimeout=durations(),
            connectTimeout=durations(min_ms=1),
            streamIdleTimeout=durations(),
            drainTimeout=durations(),
        ),
        underscoreHeaders=st.sampled_from(["reject", "drop", "allow"]),
        debounceMs=st.integers(0, 10_000),
    ),
)

service_ports = st.lists(
    st.fixed_dictionaries(
        {"name": names, "port": ports},
        optional={"protocol": st.sampled_from(["http", "http2", "grpc", "tcp"])},
    ),
    min_size=1,
    max_size=4,
    unique_by=(lambda p: p["name"], lambda p: p["port"]),
)
services = st.builds(
    envelope,
    st.just("Service"),
    metadatas,
    st.fixed_dictionaries({"ports": service_ports}, optional={"localAddress": loopbacks}),
)

dependencies = st.fixed_dictionaries(
    {"service": names},
    optional={"namespace": names, "port": names, "localAddress": loopbacks, "localPort": ports},
)


@st.composite
def workload_specs(draw: st.DrawFn) -> dict[str, Any]:
    sidecar = draw(st.booleans())
    address = draw(ips)
    # the app listens on another address than the sidecar, so any port pair is valid
    app_address = draw(ips.filter(lambda a: a != address))
    n = draw(st.integers(1, 3))
    listen = draw(st.lists(ports, min_size=n, max_size=n, unique=True))
    # each app port is distinct too (a workload may not listen twice on one address:port)
    app_ports = draw(st.lists(ports, min_size=n, max_size=n, unique=True))
    port_list: list[dict[str, Any]] = []
    for p, app_port in zip(listen, app_ports, strict=True):
        entry: dict[str, Any] = {"port": p}
        if draw(st.booleans()):
            entry["name"] = draw(names)
        if sidecar:
            entry["appPort"] = app_port
        port_list.append(entry)
    spec: dict[str, Any] = {
        "service": draw(names),
        "address": address,
        "appAddress": app_address,
        "ports": port_list,
        "sidecar": sidecar,
    }
    spec.update(
        draw(
            optional(
                host=names,
                zone=names,
                health=st.sampled_from(["healthy", "unhealthy", "draining"]),
                weight=st.integers(1, 128),
            )
        )
    )
    if sidecar:
        spec["dependencies"] = draw(st.lists(dependencies, max_size=3))
    return spec


workloads = st.builds(envelope, st.just("Workload"), metadatas, workload_specs())

gateways = st.builds(
    envelope,
    st.just("Gateway"),
    metadatas,
    st.fixed_dictionaries(
        {"port": ports},
        optional={
            "address": ips,
            "hosts": st.lists(
                st.sampled_from(["*", "shop.example.com", "*.example.com"]), min_size=1, max_size=3
            ),
            "trustedHops": st.integers(0, 10),
        },
    ),
)

paths = st.one_of(
    st.builds(lambda p: {"exact": p}, st.from_regex(r"/[a-z/]{0,8}", fullmatch=True)),
    st.builds(lambda p: {"prefix": p}, st.from_regex(r"/[a-z/]{0,8}", fullmatch=True)),
    st.builds(lambda p: {"regex": p}, st.sampled_from(["^/a$", "/items/[0-9]+", ".*"])),
)
header_names = st.from_regex(r":?[A-Za-z0-9_-]{1,10}", fullmatch=True)
headers = st.builds(
    lambda name, kind, invert: {"name": name, **kind, **invert},
    header_names,
    st.one_of(
        st.builds(lambda v: {"exact": v}, st.text(max_size=5)),
        st.builds(lambda v: {"prefix": v}, st.text(min_size=1, max_size=5)),  # Envoy: not ""
        st.builds(lambda v: {"regex": v}, st.sampled_from(["^a", "b+", "[0-9]"])),
        st.builds(lambda v: {"present": v}, st.booleans()),
    ),
    optional(invert=st.booleans()),
)
matches = optional(
    path=paths,
    headers=st.lists(headers, max_size=2),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
destinations = st.fixed_dictionaries(
    {"service": names},
    optional={
        "namespace": names,
        "port": names,
        "subset": labels,
        "weight": st.integers(1, 100),  # at least one weight > 0 per rule
    },
)
retry_on = st.sampled_from(["5xx", "gateway-error", "reset", "connect-failure", "unavailable"])
rules = st.fixed_dictionaries(
    {"destinations": st.lists(destinations, min_size=1, max_size=3)},
    optional={
        "matches": st.lists(matches, min_size=1, max_size=2),
        "timeout": durations(),
        "retries": optional(
            attempts=st.integers(0, 10),
            perTryTimeout=durations(),
            retryOn=st.lists(retry_on, min_size=1, max_size=3),
        ),
    },
)
route_targets = st.one_of(
    st.builds(lambda s: {"service": s}, names),
    st.builds(
        lambda g, h: {"gateways": g, **h},
        st.lists(names, min_size=1, max_size=2),
        optional(hosts=st.lists(st.sampled_from(["*", "a.example.com"]), min_size=1)),
    ),
)
routes = st.builds(
    envelope,
    st.just("Route"),
    metadatas,
    st.builds(
        lambda target, rs: {**target, "rules": rs},
        route_targets,
        st.lists(rules, min_size=1, max_size=3),
    ),
)

manifests = st.one_of(meshes, services, workloads, gateways, routes)

#: the service names a coherent mesh draws from (few, so references resolve)
SERVICE_POOL = ("api", "web", "db", "cache")


def _port_name(draw: st.DrawFn, service: dict[str, Any] | None) -> dict[str, Any]:
    """``{"port": name}`` of one of ``service``'s ports, or ``{}`` when it has only one."""
    if service is None or (len(service["spec"]["ports"]) == 1 and draw(st.booleans())):
        return {}
    return {"port": draw(st.sampled_from([p["name"] for p in service["spec"]["ports"]]))}


@st.composite
def coherent_meshes(draw: st.DrawFn) -> list[Manifest]:
    """A small mesh whose references mostly resolve: 1-3 services, 1-3 workloads of them
    (sidecars depending on them), maybe a gateway ``edge``, 0-2 routes to them; everything
    in namespace ``default``. The pieces are the valid manifests above, re-pointed at each
    other; what is still inconsistent (a port name, a shared address) is for the model's
    reference checks to refuse."""
    svc_names = draw(st.lists(st.sampled_from(SERVICE_POOL), min_size=1, max_size=3, unique=True))
    out: list[Manifest] = []
    if draw(st.booleans()):
        out.append(draw(meshes))
    svcs: dict[str, dict[str, Any]] = {}
    for name in svc_names:
        svc = draw(services)
        svc["metadata"] = {"name": name}
        svcs[name] = svc
        out.append(svc)
    sidecars: dict[str, bool] = {}
    for i in range(draw(st.integers(1, 3))):
        w = draw(workloads)
        w["metadata"] = {"name": f"w{i}"}
        spec = w["spec"]
        spec["service"] = own = draw(st.sampled_from(svc_names))
        # every workload of a service has a sidecar, or none has
        sidecar = spec["sidecar"] = sidecars.setdefault(own, spec["sidecar"])
        for p in spec["ports"]:
            if sidecar:
                p.setdefault("appPort", p["port"])
            else:
                p.pop("appPort", None)
        spec["dependencies"] = spec.get("dependencies", []) if sidecar else []
        own_ports = [p["name"] for p in svcs[own]["spec"]["ports"]]
        for j, p in enumerate(spec["ports"]):
            p["name"] = own_ports[j % len(own_ports)]
        for dep in spec.get("dependencies", []):
            dep.pop("namespace", None)
            dep.pop("port", None)
            dep["service"] = target = draw(st.sampled_from(svc_names))
            dep.update(_port_name(draw, svcs[target]))
        out.append(w)
    gateway_names = []
    if draw(st.booleans()):
        g = draw(gateways)
        g["metadata"] = {"name": "edge"}
        gateway_names.append("edge")
        out.append(g)
    for i in range(draw(st.integers(0, 2))):
        r = draw(routes)
        r["metadata"] = {"name": f"r{i}"}
        spec = r["spec"]
        if "gateways" in spec and gateway_names:
            spec["gateways"] = gateway_names
        else:
            spec.pop("gateways", None)
            spec.pop("hosts", None)
            spec["service"] = draw(st.sampled_from(svc_names))
        for rule in spec["rules"]:
            for d in rule["destinations"]:
                d.pop("namespace", None)
                d.pop("port", None)
                d["service"] = target = draw(st.sampled_from(svc_names))
                d.update(_port_name(draw, svcs[target]))
        out.append(r)
    return out
