"""A whole calibration run: plan, cost estimate, server, adaptive sweep, bundle, resume.

:class:`RunPlan` holds every setting of one ``calibrate run``; :func:`identity` is the part that must
match for a resume.  :func:`execute` opens (or resumes) the bundle, starts the server, and runs sweep
points until :func:`calibrate.sweep.next_rate` says done; each point runs ``vllm bench serve`` while
:class:`~calibrate.power.PowerSampler` and :class:`~calibrate.metrics.MetricsScraper` sample in the
background, and is written to the bundle as soon as it finishes.  The server is stopped on every exit
path (including Ctrl-C and SIGTERM) and the manifest's status says how the run ended.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from calibrate.bundle import BundleWriter, utc_now
from calibrate.envinfo import collect_env
from calibrate.metrics import MetricsScraper
from calibrate.power import PowerSampler, gpu_inventory, nvml_indices
from calibrate.runner.bench import BenchConfig, run_bench
from calibrate.server import ServerConfig, VllmServer, parse_cuda_graphs, parse_kv_cache
from calibrate.sweep import PointOutcome, SweepConfig, estimate_seconds, next_rate, round_rate

#: rough seconds a point costs beyond prompts / rate (client start-up, drain)
PER_POINT_OVERHEAD_S = 15.0


@dataclass
class RunPlan:
    server: ServerConfig
    bench: BenchConfig
    sweep: SweepConfig
    out: Path
    seed: int = 1000
    price_per_gpu_hour: float = 2.0
    price_source: str | None = None
    """Where an assumed price comes from, for the estimate's line; None: the user gave it."""
    startup_estimate_s: float = 120.0
    server_timeout_s: float = 1200.0
    bench_timeout_s: float | None = None
    power_interval_s: float = 0.2
    metrics_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.price_per_gpu_hour < math.inf:
            raise ValueError(f"price_per_gpu_hour(={self.price_per_gpu_hour}) must be a finite number >= 0")
        if not 0 <= self.startup_estimate_s < math.inf:
            raise ValueError(f"startup_estimate_s(={self.startup_estimate_s}) must be a finite number >= 0")
        for name in ("server_timeout_s", "power_interval_s", "metrics_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}(={getattr(self, name)}) must be > 0")
        if self.bench_timeout_s is not None and not self.bench_timeout_s > 0:
            raise ValueError(f"bench_timeout_s(={self.bench_timeout_s}) must be > 0")
        top = 2**32 - 1 - self.sweep.max_points  # vLLM's client seeds NumPy, which takes 0..2**32-1
        if not 0 <= self.seed <= top:
            raise ValueError(f"seed(={self.seed}) must be in 0..{top} (point i runs vLLM's client with --seed "
                             "seed + i, below 2**32)")

    def seed_for(self, index: int) -> int:
        """Every point draws its own prompts, so no point finds another's prompts in the prefix cache."""
        return self.seed + index


def identity(plan: RunPlan) -> dict[str, Any]:
    """Settings a resume must repeat.  --max-points, --max-rate and --refine are left out: they only
    bound how far the sweep goes, so a finished bundle can be extended by raising them."""
    s = plan.server
    return {
        "model": s.model,
        "tp": s.tp,
        "dtype": s.dtype,
        "max_model_len": s.max_model_len,
        "gpu_memory_utilization": s.gpu_memory_utilization,
        "max_num_seqs": s.max_num_seqs,
        "max_num_batched_tokens": s.max_num_batched_tokens,
        "prefix_caching": s.prefix_caching,
        "device": s.device,
        "attention_backend": s.attention_backend if s.device == "cuda" else None,
        "server_extra_args": list(s.extra_args),
        "load": plan.bench.describe(),
        "seed": plan.seed,
        "sweep": {
            "start_rate": plan.sweep.start_rate,
            "factor": plan.sweep.factor,
            "throughput_ratio": plan.sweep.throughput_ratio,
            "ttft_factor": plan.sweep.ttft_factor,
        },
    }


