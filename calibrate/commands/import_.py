"""``calibrate import``: read vLLM benchmark results and bundles, and say what they hold."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from calibrate.datasets import DATASET_HELP, DATASETS
from calibrate.importer import load_runs, summarise
from calibrate.overrides import hardware_overrides

EPILOG = """\
examples:
  calibrate import ../shared/measurements/vllm-bench-0.8.5
  calibrate import result.json bundles/llama8b-h100 --json
  calibrate import my-run.json --gpu "NVIDIA H100 PCIe" --gpus 1

Reads `vllm bench serve` / benchmark_serving.py result files (one JSON object, a list, or JSON Lines;
with or without the per-request arrays of --save-detailed) and `calibrate run` bundles, and prints
the runs found per model and hardware.  lengths: "measured" where the files list every request's
lengths, else the dataset they name (a dataset_name field or a word of the file name), whose lengths
the replay models; auto: the token totals decide.  --json prints one object per run for scripts.
A run given twice (the same record again in one file or another, or a file named twice) is read
once, and a note on stderr names the file and line dropped.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import",
        help="read vLLM benchmark results / bundles and list the runs per model and hardware",
        description="Read measurement files and report what they hold.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="result files (JSON/JSONL), folders, bundles")
    p.add_argument("--json", action="store_true", help="print the runs as JSON (one object per run)")
    p.add_argument("--gpu", metavar="NAME", help="GPU name for files that do not record gpu_name")
    p.add_argument("--gpus", type=int, metavar="N", help="GPU count for files that do not record gpu_count")
    p.add_argument("--dataset", choices=DATASETS, help=DATASET_HELP)
    p.set_defaults(func=run)


def run_json(r: Any) -> dict[str, Any]:
    return {
        "file": r.file, "where": r.where, "model_id": r.model_id, "gpu_name": r.gpu_name, "gpu": r.gpu,
        "gpu_count": r.gpu_count, "request_rate": r.request_rate if math.isfinite(r.request_rate) else None,
        "burstiness": r.burstiness, "num_prompts": r.num_prompts, "completed": r.completed,
        "duration": r.duration, "total_input_tokens": r.total_input_tokens,
        "total_output_tokens": r.total_output_tokens, "per_request_arrays": r.input_lens is not None,
        "dataset": r.dataset,
        "date": r.date or None, "session": r.session, "order": r.order, "prefix_caching": r.prefix_caching,
        "engine": r.engine, "metrics": r.metrics,
    }


def run(args: argparse.Namespace) -> int:
    overrides = hardware_overrides(args.gpu, args.gpus)
    if args.dataset:
        overrides["dataset"] = args.dataset
    runs = load_runs(args.files, **overrides)
    if args.json:
        print(json.dumps([run_json(r) for r in runs], indent=1))
        return 0
    console = Console()
    t = Table(title=f"{len(runs)} runs in {len({r.file for r in runs})} file(s)", show_edge=False)
    for c in ("model", "hardware", "runs", "rates /s", "sessions", "lengths"):
        t.add_column(c, justify="left" if c in ("model", "hardware", "lengths") else "right",
                     min_width=min(len(c), 8), overflow="fold" if c == "model" else "ellipsis")
    for s in summarise(runs):
        t.add_row(s["model_id"].rstrip("/").split("/")[-1], f"{s['gpu_count']}x{s['gpu']}", str(s["runs"]),
                  ", ".join(f"{x:g}" for x in s["rates"]), str(s["sessions"]),
                  "measured" if s["per_request_arrays"] else ", ".join(s["datasets"]))
    console.print(t)
    return 0
