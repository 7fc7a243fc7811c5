#!/usr/bin/env python3
"""Regenerate the bundled hardware profiles (sim/profiles/*.yaml) from ../shared/measurements.

One file per GPU type: ``h100-pcie.yaml`` (1x and 2x H100 PCIe) and ``rtx-4090.yaml`` (1, 2, 4 and
8x RTX 4090).  The single-GPU profile of each type is fitted on all models measured on it; the
tensor-parallel ones derive from it (they keep its bandwidth and compute efficiencies and fit the
all-reduce and host costs on their own runs: the 70B runs for 2xH100, the 14B runs for the RTX 4090
boxes).  Every published run used ``--seed 42`` (shared/measurements/README.md), so the client's send
times are reconstructed exactly.  Only derived figures go into the repository; the measurement files
are named in each entry, never copied.  Not needed at runtime.

    python scripts/fit_bundled_profiles.py [--seeds 4] [--resume]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.commands.fit import fit_files  # noqa: E402
from calibrate.fitplan import FitOptions  # noqa: E402

MEASUREMENTS = ROOT.parent / "shared" / "measurements" / "vllm-bench-0.8.5"
CLIENT_SEED = 42
FILES = {"h100-pcie.yaml": ("1xH100-PCIe", "2xH100-PCIe"),
         "rtx-4090.yaml": ("1xRTX-4090", "2xRTX-4090", "4xRTX-4090", "8xRTX-4090")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measurements", type=Path, default=MEASUREMENTS)
    ap.add_argument("--out", type=Path, default=ROOT / "sim" / "profiles")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--max-evals", type=int, default=60)
    ap.add_argument("--resume", action="store_true", help="keep configurations already written")
    args = ap.parse_args(argv)
    if not args.measurements.is_dir():
        print(f"no measurements at {args.measurements}", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # source files are recorded relative to the checkout (../shared/...)
    options = FitOptions(seeds=tuple(range(args.seeds)), max_nfev=args.max_evals)
    files = [os.path.relpath(args.measurements)]
    for name, configs in FILES.items():
        fit_files(files, args.out / name, options, resume=args.resume, client_seed=CLIENT_SEED, only=configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
