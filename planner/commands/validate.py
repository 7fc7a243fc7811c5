"""``planner validate``: replay measured vLLM runs in the simulator; predicted vs measured, APE, MAPE.

The comparison itself is :mod:`calibrate.validation`; this module parses options and prints.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from calibrate.bands import Axis, add_bands, inside, profile_axes
from calibrate.datasets import DATASET_HELP, DATASETS
from calibrate.fitplan import resolve_points
from calibrate.importer import MeasuredRun, load_runs, lone_runs_note
from calibrate.overrides import ENGINE_HELP, check_seed_options, engine_overrides, hardware_overrides
from calibrate.preflight import check_replayable
from calibrate.validation import METRICS, ape, mape, profile_chooser, validate_points
from calibrate.workload import LengthModel
from scenarios.cliutil import refuse_empty_paths
from scenarios.loader import load_hardware_file
from scenarios.outputs import check_output_file, write_output
from sim.notes import extrapolation_notes

EPILOG = """\
examples:
  planner validate ../shared/measurements/vllm-bench-0.8.5 --client-seed 42
  planner validate results/my-model-*.json --model-config /models/my-model/config.json --json out.json
  planner validate run.json --profile my-profiles.yaml --gpu "NVIDIA H100 PCIe" --gpus 1
  planner validate bench-1024in-128out.json --dataset random
  planner validate my-8b-runs/ --profile fitted-on-1.5b.yaml --band

