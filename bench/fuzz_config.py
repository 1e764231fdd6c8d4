"""Config fuzz: hypothesis-generated meshes -> validate -> translate -> ``envoy --mode validate``.

Run: ``.venv/bin/python bench/fuzz_config.py [--cases 2000] [--seconds 600] [--seed 1]``.

Each case is one YAML file of a small coherent mesh (``gossamer.testing.strategies.
coherent_meshes``), often made hostile (``_fuzz_hostile``: odd unicode and lone surrogates
in any string or key, huge integers, deep nesting, wrong types, YAML anchors, aliases,
merge keys, duplicate keys, type-changing raw tokens, alias bombs). It is checked the way
``gossamer validate`` and an apply check it (``parse_yaml``, then ``check_references``);
if accepted, every proxy's resources (``Translator.proxy``) are wrapped as one static
bootstrap per proxy (``static_bootstrap``; names repeat across proxies) and given to
``envoy --mode validate`` (deprecated fields fail too). Defects, each printed with its
input: a crash (an exception other than ``GossamerError`` while validating or
translating), a translation refused after validation accepted, a config Envoy rejects
after our validation accepted it, and a rejection whose errors name no field or line.

The last line is ``FUZZ cases=N rejected=N accepted=N proxies=N envoy_rejected=N crashes=N
translate_errors=N unnamed=N defects=N``; the exit status is 1 when defects > 0.
Single-threaded: one core (each Envoy runs with ``--concurrency 1``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import envoy
from _fuzz_hostile import MODES, hostile_yaml
from hypothesis import HealthCheck, Phase, given, seed, settings

from gossamer.envoy.validate import validate_config_sync
from gossamer.errors import EnvoyError, FieldError, GossamerError, ValidationError
from gossamer.model import ModelSnapshot, check_references, parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity

_LINE = re.compile(r"^line \d+: ")


@dataclass
class Tally:
    cases: int = 0
    rejected: int = 0
    accepted: int = 0
    proxies: int = 0
    envoy_rejected: int = 0
    crashes: int = 0
    translate_errors: int = 0
    unnamed: int = 0
    #: rejection reasons (field path, or the message's start) -> count; one sample each
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: dict[str, str] = field(default_factory=dict)
    envoy_s: float = 0.0

    @property
    def defects(self) -> int:
        return self.envoy_rejected + self.crashes + self.translate_errors + self.unnamed


def _named(e: FieldError) -> bool:
    """Does the error say where: a field path, a YAML line, or a whole resource?"""
    return bool(e.path or _LINE.match(e.message) or e.resource)


def _reason(e: FieldError) -> str:
    if e.path:
        return re.sub(r"\[\d+\]", "[]", e.path)
    return re.sub(r"\d+", "N", e.message)[:50]


def _defect(kind: str, text: str, notes: list[str], detail: str) -> None:
    print(f"\nDEFECT {kind}: made hostile by {notes or 'nothing'}\n--- input ---\n{text[:4000]}")
    print(f"--- {kind} ---\n{detail[-4000:]}\n", flush=True)


def _proxies(snap: ModelSnapshot) -> list[ProxyIdentity]:
    out = [
        ProxyIdentity("sidecar", ns, n) for (ns, n), w in snap.workloads.items() if w.spec.sidecar
    ]
    return out + [ProxyIdentity("gateway", ns, n) for ns, n in snap.gateways]


def check_case(text: str, notes: list[str], tally: Tally, binary: str) -> None:
    tally.cases += 1
    try:
        resources = parse_yaml(text, "fuzz.yaml")
        snap = ModelSnapshot().with_changes(puts=resources)
        errors = check_references(snap)
        if errors:
            raise ValidationError(errors)
    except ValidationError as e:
        tally.rejected += 1
        for err in e.errors:
            reason = _reason(err)
            tally.reasons[reason] += 1
            tally.samples.setdefault(reason, str(err)[:160])
            if not _named(err):
                tally.unnamed += 1
                _defect("rejection names no field", text, notes, str(err))
        return
    except Exception:
        tally.crashes += 1
        _defect("crash while validating", text, notes, traceback.format_exc())
        return
    tally.accepted += 1
    translator = Translator()
    bootstraps = {}
    try:
        for ident in _proxies(snap):
            res = translator.proxy(snap, ident)
            bootstraps[ident.node_id] = static_bootstrap(
                listeners=res.listeners.values(),
                clusters=res.clusters.values(),
                endpoints=res.endpoints.values(),
                routes=res.routes.values(),
                node=ident,
            )
    except GossamerError as e:
        tally.translate_errors += 1
        _defect("translation refused what validation accepted", text, notes, str(e))
        return
    except Exception:
        tally.crashes += 1
        _defect("crash while translating", text, notes, traceback.format_exc())
        return
    for node_id, bootstrap in bootstraps.items():
        tally.proxies += 1
        started = time.perf_counter()
        try:
            validate_config_sync(bootstrap, binary=binary, timeout_s=120.0)
        except EnvoyError as e:
            tally.envoy_rejected += 1
            _defect(f"Envoy rejected proxy {node_id}", text, notes, str(e))
        finally:
            tally.envoy_s += time.perf_counter() - started


class _Stop(BaseException):
    """Out of time: ends hypothesis's run (it lets a BaseException through)."""


