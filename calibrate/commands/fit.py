"""``calibrate fit``: fit hardware profiles to measured runs and write a profile YAML file.

The work is in :mod:`calibrate.fitplan` (per-configuration fits, TP derivation, the file) and
:mod:`calibrate.fit` (the robust least-squares fit of one configuration).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from calibrate.datasets import DATASET_HELP, DATASETS
from calibrate.fitplan import (
    FitOptions,
    group_points,
    read_profile_entries,
    resolve_points,
    write_profile_file,
)
from calibrate.fitplan import fit_all as _fit_all
from calibrate.importer import load_runs, lone_runs_note
from calibrate.overrides import ENGINE_HELP, check_seed_options, engine_overrides, hardware_overrides
from calibrate.preflight import check_replayable, unreplayable
from calibrate.workload import LengthModel
from scenarios.catalog import GpuSpec, normalise_gpu_name
from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError
from scenarios.loader import load_hardware_file
from scenarios.outputs import check_output_file

EPILOG = """\
examples:
  calibrate fit ../shared/measurements/vllm-bench-0.8.5 --client-seed 42 -o profiles.yaml
  calibrate fit bundles/qwen14b-2x4090 -o my-4090.yaml --resume
  calibrate fit results/*.json --model-config /models/my-model/config.json -o p.yaml --seeds 2
  calibrate fit cpu-bundle/ --gpu CPU-host --hardware cpu-host.yaml --model-config m/config.json -o cpu.yaml

Runs are grouped by hardware (GPU type x count); each group's profile is fitted on all its models
jointly.  Tensor-parallel groups derive the GPU's efficiencies from the single-GPU fit of the same
GPU type when the files hold one.  Each finished group is written to -o at once; --resume keeps the
groups already there.  `calibrate show FILE` prints the result.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit hardware profiles (service-time constants) to measured runs",
        description="Fit a hardware profile per GPU configuration so that the simulator replaying each "
        "measured run reproduces its throughput, TTFT, TPOT and ITL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="vLLM result files (JSON/JSONL), folders, bundles")
    p.add_argument("-o", "--output", required=True, help="profile YAML file to write")
    p.add_argument("--resume", action="store_true", help="keep configurations already in the output file")
    p.add_argument("--model-config", action="append", default=[], metavar="PATH",
                   help="config.json of a model not in the built-in catalogue (repeatable)")
    p.add_argument("--client-seed", type=int, metavar="N",
                   help="the --seed vLLM's client ran with (reconstructs its send times exactly)")
    p.add_argument("--hardware", metavar="FILE",
                   help="YAML file describing GPU types (or CPU hosts) outside the catalogue: 'hardware:' list of "
                        "{name, memory_gb, mem_bw_gbps, fp16_tflops, tdp_w, ...}")
    p.add_argument("--gpu", metavar="NAME", help="GPU name for files that do not record gpu_name")
    p.add_argument("--gpus", type=int, metavar="N", help="GPU count for files that do not record gpu_count")
    p.add_argument("--engine", action="append", default=[], metavar="KEY=VALUE", help=ENGINE_HELP)
    p.add_argument("--dataset", choices=DATASETS, help=DATASET_HELP)
    p.add_argument("--seeds", type=int, default=4, metavar="N", help="replay seeds averaged per run (default 4)")
    p.add_argument("--max-evals", type=int, default=60, metavar="N",
                   help="evaluation budget of each least-squares pass (default 60)")
    p.add_argument("--no-derive", action="store_true",
                   help="fit tensor-parallel configurations on their own (no single-GPU parent)")
    p.add_argument("--only", action="append", default=[], metavar="GPUSxGPU",
                   help="fit only this configuration, e.g. 1xH100-PCIe (repeatable)")
    p.set_defaults(func=run)


def fit_files(
    files: Sequence[str | Path],
    output: Path,
    options: FitOptions,
    *,
    resume: bool = False,
    model_configs: Sequence[str | Path] = (),
    client_seed: int | None = None,
    only: Sequence[str] = (),
    console: Console | None = None,
    overrides: dict[str, Any] | None = None,
    hardware: dict[str, GpuSpec] | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Load, fit, write (as it goes); returns the entries written."""
    console = console or Console(stderr=True)
    # before the fit, not after it
    check_output_file("-o", output, what="the profile .yaml file", create_folder=True)
    done = read_profile_entries(output) if resume and output.exists() else {}
    repeats: list[str] = []  # runs given twice: said once the inputs stand, as the note on lone runs
    runs = load_runs(list(files), client_seed=client_seed, notes=repeats, **(overrides or {}))
    points = resolve_points(runs, model_configs, hardware)
    check_replayable(points, options.seeds[0], options.lengths)  # settings, lengths, context: named, not a far-off fit
    for note in repeats:
        console.print(f"[yellow]note: {escape(note)}[/]", highlight=False)
    lone = lone_runs_note(runs)  # once the inputs stand, so that an input error stays one line
    if lone:
        console.print(f"[yellow]note: {lone}[/]", highlight=False)
    if only:  # GPUSxGPU, the GPU in any spelling a result file's gpu_name may have
        parts = (item.partition("x") for item in only)
        wanted = {f"{n.strip()}x{normalise_gpu_name(g.strip())}".lower() for n, _, g in parts}
        points = [p for p in points if f"{p.run.gpu_count}x{p.run.gpu}".lower() in wanted]
        if not points:
            raise FleetPlannerError(f"--only {', '.join(only)}: no run on that hardware")
    groups = group_points(points)
    entries = dict(done)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[msg]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks = {}
        for key, group in groups.items():
            label = f"{key[1]}x{key[0]} ({len(group)} runs, {len({p.run.model_id for p in group})} models)"
            skip = key in done
            tasks[key] = bar.add_task(label, total=1000, completed=1000 if skip else 0,
                                      msg="kept (resume)" if skip else "waiting")

        def progress(key: tuple[str, int], msg: str, frac: float) -> None:
            bar.update(tasks[key], completed=int(1000 * min(frac, 0.99)), msg=msg)

        def on_result(key: tuple[str, int], entry: dict[str, Any]) -> None:
            why = unreplayable(entry, groups[key], options.seeds, options.lengths)
            if why:
                raise FleetPlannerError(f"{key[1]}x{key[0]}: no run could be replayed under any profile the fit "
                                        f"tried (nothing written for it): {why}")
            entries[key] = entry
            try:
                write_profile_file(output, entries)
            except OSError as exc:
                raise FleetPlannerError(f"-o {output}: cannot write: {exc.strerror or exc}") from None
            m = entry["fit"]["mape_pct"]
            bar.update(tasks[key], completed=1000,
                       msg=f"done: thr {m['request_throughput']}% TPOT {m['median_tpot_ms']}% "
                           f"TTFT {m['median_ttft_ms']}% MAPE, {len(entry['fit']['outliers'])} outlier(s)")

        _fit_all(points, options, done=done, on_result=on_result, progress=progress)
    return entries


def run(args: argparse.Namespace) -> int:
    check_seed_options(args.seeds, args.client_seed)
    refuse_empty_paths([("FILE", args.files, "a result file, folder or bundle"),
                        ("-o", args.output, "the profile .yaml file to write"),
                        ("--model-config", args.model_config, "a config.json or a model folder"),
                        ("--hardware", args.hardware, "a hardware .yaml file")])
    output = Path(args.output)
    if args.max_evals < 1:
        raise FleetPlannerError(f"--max-evals(={args.max_evals}) must be >= 1")
    console = Console(stderr=True)
    options = FitOptions(seeds=tuple(range(args.seeds)), max_nfev=args.max_evals, lengths=LengthModel(),
                         derive_tp=not args.no_derive)
    entries = fit_files(args.files, output, options, resume=args.resume, model_configs=args.model_config,
                        client_seed=args.client_seed, only=args.only, console=console,
                        overrides={**hardware_overrides(args.gpu, args.gpus),
                                   "engine": engine_overrides(args.engine),
                                   **({"dataset": args.dataset} if args.dataset else {})},
                        hardware=load_hardware_file(args.hardware) if args.hardware else None)
    table = Table(title=f"fitted profiles -> {args.output}")
    for col in ("config", "runs", "models", "thr MAPE", "TPOT MAPE", "TTFT p50 MAPE", "outliers"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for (gpu, n), e in sorted(entries.items()):
        m = e["fit"]["mape_pct"]
        table.add_row(f"{n}x{gpu}", str(e["fit"]["runs"]), str(len(e["fit"]["models"])),
                      f"{m['request_throughput']}%", f"{m['median_tpot_ms']}%", f"{m['median_ttft_ms']}%",
                      str(len(e["fit"]["outliers"])))
    console.print(table)
    console.print(f"wrote {args.output}; inspect with: calibrate show {args.output}")
    return 0
