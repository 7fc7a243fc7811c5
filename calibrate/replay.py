"""Replaying a measured run in the simulator: same load, same engine limits, same cache state.

A :class:`~calibrate.importer.MeasuredRun` says what load a vLLM server met; :mod:`calibrate.workload`
rebuilds it (lengths, send times, prefix-cache hits).  :func:`replay` runs that load through one
simulated replica (:class:`sim.replica.Replica`, the vLLM-V1-like engine) whose steps take the time
the :class:`~sim.service.StepTimeModel` gives for the model's config and a
:class:`~sim.service.HardwareProfile`, and returns the metrics vLLM's client reports, under its field
names, averaged over several seeds so that 200-request noise is not mistaken for signal.

What the replay takes from the measurement besides the load:

* the engine's limits: ``max_num_seqs`` / ``max_num_batched_tokens`` as the server used them (from a
  bundle's command line) or vLLM 0.8.5's OpenAI-server defaults (:func:`vllm_default_limits`).
* KV capacity: reported by the server (bundles), else from the profile's memory model
  (:func:`sim.service.profile_kv_tokens`).
* the client's view: TTFT and end-to-end latencies include the request-path latency (HTTP,
  tokenisation, streaming: the profile's ``frontend_s``, spread by its ``frontend_spread``); request
  throughput = completed / (first send to last completion); a client concurrency limit
  (``--max-concurrency``) holds requests back until a slot frees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from calibrate.importer import MeasuredRun
from calibrate.workload import BLOCK, LengthModel, cached_prompt_tokens, run_workload
from scenarios.catalog import GpuSpec
from scenarios.models import ModelSpec
from sim.replica import ITL_BINS, Replica
from sim.requests import LATENCY_STREAM, RequestTable, client_latency
from sim.results import itl_percentiles
from sim.service import CUDA_GRAPH_MAX_TOKENS, HardwareProfile, StepTimeModel, profile_gpu, profile_kv_tokens

#: seeds a replay averages over unless told otherwise
DEFAULT_SEEDS = (0, 1, 2, 3)
#: gpu_memory_utilization assumed where the default 0.9 could not hold the model's context
RAISED_UTILIZATION = 0.95


def vllm_default_limits(gpu: str) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) of vLLM 0.8.5's OpenAI server (V1 engine).

    ``EngineArgs._set_default_args_v1`` in 0.8.5: a device whose name contains "h100" or "h200" gets a
    step budget of 8192 tokens and 1024 sequences (PR #12369 / #16158), any other 2048 and 256.  Later
    releases key this on memory (>= 70 GiB, not A100) instead; bundles record what the server used.
    """
    name = gpu.lower()
    if "h100" in name or "h200" in name:
        return 1024, 8192
    return 256, 2048


@dataclass(frozen=True)
class EngineSettings:
    """The server's limits for one replay."""

    max_num_seqs: int
    max_num_batched_tokens: int
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    block_size: int = BLOCK
    kv_cache_tokens: int | None = None
    """Reported by the server; when None the profile's memory model decides."""
    cuda_graph_max_tokens: int = CUDA_GRAPH_MAX_TOKENS
    """Largest step replayed from a captured CUDA graph (0: ``--enforce-eager``)."""

    def __post_init__(self) -> None:
        if self.cuda_graph_max_tokens < 0:
            raise ValueError(f"cuda_graph_max_tokens(={self.cuda_graph_max_tokens}) must be >= 0")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs(={self.max_num_seqs}) must be >= 1")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens(={self.max_num_batched_tokens}) must be >= "
                             f"max_num_seqs(={self.max_num_seqs})")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization(={self.gpu_memory_utilization}) must be in (0, 1]")


def engine_settings(run: MeasuredRun) -> EngineSettings:
    """What the run's server used: the bundle's recorded values, else vLLM 0.8.5's defaults."""
    seqs, tokens = vllm_default_limits(run.gpu_name if run.gpu_name else run.gpu)
    e = run.engine
    return EngineSettings(
        max_num_seqs=int(e.get("max_num_seqs", seqs)),
        max_num_batched_tokens=int(e.get("max_num_batched_tokens", tokens)),
        gpu_memory_utilization=float(e.get("gpu_memory_utilization") or 0.9),
        max_model_len=int(e["max_model_len"]) if e.get("max_model_len") else None,
        block_size=int(e.get("block_size", BLOCK)),
        kv_cache_tokens=int(e["kv_cache_tokens"]) if e.get("kv_cache_tokens") else None,
        cuda_graph_max_tokens=int(e.get("cuda_graph_max_tokens", CUDA_GRAPH_MAX_TOKENS)),
    )


