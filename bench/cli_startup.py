"""How long a ``gossamer`` process takes to start: ``gossamer --version`` (the command
line and everything it imports) and ``gossamer agent --help``, against the bare
interpreter (``python -c pass``) measured in the same run.

Run: ``.venv/bin/python bench/cli_startup.py [--runs 10]``

Each command runs ``--runs`` times, one after another; reported per command: the median
wall time and CPU time (user + system, from ``resource.getrusage`` of the children), and
its CPU as a ratio to the bare interpreter's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOSSAMER = str(Path(sys.executable).parent / "gossamer")
COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "gossamer --version": [GOSSAMER, "--version"],
    "gossamer agent --help": [GOSSAMER, "agent", "--help"],
}


def once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=60)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, choices=range(1, 101), metavar="1..100")
    args = parser.parse_args()
    medians: dict[str, tuple[float, float]] = {}
    for name, argv in COMMANDS.items():
        runs = [once(argv) for _ in range(args.runs)]
        medians[name] = (
            statistics.median(w for w, _ in runs),
            statistics.median(c for _, c in runs),
        )
    base_cpu = next(iter(medians.values()))[1]
    print(f"{'command':28s} {'wall s':>7} {'CPU s':>7} {'CPU x baseline':>15}")
    for name, (wall, cpu) in medians.items():
        print(f"{name:28s} {wall:7.3f} {cpu:7.3f} {cpu / base_cpu:14.1f}x")


if __name__ == "__main__":
    main()
