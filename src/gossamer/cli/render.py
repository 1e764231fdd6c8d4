"""How the CLI shows things: resource and proxy tables, apply results, YAML and JSON."""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gossamer.types import Manifest

Column = tuple[str, Callable[[Manifest], str]]


def _spec(m: Manifest) -> dict[str, Any]:
    spec = m.get("spec")
    return spec if isinstance(spec, dict) else {}


def _meta(m: Manifest, field: str, default: str = "") -> str:
    meta = m.get("metadata")
    return str(meta.get(field, default)) if isinstance(meta, dict) else default


def _join(items: Sequence[object]) -> str:
    return ", ".join(str(i) for i in items) or "-"


def _service_ports(m: Manifest) -> str:
    return _join(
        [
            f"{p.get('name')}:{p.get('port')}/{p.get('protocol', 'http')}"
            for p in _spec(m).get("ports", [])
        ]
    )


def _workload_ports(m: Manifest) -> str:
    return _join(
        [
            f"{p['port']}->{p['appPort']}" if p.get("appPort") else str(p.get("port"))
            for p in _spec(m).get("ports", [])
        ]
    )


def _dependencies(m: Manifest) -> str:
    ns = _meta(m, "namespace", "default")
    deps = _spec(m).get("dependencies", [])
    return _join(
        [
            d["service"] if d.get("namespace", ns) == ns else f"{d['namespace']}/{d['service']}"
            for d in deps
        ]
    )


def _route_target(m: Manifest) -> str:
    spec = _spec(m)
    if spec.get("service"):
        return f"service {spec['service']}"
    return "gateways " + _join(spec.get("gateways", []))


def _destinations(m: Manifest) -> str:
    out: list[str] = []
    for rule in _spec(m).get("rules", []):
        for d in rule.get("destinations", []):
            subset = ",".join(f"{k}={v}" for k, v in d.get("subset", {}).items())
            out.append(
                f"{d.get('service')}{'{' + subset + '}' if subset else ''}:{d.get('weight', 100)}"
            )
    return _join(out)


def _policy_target(m: Manifest) -> str:
    spec = _spec(m)
    subset = spec.get("subset") or {}
    labels = ",".join(f"{k}={v}" for k, v in sorted(subset.items()))
    return f"{spec.get('service', '')}{f' ({labels})' if labels else ''}"


def _policy_settings(m: Manifest) -> str:
    fields = ("circuitBreaker", "retryBudget", "outlierDetection", "healthCheck", "rateLimit")
    return _join([f for f in fields if f in _spec(m)])


_NS: Column = ("NAMESPACE", lambda m: _meta(m, "namespace", "default"))
_NAME: Column = ("NAME", lambda m: _meta(m, "name"))

COLUMNS: dict[str, list[Column]] = {
    "Service": [
        _NS,
        _NAME,
        ("PORTS", _service_ports),
        ("LOCAL ADDRESS", lambda m: str(_spec(m).get("localAddress", "(allocated)"))),
    ],
    "Workload": [
        _NS,
        _NAME,
        ("SERVICE", lambda m: str(_spec(m).get("service", ""))),
        ("ADDRESS", lambda m: str(_spec(m).get("address", ""))),
        ("PORTS", _workload_ports),
        ("HOST", lambda m: str(_spec(m).get("host") or "-")),
        ("ZONE", lambda m: str(_spec(m).get("zone") or "-")),
        ("HEALTH", lambda m: str(_spec(m).get("health", ""))),
        ("DEPENDS ON", _dependencies),
    ],
    "Gateway": [
        _NS,
        _NAME,
        ("LISTEN", lambda m: f"{_spec(m).get('address', '127.0.0.1')}:{_spec(m).get('port')}"),
        ("HOSTS", lambda m: _join(_spec(m).get("hosts", ["*"]))),
    ],
    "Route": [
        _NS,
        _NAME,
        ("FOR", _route_target),
        ("RULES", lambda m: str(len(_spec(m).get("rules", [])))),
        ("DESTINATIONS:WEIGHT", _destinations),
    ],
    "TrafficPolicy": [
        _NS,
        _NAME,
        ("SERVICE", _policy_target),
        ("LB", lambda m: str(_spec(m).get("loadBalancer", {}).get("algorithm", "roundRobin"))),
        ("SETS", _policy_settings),
    ],
    "Mesh": [
        _NAME,
        ("TRUST DOMAIN", lambda m: str(_spec(m).get("trustDomain", ""))),
        ("DEBOUNCE", lambda m: f"{_spec(m).get('debounceMs', '')}ms"),
    ],
}
_GENERIC: list[Column] = [
    _NS,
    _NAME,
    (
        "LABELS",
        lambda m: _join(
            [f"{k}={v}" for k, v in (m.get("metadata", {}).get("labels") or {}).items()]
        ),
    ),
]


def with_local_addresses(
    items: Sequence[Manifest], addresses: dict[tuple[str, str, str], str]
) -> list[Manifest]:
    """Services with the address apps dial filled in where the control plane allocated it
    (for display: ``-o yaml`` keeps what was applied)."""
    out: list[Manifest] = []
    for m in items:
        key = (str(m.get("kind")), _meta(m, "namespace", "default"), _meta(m, "name"))
        address = addresses.get(key)
        if address and not _spec(m).get("localAddress"):
            m = {**m, "spec": {**_spec(m), "localAddress": address}}
        out.append(m)
    return out