# --------------------------------------------------------------------------------------- the engine
def run_engine(
    step: StepTimeModel, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, cached: np.ndarray,
    *, kv_tokens: int, settings: EngineSettings, max_model_len: int, max_concurrency: int | None = None,
) -> tuple[RequestTable, np.ndarray, int]:
    """One replica serving the requests; returns the request table, ITL histogram and preemptions.

    ``max_concurrency``: the client's limit on requests in flight (``vllm bench serve
    --max-concurrency``).  Its requests queue in order for a free slot after their scheduled arrival,
    and the client's clock (TTFT, end-to-end) starts when a request is sent, as vLLM's client does;
    a request the server refuses frees its slot at once."""
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency(={max_concurrency}) must be >= 1")
    n = len(arrival)
    table = RequestTable(arrival, np.zeros(n, np.int32), prompt, output, cached, ("run",))
    env = simpy.Environment()
    hist = [[0.0] * ITL_BINS]
    outs = [0]
    slot: list[simpy.Event | None] = [None]

    def freed(rid: int) -> None:
        ev = slot[0]
        if ev is not None and not ev.triggered:
            ev.succeed()

    rep = Replica(env, 0, 0, step, table, kv_tokens=kv_tokens, max_num_seqs=settings.max_num_seqs,
                  max_num_batched_tokens=settings.max_num_batched_tokens, max_model_len=max_model_len,
                  block_size=settings.block_size, itl_hist=hist, outs=outs,
                  on_finish=freed if max_concurrency else None)
    times = table.arrival

    def source() -> object:
        for rid in range(n):
            dt = times[rid] - env.now
            if dt > 0:
                yield env.timeout(dt)
            if max_concurrency:
                while outs[0] >= max_concurrency:
                    slot[0] = env.event()
                    yield slot[0]
                times[rid] = env.now  # sent now: the client's clock starts here
            rep.arrive(rid)

    env.process(source())  # type: ignore[arg-type]
    env.run()
    stuck = sum(1 for f, r in zip(table.finish, table.rejected, strict=True) if not r and not math.isfinite(f))
    if stuck:
        raise RuntimeError(f"the simulated replica left {stuck} request(s) neither finished nor rejected "
                           "(an engine bug, not a property of the run)")
    return table, np.asarray(hist[0]), rep.preemptions


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0 if len(values) else math.nan


def client_metrics(table: RequestTable, hist: np.ndarray, latency: np.ndarray) -> dict[str, float]:
    """The metrics of vLLM's client (ms; throughputs per second) from one simulated run; ``latency``: each
    request's request-path latency (:func:`sim.requests.client_latency`)."""
    arrival = np.asarray(table.arrival)
    first = np.asarray(table.first)
    finish = np.asarray(table.finish)
    out = np.asarray(table.output)
    prompt = np.asarray(table.prompt)
    done = np.isfinite(finish)
    lat = latency[done]
    ttft = first[done] - arrival[done] + lat
    o = out[done]
    tpot = ((finish[done] - first[done]) / np.maximum(o - 1, 1))[o > 1]
    duration = float((finish[done] + lat).max() - arrival.min()) if done.any() else math.inf
    itl = itl_percentiles(hist)
    m = {
        "request_throughput": done.sum() / duration,
        "output_throughput": float(o.sum()) / duration,
        "total_token_throughput": float(o.sum() + prompt[done].sum()) / duration,
        "mean_ttft_ms": float(ttft.mean()) * 1000.0 if len(ttft) else math.nan,
        "median_ttft_ms": _pct(ttft, 50), "p90_ttft_ms": _pct(ttft, 90), "p99_ttft_ms": _pct(ttft, 99),
        "mean_tpot_ms": float(tpot.mean()) * 1000.0 if len(tpot) else math.nan,
        "median_tpot_ms": _pct(tpot, 50), "p90_tpot_ms": _pct(tpot, 90), "p99_tpot_ms": _pct(tpot, 99),
        "mean_itl_ms": itl["mean"], "median_itl_ms": itl["p50"], "p90_itl_ms": itl["p90"],
        "p99_itl_ms": itl["p99"],
    }
    return {k: float(v) for k, v in m.items()}


# --------------------------------------------------------------------------------------- the replay
@dataclass(frozen=True)
class ReplayOutcome:
    """Predicted metrics (vLLM names, mean over seeds) and what the simulated server saw."""

    metrics: dict[str, float]
    kv_tokens: int
    cache_hit: float
    """Fraction of prompt tokens served from the prefix cache (mean over seeds)."""
    preemptions: float
    seeds: int


def context_error(run: MeasuredRun, model: ModelSpec, settings: EngineSettings, prompt: np.ndarray,
                  output: np.ndarray) -> str | None:
    """Why the replayed server would refuse more of the run's requests than the measured one failed (their
    prompt and output beyond the context it takes: the server's ``max_model_len``, else the model's
    ``max_position_embeddings``), or None: such a replay predicts no throughput, a number with no meaning."""
    limit = settings.max_model_len or model.max_position_embeddings
    total = np.asarray(prompt, dtype=np.int64) + np.asarray(output, dtype=np.int64)
    over = int(np.count_nonzero(total > limit))
    if over <= run.num_prompts - run.completed:
        return None
    what = ("max_model_len (the server's --max-model-len, or --engine max_model_len)" if settings.max_model_len
            else f"{model.name}'s max_position_embeddings (its config.json)")
    return (f"{over} of its {len(total)} requests (up to {int(total.max())} tokens, prompt and output) are longer "
            f"than the context of {limit} tokens the replayed server takes, {what}; yet the measured server "
            f"completed {run.completed} of {run.num_prompts}")


