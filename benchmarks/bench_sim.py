"""Speed benchmark of the simulator: scenarios/bench-1m.yaml (1,000,000 requests, 64 replicas).

Target on a 2-core machine: <= 20 s wall and <= 2 GB peak memory (resident set), for the whole
run: workload generation, simulation and the per-request DataFrame.  Usage:

    python benchmarks/bench_sim.py [--requests N] [--json PATH]

Prints wall time, peak RSS and the simulated throughput; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scenarios.loader import load_scenario  # noqa: E402
from sim.results import class_summary  # noqa: E402
from sim.simulation import simulate  # noqa: E402

WALL_TARGET_S = 20.0
RSS_TARGET_GB = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "bench-1m.yaml"))
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    loaded = load_scenario(args.scenario)
    t0 = time.perf_counter()
    result = simulate(loaded, requests=args.requests)
    wall = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    summary = class_summary(result).iloc[-1]
    out = {
        "requests": len(result.requests),
        "wall_s": round(wall, 2),
        "peak_rss_gb": round(rss_gb, 3),
        "simulated_s": round(result.makespan, 1),
        "request_throughput": round(float(summary["request_throughput"]), 1),
        "mean_utilisation": round(float(result.replicas["utilisation"].mean()), 3),
        "ttft_p99_ms": round(float(summary["ttft_p99_ms"]), 1),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    ok = wall <= WALL_TARGET_S and rss_gb <= RSS_TARGET_GB
    print(f"target <= {WALL_TARGET_S} s and <= {RSS_TARGET_GB} GB: {'met' if ok else 'MISSED'}")
    return 0 if ok or args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