def resource_table(kind: str, items: Sequence[Manifest]) -> Table:
    columns = COLUMNS.get(kind, _GENERIC)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for m in items:
        table.add_row(*(Text(fn(m)) for _, fn in columns))
    return table


# -- proxies -----------------------------------------------------------------------------

TYPES = ("clusters", "endpoints", "listeners", "routes")
_STATE_STYLE = {"synced": "green", "stale": "yellow", "rejected": "red", "disconnected": "dim"}


def _sds(acked: object) -> str:
    """``certificate/bundle`` versions an Envoy ACKed over SDS; - without a report."""
    if not isinstance(acked, dict) or not acked:
        return "-"
    cert, bundle = acked.get("identity"), acked.get("trust-bundle")
    return f"{short(str(cert or ''))}/{short(str(bundle or ''))}"


def short(version: str) -> str:
    return version[:7] if version else "-"


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _last_nack(proxy: dict[str, Any]) -> str:
    nacks = [(t["lastNack"], t["type"]) for t in proxy.get("types", []) if t.get("lastNack")]
    if not nacks:
        return "-"
    nack, type_ = max(nacks, key=lambda n: float(n[0].get("at", 0)))
    return f"{type_}: {nack.get('message', '')}"


def proxy_table(proxies: Sequence[dict[str, Any]], now: float | None = None) -> Table:
    """One row per proxy; each type shows ``sent/acked`` versions (short); SDS shows the
    certificate serial and trust-bundle version its Envoy ACKed (short)."""
    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in (
        "PROXY",
        "KIND",
        "HOST",
        "ENVOY",
        "STATE",
        *(t.upper() for t in TYPES),
        "SDS CERT/BUNDLE",
        "LAST NACK",
        "LAST SEEN",
    ):
        table.add_column(header, overflow="fold")
    for p in proxies:
        by_type = {t["type"]: t for t in p.get("types", [])}
        versions = [
            f"{short(by_type[t]['sentVersion'])}/{short(by_type[t]['ackedVersion'])}"
            if t in by_type
            else "-"
            for t in TYPES
        ]
        state = str(p.get("state", ""))
        table.add_row(
            Text(f"{p.get('namespace')}/{p.get('name')}"),
            Text(str(p.get("kind", ""))),
            Text(str(p.get("host") or "-")),
            Text(str(p.get("envoyVersion") or "-")),
            Text(state, style=_STATE_STYLE.get(state, "")),
            *(Text(v) for v in versions),
            Text(_sds(p.get("sds"))),
            Text(_last_nack(p)),
            Text(ago(now - float(p.get("lastSeen", now)))),
        )
    return table


# -- apply results -----------------------------------------------------------------------

_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}
_VERBS = (
    ("created", "created"),
    ("updated", "updated"),
    ("unchanged", "unchanged"),
    ("deleted", "deleted"),
)


def print_result(
    console: Console,
    result: dict[str, Any],
    *,
    dry_run: bool = False,
    changes: dict[str, str] | None = None,
    waited: bool = False,
) -> None:
    """One line per resource, then the revision (and who ACKed, after a wait: ``waited``
    says so also when no proxy's config changed, so nothing was waited for).

    ``changes`` maps an updated resource to a unified diff of its manifest (dry runs).
    """
    diff = result.get("diff", {})
    for field, verb in _VERBS:
        for key in diff.get(field, []):
            word = f"would be {verb}" if dry_run and field != "unchanged" else verb
            console.print(Text(f"{key} {word}"), soft_wrap=True)
            if changes and key in changes:
                for line in changes[key].splitlines():
                    style = (
                        _DIFF_STYLE.get(line[:1], "")
                        if not line.startswith(("+++", "---"))
                        else "bold"
                    )
                    console.print(Text(line, style=style), soft_wrap=True)
    if dry_run:
        console.print(Text("dry run: nothing was stored"))
        return
    line = f"revision {result.get('revision')}"
    acked = result.get("ackedBy") or []
    if acked:
        line += f"; acked by {len(acked)} prox{'y' if len(acked) == 1 else 'ies'}: {_join(acked)}"
    elif waited:
        line += (
            "; waited for no proxy: no connected proxy's config changed (none routes what "
            "was applied yet; `gossamer proxy-status` lists the connected ones)"
        )
    console.print(Text(line), soft_wrap=True)


def manifest_diff(key: str, stored: Manifest, applied: Manifest) -> str:
    """A unified diff of two manifests as sorted YAML."""
    lines = difflib.unified_diff(
        to_yaml(stored).splitlines(keepends=True),
        to_yaml(applied).splitlines(keepends=True),
        fromfile=f"{key} (stored)",
        tofile=f"{key} (applied)",
    )
    return "".join(lines)


# -- machine formats (plain text: never wrapped or coloured) -----------------------------


def to_yaml(manifest: object) -> str:
    return yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False)


def to_yaml_stream(manifests: Sequence[object]) -> str:
    """Documents separated by ``---``: what ``gossamer apply -f`` reads back."""
    return "---\n".join(to_yaml(m) for m in manifests)


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