def run(cases: int, seconds: float, seed_: int, tally: Tally) -> None:
    """The modes in turn (hypothesis's own choices favour the first option, so each mode
    is its own run): an equal share of the cases and of the time each, 1 % alias bombs."""
    binary = str(Path(envoy.__file__).parent / "_bin" / "envoy")  # no wrapper: ~80 ms less
    started = time.monotonic()
    bombs = max(1, cases // 100)
    shares = [(mode, (cases - bombs) // len(MODES)) for mode in MODES] + [("bomb", bombs)]
    deadline = [0.0]  # this mode's
    for i, (mode, n) in enumerate(shares):
        deadline[0] = started + seconds * (i + 1) / len(shares)

        @settings(
            max_examples=max(1, n),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @seed(seed_)
        @given(hostile_yaml(mode))
        def one(case: tuple[str, list[str]]) -> None:
            if time.monotonic() > deadline[0]:
                raise _Stop
            check_case(*case, tally, binary)
            if tally.cases % 200 == 0:
                print(f"  {tally.cases} cases, {tally.defects} defects", flush=True)

        before = tally.cases
        with contextlib.suppress(_Stop):
            one()
        print(f"  mode {mode}: {tally.cases - before} cases", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="at most this many cases")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=1, help="hypothesis's seed (reproducible)")
    parser.add_argument("--reasons", type=int, default=15, help="rejection reasons to print")
    args = parser.parse_args(argv)
    print(f"fuzz_config: up to {args.cases} cases, {args.seconds:g} s, seed {args.seed}")
    tally = Tally()
    started = time.perf_counter()
    run(args.cases, args.seconds, args.seed, tally)
    wall = time.perf_counter() - started
    print(f"\n{tally.cases} cases in {wall:.1f} s ({tally.envoy_s:.1f} s in Envoy)")
    print(f"rejected by our validation: {tally.rejected}; most common reasons (a sample each):")
    for reason, n in tally.reasons.most_common(args.reasons):
        print(f"  {n:6d}  {reason:40.40s}  {tally.samples[reason][:110]!r}")
    print(
        f"accepted: {tally.accepted} ({tally.proxies} proxies through envoy --mode validate)\n"
        f"defects: envoy rejected {tally.envoy_rejected}, crashes {tally.crashes}, "
        f"translation refused {tally.translate_errors}, unnamed rejections {tally.unnamed}"
    )
    print(
        f"FUZZ cases={tally.cases} rejected={tally.rejected} accepted={tally.accepted} "
        f"proxies={tally.proxies} envoy_rejected={tally.envoy_rejected} "
        f"crashes={tally.crashes} translate_errors={tally.translate_errors} "
        f"unnamed={tally.unnamed} defects={tally.defects}",
        flush=True,
    )
    sys.exit(1 if tally.defects else 0)


if __name__ == "__main__":
    main()
