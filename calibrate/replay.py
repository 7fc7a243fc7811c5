"""Replaying a measured run in the simulator: same load, same engine limits, same cache state.

A :class:`~calibrate.importer.MeasuredRun` says what load a vLLM server met: ``num_prompts`` requests
at ``request_rate`` (gamma inter-arrival times of shape ``burstiness``; 1 = Poisson), the first one
sent at once, with known token totals (or per-request lengths).  :func:`replay` rebuilds that load
and runs it through one simulated replica (:class:`sim.replica.Replica`, the vLLM-V1-like engine)
whose steps take the time the :class:`~sim.service.StepTimeModel` gives for the model's config and
a :class:`~sim.service.HardwareProfile`; it returns the metrics vLLM's client reports, under its field
names, averaged over several seeds so that 200-request noise is not mistaken for signal.

What the replay reproduces of the measurement:

* lengths: the per-request arrays when the file has them; otherwise vLLM's ShareGPT sampler —
  prompt and output each >= 4 tokens, prompt <= 1024 and prompt + output <= 2048 — modelled as
  lognormal lengths within those bounds, rescaled so that the run's totals hold exactly.
* the engine's limits: ``max_num_seqs`` / ``max_num_batched_tokens`` as the server used them (from a
  bundle's command line) or vLLM 0.8.5's OpenAI-server defaults (:func:`vllm_default_limits`).
* KV capacity: reported by the server (bundles), else from the profile's memory model
  (:func:`sim.service.profile_kv_tokens`).
* prefix caching (vLLM V1 has it on by default): every run of a session after the first meets the
  prompts its predecessors left in the cache.  :func:`cached_prompt_tokens` plays the block-level LRU
  cache over the session's earlier runs (and the client's warm-up request) and counts, per request,
  the whole 16-token prompt blocks still cached — at least one token is always recomputed.  A large
  cache keeps all prompts of a 200-prompt sweep; a small one (cyclic reuse under LRU) keeps none.
* the client's view: TTFT and end-to-end latencies include the profile's ``frontend_s`` (HTTP,
  tokenisation, streaming); request throughput = completed / (first send to last completion).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import simpy
from scipy.optimize import brentq
from scipy.stats import norm

from calibrate.importer import MeasuredRun
from scenarios.catalog import GpuSpec, ModelSpec
from sim.replica import ITL_BINS, Replica
from sim.requests import RequestTable
from sim.results import itl_percentiles
from sim.service import HardwareProfile, StepTimeModel, profile_kv_tokens

#: seeds a replay averages over unless told otherwise
DEFAULT_SEEDS = (0, 1, 2, 3)
BLOCK = 16


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

    def __post_init__(self) -> None:
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
    )


# ------------------------------------------------------------------------------------------ lengths
@dataclass(frozen=True)
class LengthModel:
    """Lengths of a totals-only run: lognormal within vLLM's ShareGPT sampler bounds.

    The sigmas describe the spread of ShareGPT V3 prompts and replies (an assumption: totals-only files
    carry no spread); mu is solved so that the truncated mean matches the run's mean, and the drawn
    lengths are then rescaled to the run's exact totals.
    """

    min_len: int = 4
    max_prompt: int = 1024
    max_total: int = 2048
    prompt_sigma: float = 1.1
    output_sigma: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_len <= self.max_prompt < self.max_total:
            raise ValueError(f"bounds(min_len={self.min_len}, max_prompt={self.max_prompt}, "
                             f"max_total={self.max_total}) must satisfy 1 <= min <= max_prompt < max_total")
        for name in ("prompt_sigma", "output_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}(={getattr(self, name)}) must be > 0")


def _truncated_mu(mean: float, sigma: float, lo: float, hi: float) -> float:
    """mu of a lognormal whose mean within [lo, hi] is ``mean``."""
    mean = min(max(mean, lo * 1.0001), hi * 0.9999)
    a, b = math.log(lo), math.log(hi)

    def tmean(mu: float) -> float:
        z = norm.cdf((b - mu) / sigma) - norm.cdf((a - mu) / sigma)
        w = norm.cdf((b - mu - sigma**2) / sigma) - norm.cdf((a - mu - sigma**2) / sigma)
        return math.exp(mu + sigma**2 / 2) * w / max(z, 1e-300) - mean

    return float(brentq(tmean, a - 10 * sigma, b + 10 * sigma))


def _rescale(values: np.ndarray, total: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer lengths within [lo, hi] with the given sum (as close as the bounds allow)."""
    v = values.astype(np.float64)
    for _ in range(20):
        v = np.clip(v * (total / max(v.sum(), 1.0)), lo, hi)
    out = np.clip(np.rint(v), lo, hi).astype(np.int64)
    diff = int(total - out.sum())
    order = rng.permutation(len(out))
    while diff != 0:
        step = 1 if diff > 0 else -1
        moved = 0
        for i in order:
            if diff == 0:
                break
            if lo[i] <= out[i] + step <= hi[i]:
                out[i] += step
                diff -= step
                moved += 1
        if moved == 0:
            break
    return out