Each run is replayed with its own load (rate, burstiness, request count, token totals or per-request
lengths, prefix-cache state) under the profile for its hardware: --profile (a file or a bundled
profile's stem), else the bundled profile for that GPU type and count, else one derived from that
GPU's profiles at other tensor-parallel sizes, else roofline defaults; the output names each one.
Files without per-request lengths are replayed with the lengths of their dataset (--dataset; ShareGPT's
spread, or one length for random).  Models outside the built-in catalogue need their
config.json (--model-config).  APE = |predicted / measured - 1|; MAPE = its mean over runs.  --json
writes one object per run with measured and predicted metrics under vLLM's result-file field names.

--band says how sure a prediction is: each run is replayed again with the profile moved by plus and
minus each of its fit's uncertainty axes (fit.axes in the profile file: how loosely the calibration
runs pinned its parameters, correlations kept), and the range of each metric is reported (JSON: "band",
metric -> [low, high]).  For a model like those the profile was fitted on the band is narrow; for one
that leans on what the calibration runs never showed (prefill compute from a small model's runs, the
host's launch cost from a large model's) it is wide.  It holds no model error.
"""

COLUMNS = (("request_throughput", "req/s", 2), ("median_ttft_ms", "TTFT p50", 1), ("p90_ttft_ms", "TTFT p90", 1),
           ("median_tpot_ms", "TPOT p50", 1), ("median_itl_ms", "ITL p50", 1))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="replay measured vLLM runs in the simulator and report predicted vs measured",
        description="Replay measured runs (vLLM benchmark result files, calibrate bundles) in the simulator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="RESULT_FILE", help="result files (JSON/JSONL), folders, bundles")
    p.add_argument("--model-config", action="append", default=[], metavar="PATH",
                   help="config.json of a model not in the catalogue (repeatable; one applies to all runs)")
    p.add_argument("--profile", metavar="P", help="profile file or bundled profile name (default: bundled)")
    p.add_argument("--json", metavar="PATH", help="write the per-run records as JSON ('-' for stdout)")
    p.add_argument("--client-seed", type=int, metavar="N",
                   help="the --seed vLLM's client ran with (reconstructs its send times exactly)")
    p.add_argument("--engine", action="append", default=[], metavar="KEY=VALUE", help=ENGINE_HELP)
    p.add_argument("--dataset", choices=DATASETS, help=DATASET_HELP)
    p.add_argument("--seeds", type=int, default=4, metavar="N", help="replay seeds averaged per run (default 4)")
    p.add_argument("--hardware", metavar="FILE",
                   help="YAML file describing GPU types (or CPU hosts) outside the catalogue (see calibrate fit)")
    p.add_argument("--gpu", metavar="NAME", help="GPU name for files that do not record gpu_name")
    p.add_argument("--gpus", type=int, metavar="N", help="GPU count for files that do not record gpu_count")
    p.add_argument("--band", action="store_true",
                   help="also replay each run with the profile moved along its fit's uncertainty axes (fit.axes): "
                        "the range the calibration leaves each prediction, and whether the measured value lies in it "
                        "(about 15x the replays)")
    p.set_defaults(func=run)


def _cell(rec: dict[str, Any], metric: str, digits: int) -> str:
    m, p = rec["measured"].get(metric), rec["predicted"].get(metric)
    if m is None:
        return "-"
    if p is None:
        return f"{m:,.{digits}f} / -"
    e = ape(rec, metric)
    colour = "green" if e <= 10 else ("yellow" if e <= 25 else "red")
    return f"{m:,.{digits}f} / {p:,.{digits}f} [{colour}]{e:.0f}%[/]"


def _axes_chooser(profile: str | None) -> Callable[[MeasuredRun], list[Axis]]:
    cache: dict[tuple[str, int], list[Axis]] = {}

    def axes_of(run: MeasuredRun) -> list[Axis]:
        if run.hardware_key not in cache:
            cache[run.hardware_key] = profile_axes(run.gpu, run.gpu_count, profile, Path.cwd())
        return cache[run.hardware_key]

    return axes_of


def _band_cell(rec: dict[str, Any], metric: str) -> str:
    b = (rec.get("band") or {}).get(metric)
    if b is None:
        return "-"
    top = "inf" if b[1] is None else f"{b[1]:.3g}"
    mark = {True: "[green]in[/]", False: "[red]out[/]", None: ""}[inside(rec, metric)]
    return f"{b[0]:.3g}-{top} {mark}"


def _print_bands(console: Console, records: list[dict[str, Any]]) -> None:
    t = Table(title="range the fit's uncertainty leaves each prediction (measured in/out)", header_style="bold")
    for c in ("file", "rate", *(label for _, label, _ in COLUMNS)):
        t.add_column(c, justify="left" if c == "file" else "right", no_wrap=c != "file")
    for rec in records:
        rate = rec["request_rate"]
        t.add_row(Path(rec["file"]).name[:40], "inf" if rate is None else f"{rate:g}",
                  *(_band_cell(rec, k) for k, _, _ in COLUMNS))
    console.print(t)
    counts = []
    for k, label, _ in COLUMNS:
        marks = [m for m in (inside(r, k) for r in records) if m is not None]
        counts.append(f"{label} {sum(marks)}/{len(marks)}")
    console.print("measured inside the band: " + ", ".join(counts))
    unbanded = sorted({f"{r['gpu_count']}x{r['gpu_name']}" for r in records if r.get("band") is None})
    if unbanded:
        console.print(f"no band for {', '.join(unbanded)}: no prediction, or the profile is derived or roofline "
                      "defaults (no fit axes)")
    console.print("[dim]a band holds the calibration's uncertainty only, not the model's own error "
                  "(see calibrate fit's residuals)[/]")


def run(args: argparse.Namespace) -> int:
    check_seed_options(args.seeds, args.client_seed)
    refuse_empty_paths([("RESULT_FILE", args.files, "a result file, folder or bundle"),
                        ("--json", args.json, "a file to write (or - for stdout)"),
                        ("--model-config", args.model_config, "a config.json or a model folder"),
                        ("--profile", args.profile, "a profile file or a bundled profile's name"),
                        ("--hardware", args.hardware, "a hardware .yaml file")])
    check_output_file("--json", args.json)
    overrides = hardware_overrides(args.gpu, args.gpus)
    if args.dataset:
        overrides["dataset"] = args.dataset
    runs = load_runs(args.files, client_seed=args.client_seed, engine=engine_overrides(args.engine), **overrides)
    hardware = load_hardware_file(args.hardware) if args.hardware else None
    points = resolve_points(runs, args.model_config, hardware)
    check_replayable(points, 0, LengthModel(), runs_too=False)  # server settings: named before the replays start
    choose = profile_chooser(args.profile, Path.cwd())
    axes_of = _axes_chooser(args.profile)
    for p in points:
        choose(p.run)  # a bad --profile fails before the replays start
        if args.band:
            axes_of(p.run)
    to_stdout = args.json == "-"
    console = Console(stderr=to_stdout)
    with console.status("replaying ...") as status:
        failures: dict[str, str] = {}
        records = validate_points(points, choose, seeds=tuple(range(args.seeds)), failures=failures,
                                  progress=lambda i, n: status.update(f"replaying run {i}/{n} ..."))
        if args.band:
            add_bands(points, records, choose, axes_of, seeds=tuple(range(args.seeds)),
                      progress=lambda i, n: status.update(f"replaying run {i}/{n} along the fit's axes ..."))
    if args.json:
        write_output("--json", args.json, json.dumps(records, indent=1) + "\n")
    t = Table(title="measured / predicted (APE)", header_style="bold")
    for c in ("file", "model", "hardware", "rate", *(label for _, label, _ in COLUMNS)):
        t.add_column(c, justify="left" if c in ("file", "model", "hardware") else "right")
    for rec in records:
        rate = rec["request_rate"]
        t.add_row(Path(rec["file"]).name[:40], rec["model_id"].split("/")[-1], f"{rec['gpu_count']}x{rec['gpu_name']}",
                  "inf" if rate is None else f"{rate:g}", *(_cell(rec, k, d) for k, _, d in COLUMNS))
    console.print(t)
    s = Table(title=f"MAPE over {len(records)} run{'' if len(records) == 1 else 's'}", header_style="bold")
    s.add_column("metric")
    s.add_column("MAPE", justify="right")
    for k in METRICS:
        v = mape(records, k)
        s.add_row(k, "-" if math.isnan(v) else f"{v:.1f}%")
    console.print(s)
    if args.band:
        _print_bands(console, records)
    first: dict[tuple[str, int], MeasuredRun] = {}
    for p in points:
        first.setdefault(p.run.hardware_key, p.run)
    for run in first.values():
        console.print(f"profile for {run.gpu_count}x{run.gpu}: {choose(run).source}")
    notes = dict.fromkeys(n for p in points for n in extrapolation_notes(choose(p.run), p.model, p.run.gpu_count))
    for note in notes:
        console.print(f"[yellow]note: {note}[/]")
    lone = lone_runs_note([p.run for p in points])
    if lone:
        console.print(f"[yellow]note: {lone}[/]", highlight=False)
    if failures:
        console.print(f"[yellow]{len(failures)} run(s) could not be replayed (no prediction):[/]")
        for where, why in list(failures.items())[:5]:
            console.print(f"[yellow]  {Path(where).name}: {why}[/]", highlight=False, soft_wrap=True)
    return 0
