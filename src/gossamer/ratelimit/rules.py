"""The rules the rate-limit service decides with: their document, and where it comes from.

The document is what ``GET /v1/ratelimit/rules`` answers (and what ``--rules FILE`` holds,
as JSON or YAML)::

    {"version": "17", "failureMode": "open",
     "rules": [{"id": "shop/api/by-key", "requests": 10, "unit": "second", "key": "header"}]}

``follow_control_plane`` long-polls the endpoint (``?after=<version>&wait=<s>``: it
answers at once when the rules differ from ``after``, else when they change or ``wait``
passes), verifying the control plane as the CLI and the agent do (``--ca-file``, or the CA
fingerprint in the token) before the token is sent. While the control plane cannot be
reached the service keeps deciding with the last rules it got.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gossamer.agent.api_poll import POLL_WAIT_S, follow_document
from gossamer.errors import ConfigError
from gossamer.model.rate_limits import UNIT_SECONDS, GlobalRule
from gossamer.polling import Backoff
from gossamer.ratelimit.decision import RuleSet

log = logging.getLogger(__name__)

RULES_PATH = "/v1/ratelimit/rules"


def rules_document(rules: RuleSet) -> dict[str, Any]:
    return {
        "version": rules.version,
        "failureMode": rules.failure_mode,
        "rules": [
            {"id": r.id, "requests": r.requests, "unit": r.unit, "key": r.key}
            for r in sorted(rules.rules.values())
        ],
    }


def parse_rules(data: object, where: str) -> RuleSet:
    """A ``RuleSet`` from a rules document; ``ConfigError`` naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object with version, failureMode and rules")
    mode = data.get("failureMode", "open")
    if mode not in ("open", "closed"):
        raise ConfigError(f"{where}: failureMode is {mode!r}; use open or closed")
    items = data.get("rules", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}: rules must be a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: rules[{i}] must be an object")
        rid, requests, unit = item.get("id"), item.get("requests"), item.get("unit")
        if not isinstance(rid, str) or not rid:
            raise ConfigError(f"{where}: rules[{i}].id must be '<namespace>/<route>/<rule>'")
        if not isinstance(requests, int) or isinstance(requests, bool) or requests < 1:
            raise ConfigError(f"{where}: rules[{i}].requests must be a whole number >= 1")
        if unit not in UNIT_SECONDS:
            valid = ", ".join(UNIT_SECONDS)
            raise ConfigError(f"{where}: rules[{i}].unit is {unit!r}; use one of {valid}")
        out.append(GlobalRule(rid, requests, unit, str(item.get("key", ""))))
    return RuleSet.of(str(data.get("version", "")), out, mode)


def load_rules_file(path: Path) -> RuleSet:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--rules: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--rules: {path} is not JSON or YAML: {e}") from None
    return parse_rules(data, f"--rules {path}")


async def follow_control_plane(
    server: str,
    token: str,
    on_rules: Callable[[RuleSet], None],
    *,
    ca_file: Path | None = None,
    wait_s: float = POLL_WAIT_S,
    backoff: Backoff | None = None,
) -> None:
    """Call ``on_rules`` with each new version of the rules, until cancelled."""

    def took(rules: RuleSet) -> None:
        log.info("rules version %s: %d rule(s)", rules.version, len(rules.rules))
        on_rules(rules)

    await follow_document(
        server,
        token,
        RULES_PATH,
        parse_rules,
        lambda r: r.version,
        took,
        ca_file=ca_file,
        wait_s=wait_s,
        backoff=backoff,
    )