def _truncated_quantiles(u: np.ndarray, mu: float, sigma: float, lo: float, hi: float) -> np.ndarray:
    a, b = norm.cdf((math.log(lo) - mu) / sigma), norm.cdf((math.log(hi) - mu) / sigma)
    q = np.clip(a + u * (b - a), 1e-12, 1.0 - 1e-12)
    return np.clip(np.exp(mu + sigma * norm.ppf(q)), lo, hi)


def sample_lengths(
    n: int, total_in: int, total_out: int, rng: np.random.Generator, model: LengthModel = LengthModel()
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) pairs within the sampler's bounds, summing to the given totals.

    Latin-hypercube draws (one per quantile stratum, strata paired at random) keep the shape of the
    distribution in every seed, so seeds differ in order and pairing, not in how long the tail is.
    """
    if n < 1:
        raise ValueError(f"n(={n}) must be >= 1")
    lo = float(model.min_len)
    mean_in = total_in / n
    mean_out = total_out / n
    mu_p = _truncated_mu(mean_in, model.prompt_sigma, lo, model.max_prompt)
    mu_o = _truncated_mu(mean_out, model.output_sigma, lo, model.max_total - lo)
    u_p = (rng.permutation(n) + rng.random(n)) / n
    u_o = (rng.permutation(n) + rng.random(n)) / n
    prompt = _truncated_quantiles(u_p, mu_p, model.prompt_sigma, lo, model.max_prompt)
    output = _truncated_quantiles(u_o, mu_o, model.output_sigma, lo, model.max_total - lo)
    lo_arr = np.full(n, lo)
    p_int = _rescale(prompt, total_in, lo_arr, np.full(n, float(model.max_prompt)), rng)
    o_int = _rescale(output, total_out, lo_arr, np.maximum(model.max_total - p_int, lo).astype(np.float64), rng)
    return p_int, o_int


def arrival_times(n: int, rate: float, burstiness: float, rng: np.random.Generator) -> np.ndarray:
    """Send times as vLLM's client makes them: the first at 0, then gamma gaps (Poisson at 1)."""
    if not math.isfinite(rate):
        return np.zeros(n)
    gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), max(n - 1, 0))
    return np.concatenate([[0.0], np.cumsum(gaps)])


def client_arrival_times(n: int, rate: float, burstiness: float, client_seed: int) -> np.ndarray:
    """The send times vLLM's ``benchmark_serving.py`` (0.8.x) made with ``--seed client_seed``.

    That client seeds NumPy's global legacy generator with the seed and, for the ShareGPT dataset,
    draws nothing else from it before the arrival gaps (``np.random.gamma(burstiness, theta)`` after
    each request), so the schedule is a deterministic function of seed, rate and burstiness: a
    reconstruction of the measurement, not a random draw.
    """
    if not math.isfinite(rate):
        return np.zeros(n)
    legacy = np.random.RandomState(client_seed)
    gaps = legacy.gamma(burstiness, 1.0 / (rate * burstiness), max(n - 1, 0))
    return np.concatenate([[0.0], np.cumsum(gaps)])