def estimate(plan: RunPlan) -> dict[str, Any]:
    """Worst-case points, wall time and GPU cost of the sweep (no point saturating early)."""
    growth = plan.sweep.growth_rates()
    extra = []
    if len(growth) >= 2:
        lo, hi = growth[-2], growth[-1]
        extra = [round_rate(math.sqrt(lo * hi))] * plan.sweep.refine
    rates = (growth + extra)[: plan.sweep.max_points]
    seconds = estimate_seconds(rates, plan.bench.num_prompts, plan.startup_estimate_s, PER_POINT_OVERHEAD_S)
    gpus = plan.server.tp
    return {
        "rates": rates,
        "points": len(rates),
        "seconds": seconds,
        "gpus": gpus,
        "cost": seconds / 3600.0 * gpus * plan.price_per_gpu_hour,
    }


def describe_plan(plan: RunPlan) -> str:
    est = estimate(plan)
    sample_cmd = plan.bench.command(plan.server.base_url, est["rates"][0], plan.seed_for(0),
                                    plan.out / ".work", f"rate-{est['rates'][0]:g}.json")
    env = " ".join(f"{k}={v}" for k, v in plan.server.env().items())
    return "\n".join([
        f"bundle:   {plan.out}",
        f"server:   {env + ' ' if env else ''}{shlex.join(plan.server.command())}",
        f"client:   {shlex.join(sample_cmd)}",
        f"          (first point; later points change --request-rate and --seed = {plan.seed} + index)",
        f"sweep:    rates {', '.join(f'{r:g}' for r in est['rates'])} req/s at most "
        f"(stops growing at the knee, then refines it {plan.sweep.refine}×)",
        f"prefix caching: {plan.server.prefix_caching}",
        f"estimate: up to {est['points']} points × {plan.bench.num_prompts} prompts, "
        f"~{est['seconds'] / 60:.0f} min, ~${est['cost']:.2f} ({cost_basis(plan, est['gpus'])})",
    ])


def cost_basis(plan: RunPlan, gpus: int) -> str:
    """How the estimate's cost was reckoned: GPUs × price, and where an assumed price comes from."""
    if plan.server.device == "cpu" and plan.price_source is not None:
        return plan.price_source
    rate = f"{gpus} GPU × ${plan.price_per_gpu_hour:g}/GPU-hour"
    return rate if plan.price_source is None else f"{rate}, {plan.price_source}"


