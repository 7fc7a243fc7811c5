#!/usr/bin/env python3
"""Print the fidelity table (Markdown) of the bundled-profile method on ../shared/measurements.

Leave-one-model-out on every single-GPU configuration with two or more models (fit on the other
models, predict the held-out one), leave-one-TP-size-out on the tensor-parallel RTX 4090 boxes (one
profile with shared link and host parameters, the GPU's efficiencies from the 1xRTX-4090 fit), and
in-sample replays under the bundled profiles (the only check for configurations with one model), and
each configuration's runs as if its GPU type were unmeasured (roofline defaults; another GPU type's
bundled profile of the same size, borrowed).
MAPE per configuration and overall, all runs, and with the runs the all-data fit flagged as outliers
left out.  Not needed at runtime; it reads the measurements from ../shared beside the checkout.

    python scripts/fidelity_table.py [--seeds 4] [--workers 2] [--json out.json] [--band]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate import fidelity  # noqa: E402
from calibrate.fitplan import FitOptions, read_profile_entries, resolve_points  # noqa: E402
from calibrate.importer import load_runs  # noqa: E402
from sim.profiles import BUNDLED_DIR, bundled_profiles  # noqa: E402

MEASUREMENTS = ROOT.parent / "shared" / "measurements" / "vllm-bench-0.8.5"
CLIENT_SEED = 42  # every published run used `--seed 42` (shared/measurements/README.md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measurements", type=Path, default=MEASUREMENTS)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--max-evals", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write all records and rows as JSON")
    ap.add_argument("--band", action="store_true",
                    help="also give each held-out model's runs the range its fold's fit uncertainty leaves "
                         "(planner validate --band) and tabulate how many measured values lie in it")
    args = ap.parse_args(argv)
    started = time.time()
    points = resolve_points(load_runs([args.measurements], client_seed=CLIENT_SEED))
    options = FitOptions(seeds=tuple(range(args.seeds)), max_nfev=args.max_evals)
    bundled = bundled_profiles()

    def note(name: str) -> None:
        print(f"  done: {name} ({time.time() - started:.0f} s)", file=sys.stderr)

    records = fidelity.lomo(points, options, workers=args.workers, progress=note, band=args.band)
    parents = {gpu: p for (gpu, n), p in bundled.items() if n == 1}
    records += fidelity.cross_tp(points, options, parents, workers=args.workers, progress=note)
    records += fidelity.in_sample(points, dict(bundled), options)
    records += fidelity.unmeasured(points, dict(bundled), options)
    flagged: set[tuple[str, float]] = set()
    for f in sorted(BUNDLED_DIR.glob("*.yaml")):
        for entry in read_profile_entries(f).values():
            for row in entry.get("residuals", []):
                if row.get("outlier"):
                    flagged.add((row["file"], row["rate"]))
    exclude = {(r["file"], r["request_rate"]) for r in records
               if (Path(r["file"]).name, r["request_rate"]) in flagged}
    all_rows = fidelity.summarise(records)
    clean_rows = fidelity.summarise(records, exclude=exclude)
    print("### All runs\n")
    print(fidelity.markdown(all_rows))
    print(f"\n### Without the {len(exclude)} runs flagged as outliers by the all-data fits\n")
    print(fidelity.markdown(clean_rows))
    if args.band:
        print("\n### Leave-one-model-out: measured values inside the range the fold's fit uncertainty leaves\n")
        print("(per metric: runs inside / runs, and the mean width of the range, high / low)\n")
        print(fidelity.band_markdown(fidelity.band_rows(records)))
    print(f"\n(seeds {args.seeds}, {time.time() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"records": records, "all": all_rows, "clean": clean_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
