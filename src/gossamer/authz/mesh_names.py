"""The NGAC names of a mesh's services, and which node decides a request (docs/ngac.md,
"Enforcement in Envoy").

- a meshed service as a caller is the **user** ``spiffe://<td>/ns/<ns>/sa/<svc>`` (its
  verified certificate's id, ``gossamer.types.spiffe_id``);
- a service as a target is the **object attribute** ``svc:<ns>/<svc>``;
- a path prefix of it is the object attribute ``svc:<ns>/<svc>:<prefix>`` (e.g.
  ``svc:default/cart:/api/orders``), assigned under the service's attribute so grants flow
  down and carve-outs are prohibitions;
- rights are HTTP methods (``*r``: every method).

A request is decided on the **deepest existing prefix attribute** that covers its path,
segment by segment (``/api/orders`` covers ``/api/orders`` and ``/api/orders/7``, not
``/api/orders-admin``: Envoy's ``path_separated_prefix``), else on the service's attribute,
on the normalised path without its query string. The compiled RBAC, the decision point and
``authz check`` all decide this way; this module is the one place the rule is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: the prefix of every service attribute's name
SERVICE_PREFIX = "svc:"
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_SERVICE = re.compile(rf"^svc:(?P<ns>{_LABEL})/(?P<svc>{_LABEL})(?::(?P<prefix>.*))?$")
#: a path prefix Envoy's ``path_separated_prefix`` takes and that a normalised path can
#: start with: '/'-separated non-empty segments of URL path characters, no '.' or '..'
#: segment, no '%' (a normalised path has the unreserved characters decoded), no trailing '/'
_SEGMENT = r"[A-Za-z0-9\-._~!$&'()*+,;=:@]+"
_PREFIX = re.compile(rf"^(/{_SEGMENT})+$")


def service_target(namespace: str, service: str) -> str:
    """``svc:<ns>/<svc>``: the service as a target."""
    return f"{SERVICE_PREFIX}{namespace}/{service}"


def prefix_target(namespace: str, service: str, prefix: str) -> str:
    """``svc:<ns>/<svc>:<prefix>``: a path prefix of the service as a target."""
    return f"{service_target(namespace, service)}:{prefix}"


def parse_target(name: str) -> tuple[tuple[str, str], str | None] | None:
    """``((ns, svc), prefix)`` for a service attribute's name (``prefix`` None for the
    service itself), or None if ``name`` is not one. A prefix is returned as written: see
    :func:`prefix_error`."""
    m = _SERVICE.match(name)
    if m is None:
        return None
    return (m["ns"], m["svc"]), m["prefix"]


def prefix_error(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a path prefix attribute, or None if it can."""
    if _PREFIX.match(prefix) is None:
        return (
            f"{prefix!r} is not a path prefix: write '/'-separated segments of URL path "
            "characters starting with '/', without a trailing '/', '//', '.' or '..' "
            "segments, '%', '?' or '#' (e.g. /api/orders)"
        )
    if any(seg in (".", "..") for seg in prefix.split("/")):
        return f"{prefix!r} is not a path prefix: '.' and '..' segments are normalised away"
    return None


def path_of(raw: str) -> str:
    """The path a request is decided on: normalised as Envoy does (:func:`normalised`),
    without its query string or fragment."""
    path = raw.split("#", 1)[0].split("?", 1)[0]
    if _PLAIN.match(path):  # nothing to normalise (the common case, and Envoy's own paths)
        return path
    return normalised(path)


#: a path Envoy's normalisation leaves as it is: no escapes, backslashes, empty, '.' or
#: '..' segments, or characters it escapes
_PLAIN = re.compile(r"^(/(?!\.\.?(/|$))[A-Za-z0-9\-._~!$&'()*+,;=:@]+)*/?$")
_ESCAPED_SLASH = re.compile(r"%(2[fF]|5[cC])")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")
_NEW_ESCAPE = re.compile(r"\0(?=[0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: characters Envoy's canonical path escapes
_TO_ESCAPE = re.compile(r'["<>`{}|^]')


def normalised(path: str) -> str:
    """``path`` (no query string) as Envoy's inbound HCM decides and routes it
    (``translate/hcm.py``): ``%2F``/``%5C`` unescaped (Envoy answers a redirect to the
    result, so the request decided is the redirected one), backslashes made slashes,
    escapes of unreserved characters decoded, ``.`` and ``..`` segments resolved (RFC 3986),
    a few characters escaped, then runs of slashes merged (Envoy keeps a trailing slash,
    so ``//`` stays ``//``). Idempotent: an already normalised path comes back unchanged."""
    path = _ESCAPED_SLASH.sub(lambda m: "/" if m[1] in ("2f", "2F") else "\\", path)
    path = path.replace("\\", "/")
    path = _ESCAPE.sub(_decode_unreserved, path)
    # a lone '%' that decoding put before two hex digits is escaped (no new escape appears)
    path = _NEW_ESCAPE.sub("%25", path).replace("\0", "%")
    path = _TO_ESCAPE.sub(lambda m: f"%{ord(m[0]):02X}", path)
    if path.startswith("/"):
        path = _remove_dot_segments(path)
    if "//" in path:
        inner = "/".join(s for s in path.split("/") if s)
        path = ("/" if path.startswith("/") else "") + inner + ("/" if path.endswith("/") else "")
    return path


def _decode_unreserved(m: re.Match[str]) -> str:
    if m[1] is None:
        return "\0"  # a lone '%', marked until decoding is done
    c = chr(int(m[1], 16))
    return c if c in _UNRESERVED else m[0]


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path: ``.`` dropped, ``..`` drops the segment
    before it (never above the root), a final ``.`` or ``..`` leaves a trailing slash."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def covers(prefix: str, path: str) -> bool:
    """Does ``prefix`` cover ``path`` segment by segment (``path_separated_prefix``)?"""
    return path == prefix or path.startswith(prefix + "/")


def deciding_prefix(prefixes: Iterable[str], path: str) -> str | None:
    """The deepest of ``prefixes`` covering ``path`` (query string ignored), or None: the
    service's own attribute decides."""
    path = path_of(path)
    best: str | None = None
    for p in prefixes:
        if covers(p, path) and (best is None or len(p) > len(best)):
            best = p
    return best