def power_devices(tp: int, inventory: dict[str, Any] | None = None) -> list[int]:
    """NVML indices of the GPUs the server uses: the first ``tp`` of CUDA_VISIBLE_DEVICES, given as indices
    or as GPU UUIDs (or unique prefixes of them, as CUDA takes them: looked up in ``inventory``, else a fresh
    :func:`~calibrate.power.gpu_inventory`); else the first ``tp`` GPUs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        parts = [p.strip() for p in visible.split(",") if p.strip()][:tp]
        if all(p.isdigit() for p in parts):
            return [int(p) for p in parts]
        uuids = (inventory if inventory is not None else gpu_inventory()).get("uuids") or []
        if (found := nvml_indices(parts, uuids)) is not None:
            return found
    return list(range(tp))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the server is stopped and the manifest saved."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def outcomes(points: list[dict[str, Any]]) -> list[PointOutcome]:
    return [PointOutcome.from_result(p["rate"], p["result"]) for p in points]


def run_point(
    plan: RunPlan, writer: BundleWriter, server: VllmServer, rate: float, index: int, devices: list[int] | None
) -> dict[str, Any]:
    """One sweep point; ``devices``: the NVML indices whose power is sampled (None: no sampling)."""
    seed = plan.seed_for(index)
    work = writer.work_dir
    result_file = f"rate-{rate:g}.json"
    cmd = plan.bench.command(server.config.base_url, rate, seed, work, result_file)
    sampler = PowerSampler(plan.power_interval_s, devices=devices) if devices is not None else None
    scraper = MetricsScraper(server.config.base_url, plan.metrics_interval_s)
    started, t0 = utc_now(), time.monotonic()
    if sampler is not None:
        sampler.start()
    scraper.start()
    try:
        result = run_bench(cmd, writer.root / "bench.log", work / result_file, plan.bench_timeout_s)
    finally:
        scraper.stop()
        if sampler is not None:
            sampler.stop()
            sampler.close()
    power = sampler.summary() if sampler is not None else {
        "available": False, "reason": "device is cpu (vLLM CPU build): no GPU power to measure"}
    with contextlib.suppress(OSError):
        (work / result_file).unlink()  # the result now lives in the point file
    point = {
        "index": index,
        "rate": rate,
        "seed": seed,
        "burstiness": plan.bench.burstiness,
        "num_prompts": plan.bench.num_prompts,
        "command": cmd,
        "started": started,
        "finished": utc_now(),
        "wall_s": time.monotonic() - t0,
        "result": result,
        "power": power,
        "metrics": scraper.summary(),
    }
    kv = writer.manifest.setdefault("server", {}).setdefault("kv_cache", {})
    for key, value in scraper.cache.items():
        kv.setdefault(key, value)
    return point


def execute(plan: RunPlan, console: Console | None = None) -> int:
    """Run (or resume) the sweep described by ``plan``; returns the exit status."""
    console = console or Console(stderr=True, soft_wrap=True)
    writer = BundleWriter(plan.out, identity(plan))
    done = outcomes(writer.points)
    state = next_rate(done, plan.sweep)
    if state.next_rate is None and writer.manifest["status"] == "complete":
        console.print(f"[green]{plan.out}: sweep already complete[/] ({len(writer.points)} points)")
        return 0
    if writer.points:
        console.print(f"resuming {plan.out}: {len(writer.points)} points done "
                      f"({', '.join(f'{p.rate:g}' for p in done)} req/s)")
    console.print(describe_plan(plan))
    status = "interrupted"
    with sigterm_as_interrupt():
        server = VllmServer(plan.server, writer.root / "server.log")
        env = collect_env(plan.server.model)
        writer.update(status="running", env=env,
                      server={"command": server.command, "env": server.env_added, "port": plan.server.port})
        # the GPUs whose power is read, found once in the inventory just recorded
        devices = power_devices(plan.server.tp, env["gpus"]) if plan.server.device == "cuda" else None
        try:
            status = _sweep(plan, writer, server, state, console, devices)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            writer.manifest["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            console.print("stopping the vLLM server …")
            server.stop()
            kv = parse_kv_cache(server.log_text())
            if kv:
                writer.manifest["server"].setdefault("kv_cache", {}).update(kv)
            if status == "complete":
                writer.manifest.pop("error", None)
            writer.update(status=status)
    console.print(f"[green]done[/]: {len(writer.points)} points in {plan.out}")
    return 0


def _sweep(plan: RunPlan, writer: BundleWriter, server: VllmServer, state: Any, console: Console,
           devices: list[int] | None) -> str:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if state.next_rate is not None:
        console.print("starting the vLLM server …")
        server.start()
        waited = server.wait_healthy(plan.server_timeout_s)
        writer.manifest["server"]["startup_s"] = waited
        log = server.log_text()
        writer.manifest["server"]["kv_cache"] = parse_kv_cache(log)
        graphs = parse_cuda_graphs(log)
        if graphs is not None:
            writer.manifest["server"]["cuda_graph_max_tokens"] = graphs
        writer.save()
        console.print(f"server healthy after {waited:.0f} s")
    total = estimate(plan)["points"]
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total} points"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sweep", total=max(total, len(writer.points)), completed=len(writer.points))
        while state.next_rate is not None:
            rate, index = state.next_rate, len(writer.points)
            progress.update(task, description=f"{state.phase}: {rate:g} req/s (seed {plan.seed_for(index)})")
            point = run_point(plan, writer, server, rate, index, devices)
            writer.add_point(point)
            server.check_alive()
            res = point["result"]
            progress.console.print(
                f"  rate {rate:g}: {res.get('completed')}/{plan.bench.num_prompts} ok, "
                f"{res.get('request_throughput', 0):.3g} req/s, "
                f"median TTFT {res.get('median_ttft_ms', 0):.0f} ms, "
                f"TPOT {res.get('median_tpot_ms', 0):.1f} ms"
            )
            state = next_rate(outcomes(writer.points), plan.sweep)
            progress.update(task, completed=len(writer.points), total=max(total, len(writer.points) + (
                1 if state.next_rate is not None else 0)))
    writer.manifest["sweep"] = {"knee": {"below": state.below, "above": state.above}, "end": state.reason}
    knee = (f"knee between {state.below:g} and {state.above:g} req/s" if state.below and state.above
            else f"highest unsaturated rate {state.below:g} req/s" if state.below
            else "no unsaturated rate found")
    console.print(f"sweep finished: {state.reason}; {knee}")
    return "complete"
