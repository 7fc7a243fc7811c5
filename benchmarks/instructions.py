"""Instructions per simulated request: a speed measure that, unlike a clock, does not move with the machine.

Wall and CPU times on a shared 2-core machine scatter by 10-30% between back-to-back repeats, more than
most changes to the simulator gain.  This script runs the simulator under valgrind's cachegrind (no cache
simulation: it counts instructions only) for ``scenarios/bench-1m.yaml`` cut to N requests and to a
small base run, and prints their difference per request, which leaves out start-up and imports.  The
counts repeat within ~1% (fixed ``PYTHONHASHSEED``).  Compare two checkouts with ``--root``:

    python benchmarks/instructions.py                        # this checkout, 30,000 requests (~2 min)
    python benchmarks/instructions.py --root ../other-checkout

Needs valgrind (``apt install valgrind``); prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = """import sys
sys.path.insert(0, sys.argv[1])
from scenarios.loader import load_scenario
from sim.simulation import simulate
simulate(load_scenario(sys.argv[2]), requests=int(sys.argv[3]))
"""


def count(root: Path, scenario: Path, requests: int) -> int:
    """Instructions of one run of ``requests`` requests with the simulator of checkout ``root``."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-c", RUN, str(root), str(scenario), str(requests)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"error: valgrind run failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose simulator is measured (default: this one)")
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "bench-1m.yaml")
    ap.add_argument("--requests", type=int, default=30_000, help="requests of the measured run (default 30000)")
    ap.add_argument("--base", type=int, default=2_000, help="requests of the base run subtracted (default 2000)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("error: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    if not args.requests > args.base >= 1:
        print(f"error: --requests(={args.requests}) must exceed --base(={args.base}) >= 1", file=sys.stderr)
        return 2
    if not (args.root / "sim" / "simulation.py").is_file():
        print(f"error: --root {args.root}: no sim/simulation.py there (not a fleet-planner checkout)", file=sys.stderr)
        return 2
    big = count(args.root.resolve(), args.scenario.resolve(), args.requests)
    base = count(args.root.resolve(), args.scenario.resolve(), args.base)
    out = {"root": str(args.root), "requests": args.requests, "base_requests": args.base,
           "instructions": big, "base_instructions": base,
           "per_request": round((big - base) / (args.requests - args.base))}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