def kv_tokens_for(run: MeasuredRun, model: ModelSpec, gpu: GpuSpec, profile: HardwareProfile,
                  settings: EngineSettings) -> int:
    """KV capacity of the run's server: as reported, else the profile's memory model.

    Where the file does not say which ``gpu_memory_utilization`` the server ran with, the published
    runs' rule applies (shared/measurements/README.md: the flag was set "only where the model would
    not fit otherwise"): vLLM refuses to start when one sequence of the model's full context does not
    fit in the KV cache, and the operator then raised the utilization to :data:`RAISED_UTILIZATION`.
    """
    if settings.kv_cache_tokens:
        return settings.kv_cache_tokens
    limits = {"max_num_seqs": settings.max_num_seqs, "max_num_batched_tokens": settings.max_num_batched_tokens}
    kv = profile_kv_tokens(model, gpu, run.gpu_count, settings.gpu_memory_utilization, profile, **limits)
    if "gpu_memory_utilization" not in run.engine and kv < model.max_position_embeddings:
        kv = max(kv, profile_kv_tokens(model, gpu, run.gpu_count, RAISED_UTILIZATION, profile, **limits))
    return kv


def replay(
    run: MeasuredRun,
    model: ModelSpec,
    gpu: GpuSpec,
    profile: HardwareProfile,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    lengths: LengthModel | None = None,
    settings: EngineSettings | None = None,
) -> ReplayOutcome:
    """Simulate ``run`` under ``profile`` for each seed; metrics averaged over the seeds."""
    if not seeds:
        raise ValueError("seeds(=()) must name at least one seed")
    settings = settings or engine_settings(run)
    lengths = lengths or LengthModel()
    step = StepTimeModel(model, gpu, profile, run.gpu_count, settings.cuda_graph_max_tokens)
    kv = kv_tokens_for(run, model, gpu, profile, settings)
    if kv < 4 * settings.block_size:
        if settings.kv_cache_tokens:  # as the server (or --engine) reported it, not the memory model's
            raise ValueError(f"{run.label()}: a KV cache of {kv} tokens (kv_cache_tokens) holds under four blocks "
                             f"of {settings.block_size} tokens")
        if kv > 0:  # room for some cache, but not for four blocks of this size
            raise ValueError(f"{run.label()}: a KV cache of {kv} tokens (this profile's memory model) holds under "
                             f"four blocks of {settings.block_size} tokens (block_size)")
        per_gpu, mem = model.weight_bytes / run.gpu_count / 1e9, profile_gpu(gpu, profile).memory_gb
        raise ValueError(f"{run.label()}: {per_gpu:.1f} GB of weights per GPU leave no KV cache on a {mem:.1f} GB "
                         f"GPU (kv_tokens={kv} under this profile's memory model)")
    max_len = min(settings.max_model_len or model.max_position_embeddings, kv - settings.block_size)
    sums: dict[str, float] = {}
    hit = pre = 0.0
    for seed in seeds:
        arrival, prompt, output = run_workload(run, seed, lengths)
        if why := context_error(run, model, settings, prompt, output):
            raise ValueError(f"{run.label()}: {why}")
        if run.prefix_caching == "auto" and run.order > 0:
            cached = cached_prompt_tokens(prompt, output, run.order, kv, settings.block_size)
        elif run.prefix_caching == "off":
            cached = np.zeros(len(prompt), dtype=np.int64)
        else:  # cold cache: only the warm-up request's prompt (the first) is cached
            cached = np.zeros(len(prompt), dtype=np.int64)
            cached[0] = ((int(prompt[0]) - 1) // settings.block_size) * settings.block_size
        table, hist, preempt = run_engine(step, arrival, prompt, output, cached, kv_tokens=kv,
                                          settings=settings, max_model_len=max_len,
                                          max_concurrency=run.max_concurrency)
        latency = client_latency(table.replica, [profile.frontend_s], [profile.frontend_spread],
                                 np.random.default_rng((seed, LATENCY_STREAM)))
        for name, value in client_metrics(table, hist, latency).items():
            sums[name] = sums.get(name, 0.0) + value
        hit += float(cached.sum()) / max(float(prompt.sum()), 1.0)
        pre += preempt
    n = len(seeds)
    return ReplayOutcome({m: v / n for m, v in sums.items()}, kv, hit / n, pre / n, n)
