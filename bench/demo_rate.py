"""The demo's request rate and errors: run ``gossamer demo --duration N`` and parse its end.

Run: ``.venv/bin/python bench/demo_rate.py [--duration 20]``

``gossamer demo`` ends with ``OK of TOTAL requests succeeded`` (its traffic generator's
counts over the ``--duration`` seconds of traffic). This prints requests, errors
(TOTAL - OK), requests per second (TOTAL / duration), the error rate, the demo's exit
status and its wall time (set-up and shutdown included).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

GOSSAMER = str(Path(sys.executable).parent / "gossamer")
_COUNTS = re.compile(r"(\d+) of (\d+) requests succeeded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=20, help="seconds of traffic, 1..300")
    duration = max(1, min(parser.parse_args().duration, 300))
    argv = [GOSSAMER, "demo", "--duration", str(duration)]
    print("$", " ".join(["gossamer", *argv[1:]]), flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 300, check=False)
    wall = time.monotonic() - started
    found = _COUNTS.findall(done.stdout)
    if not found:
        sys.exit(
            f"gossamer demo exited {done.returncode} without its final counts:\n"
            + done.stdout[-2000:]
            + done.stderr[-2000:]
        )
    ok, total = (int(x) for x in found[-1])
    errors = total - ok
    print(f"exit status {done.returncode}, wall time {wall:.1f} s (set-up and shutdown included)")
    print(f"requests {total}, errors {errors}")
    print(f"rate {total / duration:.1f} requests/s over {duration} s of traffic")
    print(f"error rate {errors / total if total else 0.0:.4%}")


if __name__ == "__main__":
    main()