# ------------------------------------------------------------------------------------ prefix cache
@lru_cache(maxsize=4096)
def _lru_cached(prompt: tuple[int, ...], output: tuple[int, ...], cycles: int, capacity: int,
                block: int) -> tuple[int, ...]:
    cache: OrderedDict[tuple[int, int, int], None] = OrderedDict()
    fresh = 0

    def request(i: int, cycle: int, count: bool) -> int:
        nonlocal fresh
        p = prompt[i]
        full = p // block
        hit = 0
        leading = True
        for j in range(full):
            key = (0, i, j)
            if key in cache:
                cache.move_to_end(key)
                if leading:
                    hit += 1
            else:
                leading = False
                cache[key] = None
        tail = -(-(p + output[i]) // block) - full
        for _ in range(tail):
            fresh += 1
            cache[(1, fresh, 0)] = None
        while len(cache) > capacity:
            cache.popitem(last=False)
        return min(hit * block, ((p - 1) // block) * block) if count else 0

    for cycle in range(cycles):
        request(0, cycle, False)  # the client's warm-up request: the first prompt
        for i in range(len(prompt)):
            request(i, cycle, False)
    request(0, cycles, False)
    return tuple(request(i, cycles, True) for i in range(len(prompt)))


def cached_prompt_tokens(
    prompt: np.ndarray, output: np.ndarray, earlier_runs: int, capacity_tokens: int, block: int = BLOCK
) -> np.ndarray:
    """Prompt tokens each request finds in the prefix cache after ``earlier_runs`` runs of the same
    prompts (plus one warm-up request of the first prompt before every run), under LRU eviction of
    a ``capacity_tokens`` cache.  Requests are taken in arrival order; blocks of running requests are
    not pinned (a sequential approximation).  More than two earlier runs change nothing."""
    cap = max(int(capacity_tokens) // block, 1)
    res = _lru_cached(tuple(int(x) for x in prompt), tuple(int(x) for x in output), min(earlier_runs, 2),
                      cap, block)
    return np.asarray(res, dtype=np.int64)


# --------------------------------------------------------------------------------------- the engine
def run_engine(
    step: StepTimeModel, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, cached: np.ndarray,
    *, kv_tokens: int, settings: EngineSettings, max_model_len: int,
) -> tuple[RequestTable, np.ndarray, int]:
    """One replica serving the requests; returns the request table, ITL histogram and preemptions."""
    n = len(arrival)
    table = RequestTable(arrival, np.zeros(n, np.int32), prompt, output, cached, ("run",))
    env = simpy.Environment()
    hist = [[0.0] * ITL_BINS]
    rep = Replica(env, 0, 0, step, table, kv_tokens=kv_tokens, max_num_seqs=settings.max_num_seqs,
                  max_num_batched_tokens=settings.max_num_batched_tokens, max_model_len=max_model_len,
                  block_size=settings.block_size, itl_hist=hist, outs=[0])
    times = table.arrival

    def source() -> object:
        for rid in range(n):
            dt = times[rid] - env.now
            if dt > 0:
                yield env.timeout(dt)
            rep.arrive(rid)

    env.process(source())  # type: ignore[arg-type]
    env.run()
    return table, np.asarray(hist[0]), rep.preemptions


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0 if len(values) else math.nan


def client_metrics(table: RequestTable, hist: np.ndarray, frontend_s: float) -> dict[str, float]:
    """The metrics of vLLM's client (ms; throughputs per second) from one simulated run."""
    arrival = np.asarray(table.arrival)
    first = np.asarray(table.first)
    finish = np.asarray(table.finish)
    out = np.asarray(table.output)
    prompt = np.asarray(table.prompt)
    done = np.isfinite(finish)
    ttft = first[done] - arrival[done] + frontend_s
    o = out[done]
    tpot = ((finish[done] - first[done]) / np.maximum(o - 1, 1))[o > 1]
    duration = float(finish[done].max() + frontend_s - arrival.min()) if done.any() else math.inf
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


def _stream(seed: int, text: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(text.encode())]))


def run_workload(run: MeasuredRun, seed: int, lengths: LengthModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival, prompt, output) of one replay seed; the prompts are shared by a session's runs."""
    n = run.num_prompts
    if run.input_lens is not None and run.output_lens is not None and len(run.input_lens) == len(run.output_lens):
        prompt = np.maximum(np.asarray(run.input_lens, dtype=np.int64), 1)
        output = np.maximum(np.asarray(run.output_lens, dtype=np.int64), 1)
        n = len(prompt)
    else:
        prompt, output = sample_lengths(n, run.total_input_tokens, run.total_output_tokens,
                                        _stream(seed, f"lengths|{run.session}"), lengths)
    if run.client_seed is not None:
        arrival = client_arrival_times(n, run.request_rate, run.burstiness, run.client_seed)
    else:
        arrival = arrival_times(n, run.request_rate, run.burstiness, _stream(seed, f"arrivals|{run.where}"))
    return arrival, prompt, output


def kv_tokens_for(run: MeasuredRun, model: ModelSpec, gpu: GpuSpec, profile: HardwareProfile,
                  settings: EngineSettings) -> int:
    if settings.kv_cache_tokens:
        return settings.kv_cache_tokens
    return profile_kv_tokens(model, gpu, run.gpu_count, settings.gpu_memory_utilization, profile)


def replay(
    run: MeasuredRun,
    model: ModelSpec,
    gpu: GpuSpec,
    profile: HardwareProfile,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    lengths: LengthModel = LengthModel(),
    settings: EngineSettings | None = None,
) -> ReplayOutcome:
    """Simulate ``run`` under ``profile`` for each seed; metrics averaged over the seeds."""
    if not seeds:
        raise ValueError("seeds(=()) must name at least one seed")
    settings = settings or engine_settings(run)
    step = StepTimeModel(model, gpu, profile, run.gpu_count)
    kv = kv_tokens_for(run, model, gpu, profile, settings)
    if kv < 4 * settings.block_size:
        raise ValueError(f"{run.label()}: the weights leave no KV cache (kv_tokens={kv}) under this profile")
    max_len = min(settings.max_model_len or model.max_position_embeddings, kv - settings.block_size)
    sums: dict[str, float] = {}
    hit = pre = 0.0
    for seed in seeds:
        arrival, prompt, output = run_workload(run, seed, lengths)
        if run.prefix_caching == "auto" and run.order > 0:
            cached = cached_prompt_tokens(prompt, output, run.order, kv, settings.block_size)
        elif run.prefix_caching == "off":
            cached = np.zeros(len(prompt), dtype=np.int64)
        else:  # cold cache: only the warm-up request's prompt (the first) is cached
            cached = np.zeros(len(prompt), dtype=np.int64)
            cached[0] = ((int(prompt[0]) - 1) // settings.block_size) * settings.block_size
        table, hist, preempt = run_engine(step, arrival, prompt, output, cached, kv_tokens=kv,
                                          settings=settings, max_model_len=max_len)
        for k, v in client_metrics(table, hist, profile.frontend_s).items():
            sums[k] = sums.get(k, 0.0) + v
        hit += float(cached.sum()) / max(float(prompt.sum()), 1.0)
        pre += preempt
    k = len(seeds)
    return ReplayOutcome({m: v / k for m, v in sums.items()}, kv, hit / k, pre / k, k)
