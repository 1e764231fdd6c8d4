"""How ``gossamer describe`` prints what the API assembled (``controlplane.describe``):
sections in the order a request meets them, as Rich renderables (plain text when piped)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

_STATE_STYLE = {
    "acked": "green",
    "pending": "yellow",
    "rejected": "red",
    "disconnected": "dim",
    "never connected": "dim",
}


def _table(*headers: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for h in headers:
        table.add_column(h, overflow="fold")
    return table


def _title(text: str) -> Text:
    return Text(f"\n{text}", style="bold")


def rule_lines(rules: Sequence[dict[str, Any]], indent: str = "  ") -> Iterator[Text]:
    """Each rule: its number and name, its matches (any may hold), its effects in order."""
    for i, rule in enumerate(rules, 1):
        name = f" {rule['name']}" if rule.get("name") else ""
        matches = rule.get("matches") or ["any request"]
        yield Text(f"{indent}{i}.{name} when {matches[0]}")
        for m in matches[1:]:
            yield Text(f"{indent}   or {m}")
        for effect in rule.get("effects", []):
            yield Text(f"{indent}     -> {effect}")


def proxies_table(proxies: Sequence[dict[str, Any]]) -> RenderableType:
    if not proxies:
        return Text("  no proxy routes this (no caller depends on it, no gateway routes it)")
    table = _table("PROXY", "HOST", "CONFIG", "VIA")
    for p in proxies:
        state = str(p.get("state", ""))
        pending = [r for r in p.get("resources", []) if r.get("state") != "acked"]
        shown = state
        if state == "pending" and pending:
            shown += f" ({len(pending)} of {len(p['resources'])} resources)"
        table.add_row(
            Text(f"{p.get('kind')} {p.get('namespace')}/{p.get('name')}"),
            Text(str(p.get("host", ""))),
            Text(shown, style=_STATE_STYLE.get(state, "")),
            Text("; ".join(p.get("via", []))),
        )
    nacks = [
        Text(f"  {p.get('namespace')}/{p.get('name')} rejected: {n}", style="red")
        for p in proxies
        for n in p.get("nacks", [])
    ]
    return Group(table, *nacks)


def flags_section(flags: dict[str, Any]) -> Iterator[RenderableType]:
    yield _title("Response flags")
    yield Text(f"  {flags.get('note', '')}", style="dim")
    found = flags.get("flags", [])
    if found:
        table = _table("FLAG", "COUNT", "MEANING", "WHERE")
        for f in found:
            where = ", ".join(f"{p['nodeId']}: {p['count']}" for p in f.get("proxies", []))
            shared = " (also other services: shared listener or filter)" if f.get("shared") else ""
            table.add_row(
                Text(f["flag"]), Text(str(f["count"])), Text(f["meaning"] + shared), Text(where)
            )
        yield table
    else:
        yield Text("  none counted")
    for u in flags.get("unread", []):
        yield Text(f"  not read from {u['nodeId']}: {u['error']}", style="yellow")


def _workloads(items: Sequence[dict[str, Any]]) -> RenderableType:
    if not items:
        return Text("  none")
    table = _table("NAME", "ADDRESS", "PORTS", "ZONE", "HEALTH", "SIDECAR", "HOST")
    for w in items:
        health = "draining" if w.get("draining") else str(w.get("health"))
        table.add_row(
            Text(str(w["name"])),
            Text(str(w["address"])),
            Text(", ".join(str(p) for p in w.get("ports", []))),
            Text(str(w.get("zone") or "-")),
            Text(health, style="green" if health == "healthy" else "yellow"),
            Text("yes" if w.get("sidecar") else "no"),
            Text(str(w.get("host") or "-")),
        )
    return table


def _policies(policies: Sequence[dict[str, Any]]) -> Iterator[RenderableType]:
    if not policies:
        yield Text("  none (Envoy's defaults, and a retry budget of 20 %, min 3)")
    for p in policies:
        subset = ",".join(f"{k}={v}" for k, v in p.get("subset", {}).items())
        scope = f"subset {{{subset}}}" if subset else "whole service"
        yield Text(f"  {p['namespace']}/{p['name']} ({scope})")
        for line in p.get("settings", []):
            yield Text(f"    {line}")


def service_view(d: dict[str, Any]) -> Group:
    """``describe service``: the service, its workloads, Routes, policies, proxies, flags."""
    s = d["service"]
    ports = ", ".join(f"{p['name']} {p['port']}/{p.get('protocol', 'http')}" for p in s["ports"])
    parts: list[RenderableType] = [
        Text(f"Service {s['namespace']}/{s['name']}", style="bold"),
        Text(f"  ports: {ports}"),
        Text(f"  local address: {s.get('localAddress') or '-'}"),
        Text(f"  mTLS: {s.get('mtls')}"),
    ]
    if s.get("authorization") is not None:
        parts.append(Text(f"  authorization: {s['authorization']}"))
    parts += [_title(f"Workloads ({len(d['workloads'])})"), _workloads(d["workloads"])]
    parts.append(_title("Routes (rules in evaluation order, first match wins)"))
    if not d["routes"]:
        parts.append(Text("  none: every request goes to the service itself"))
    for r in d["routes"]:
        parts.append(Text(f"  Route {r['namespace']}/{r['name']}: {r['why']}"))
        parts.extend(rule_lines(r["rules"], "    "))
    if any(r["why"].startswith("rules for calls") for r in d["routes"]):
        parts.append(Text("    then: a request no rule matches goes to the service itself"))
    parts.append(_title("Traffic policies"))
    parts.extend(_policies(d["policies"]))
    parts += [_title("Proxies with this config (from the control plane's xDS state)")]
    parts.append(proxies_table(d["proxies"]))
    parts.extend(flags_section(d["responseFlags"]))
    return Group(*parts)


def route_view(d: dict[str, Any]) -> Group:
    """``describe route``: where its rules apply, the rules, the proxies routing them."""
    r = d["route"]
    where = (
        f"calls to {r['namespace']}/{r['service']}"
        if r.get("service")
        else "gateways " + ", ".join(r.get("gateways", [])) + f" (hosts {', '.join(r['hosts'])})"
    )
    parts: list[RenderableType] = [
        Text(f"Route {r['namespace']}/{r['name']}", style="bold"),
        Text(f"  for {where}"),
        _title("Rules (in evaluation order, first match wins)"),
        *rule_lines(d["rules"]),
        _title("Proxies with this config (from the control plane's xDS state)"),
        proxies_table(d["proxies"]),
    ]
    return Group(*parts)


def _issuer_lines(i: dict[str, Any]) -> Iterator[Text]:
    """One issuer: where its keys come from; for a uri, the keys and the fetches."""
    yield Text(f"  {i['issuer']} (audiences: {', '.join(i.get('audiences') or []) or 'any'})")
    if i["source"] != "uri":
        yield Text(f"    keys: {i['source']}, kid {', '.join(i.get('kids') or ['-'])}")
        return
    yield Text(f"    keys from: {i['uri']} every {i['refreshInterval']:g}s")
    keys = i.get("keys")
    if keys is None:
        yield Text("    no keys fetched yet: its tokens are refused (401)", style="yellow")
    else:
        kids = ", ".join(keys["kids"]) or "-"
        yield Text(f"    proxies verify with: kid {kids} (fetched at {keys['fetchedAt']})")
    fetch = i.get("fetch")
    if i.get("fetchedBy"):
        yield Text(f"    fetched by: {i['fetchedBy']}, the leader (ask it for its fetches)")
        return
    if fetch is None:
        yield Text("    not fetched by this control plane yet", style="dim")
        return
    yield Text(
        f"    last success: {fetch['lastSuccess'] or 'none since this control plane started'}"
    )
    if fetch["failingSince"]:
        yield Text(
            f"    failing since {fetch['failingSince']} ({fetch['failures']} attempts): "
            f"{fetch['error']}",
            style="red",
        )
    yield Text(f"    next attempt in {fetch['nextAttemptIn']:g}s", style="dim")


def mesh_view(d: dict[str, Any]) -> Group:
    """``describe mesh``: the Mesh's settings, then each end-user issuer's keys."""
    m = d["mesh"]
    parts: list[RenderableType] = [
        Text(f"Mesh {m['name']}", style="bold"),
        Text(f"  trust domain: {m['trustDomain']}"),
        Text(f"  mTLS: {m['mtls']}"),
        Text(f"  authorization: {m['authorization']}"),
        _title("End-user issuers (JWT)"),
    ]
    if not d["issuers"]:
        parts.append(Text("  none: the Mesh trusts no JWT issuer"))
    for i in d["issuers"]:
        parts.extend(_issuer_lines(i))
    parts.append(Text(f"  {d['fetchNote']}", style="dim"))
    return Group(*parts)
