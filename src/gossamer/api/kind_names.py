"""Resource kinds as people type them: singular or plural, any case, or a short name."""

from __future__ import annotations

from gossamer.errors import FieldError, UnknownKindError, closest
from gossamer.model.catalog import PUBLIC_KINDS as KINDS

#: short names, as kubectl has ``svc``; only for kinds that exist in ``KINDS``
SHORT_NAMES: dict[str, str] = {
    "svc": "Service",
    "wl": "Workload",
    "gw": "Gateway",
    "rt": "Route",
    "tp": "TrafficPolicy",
    "ext": "ExternalService",
}


def plural(kind: str) -> str:
    """``Service`` -> ``services``, ``Mesh`` -> ``meshes``, ``Policy`` -> ``policies``."""
    word = kind.lower()
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + "s"


def resolve_kind(text: str) -> str:
    """The canonical kind for ``text``; raise ``UnknownKindError`` listing the valid ones."""
    wanted = text.strip().lower()
    for kind in KINDS:
        if wanted in (kind.lower(), plural(kind)):
            return kind
    short = SHORT_NAMES.get(wanted)
    if short is not None and short in KINDS:
        return short
    valid = ", ".join(sorted(KINDS))
    names = {n: k for k in KINDS for n in (k.lower(), plural(k))}
    close = closest(wanted, sorted(names))
    hint = f" did you mean {names[close]!r}?" if close else ""
    raise UnknownKindError(
        [
            FieldError(
                f"unknown kind {text!r}:{hint} valid kinds are {valid} (singular or plural, "
                "any case)",
                "kind",
            )
        ]
    )
