"""The load of a replayed run: request lengths, send times and prefix-cache state.

What a measured run's file says about its load is turned into the arrays the simulator takes:

* lengths: the per-request arrays when the file has them; otherwise vLLM's ShareGPT sampler —
  prompt and output each >= 4 tokens, prompt <= 1024 and prompt + output <= 2048 — modelled by
  :class:`LengthModel` (lognormal lengths within those bounds, some replies stopped early by the
  model's EOS, rescaled so that the run's totals hold exactly); see :func:`sample_lengths`.  Runs of
  the ``random`` dataset get the same lengths for every request
  (:func:`fixed_lengths`); :mod:`calibrate.datasets` says how a run's dataset is known.
* send times: the measured schedule when the file has per-request ``start_times`` (newer
  ``vllm bench serve --save-detailed``, hence every ``calibrate run`` bundle); else gamma inter-arrival
  gaps (Poisson at burstiness 1) with the first request at once, drawn from a seeded generator, or —
  when the client's ``--seed`` is known — exactly the schedule vLLM 0.8's client made
  (:func:`client_arrival_times`).
* prefix cache: vLLM V1 has it on by default; every run of a session after the first meets the
  prompts its predecessors left in the cache.  :func:`cached_prompt_tokens` plays the block-level LRU
  cache over the session's earlier runs (and the client's warm-up request) and counts, per request,
  the whole 16-token prompt blocks still cached — at least one token is always recomputed.  A large
  cache keeps all prompts of a 200-prompt sweep; a small one (cyclic reuse under LRU) keeps none.

Randomness comes only from generators derived from the caller's seed and the run's session and file
(:func:`stream`), so the prompts are the same for all runs of one session and seed.
"""

from __future__ import annotations

import math
import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from calibrate.datasets import length_shape
from calibrate.importer import MeasuredRun

BLOCK = 16


# ------------------------------------------------------------------------------------------ lengths
@dataclass(frozen=True)
class LengthModel:
    """Lengths of a totals-only run: lognormal within vLLM's ShareGPT sampler bounds.

    The sigmas describe the spread of ShareGPT V3 prompts and replies (an assumption: totals-only files
    carry no spread); mu is solved so that the truncated mean matches the wanted mean, and the drawn
    lengths are then rescaled to the run's exact totals (see :func:`sample_lengths`).
    """

    min_len: int = 4
    max_prompt: int = 1024
    max_total: int = 2048
    prompt_sigma: float = 1.1
    output_sigma: float = 0.7
    reply_ratio: float = 1.03
    stop_bias: float = 2.0
    """Mean reply length / mean prompt length of the dataset sample (ShareGPT V3 under vLLM's sampler,
    from runs of models that never stop early)."""

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
        z = ndtr((b - mu) / sigma) - ndtr((a - mu) / sigma)
        w = ndtr((b - mu - sigma**2) / sigma) - ndtr((a - mu - sigma**2) / sigma)
        return math.exp(mu + sigma**2 / 2) * w / max(z, 1e-300) - mean

    lo_mu, hi_mu = a - 10 * sigma, b + 10 * sigma
    if tmean(hi_mu) <= 0:  # a mean at the cap: all the mass there
        return hi_mu
    if tmean(lo_mu) >= 0:
        return lo_mu
    return float(brentq(tmean, lo_mu, hi_mu))


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
    a, b = ndtr((math.log(lo) - mu) / sigma), ndtr((math.log(hi) - mu) / sigma)
    q = np.clip(a + u * (b - a), 1e-12, 1.0 - 1e-12)
    return np.clip(np.exp(mu + sigma * ndtri(q)), lo, hi)


def sample_lengths(
    n: int, total_in: int, total_out: int, rng: np.random.Generator, model: LengthModel = LengthModel()
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) pairs within the sampler's bounds, summing to the given totals.

    Prompts are drawn with the run's mean.  Replies (the dataset's lengths, the requests' max_tokens)
    average ``reply_ratio`` x the prompt mean; a run whose outputs average less stopped some replies
    early (EOS): a fraction ``q`` of requests, chosen at random, ends at a uniform fraction of its reply
    and the rest run the full reply (``q`` solves the run's mean), so long replies keep their tail.
    Latin-hypercube draws (one per quantile stratum, strata paired at random) keep the shape of the
    distribution in every seed, so seeds differ in order and pairing, not in how long the tail is.
    """
    if n < 1:
        raise ValueError(f"n(={n}) must be >= 1")
    lo = float(model.min_len)
    mean_in = total_in / n
    mean_out = total_out / n
    if mean_in > model.max_prompt or mean_in + mean_out > model.max_total:
        raise ValueError(f"mean lengths (prompt {mean_in:.0f}, output {mean_out:.0f} tokens) are beyond the ShareGPT "
                         f"filter's caps (prompt <= {model.max_prompt}, prompt + output <= {model.max_total}): "
                         f"not a ShareGPT run (say --dataset random)")
    reply_mean = max(mean_out, model.reply_ratio * mean_in)
    stopped = min(max(2.0 * (1.0 - mean_out / reply_mean), 0.0), 1.0)
    mu_p = _truncated_mu(mean_in, model.prompt_sigma, lo, model.max_prompt)
    mu_o = _truncated_mu(reply_mean, model.output_sigma, lo, model.max_total - lo)
    u_p = (rng.permutation(n) + rng.random(n)) / n
    u_o = (rng.permutation(n) + rng.random(n)) / n
    prompt = _truncated_quantiles(u_p, mu_p, model.prompt_sigma, lo, model.max_prompt)
    output = _truncated_quantiles(u_o, mu_o, model.output_sigma, lo, model.max_total - lo)
    k = round(stopped * n)
    weight = output ** model.stop_bias
    cut = np.zeros(n, dtype=bool)
    if k > 0:
        cut[rng.choice(n, size=min(k, n), replace=False, p=weight / weight.sum())] = True
    output[cut] = np.maximum(output[cut] * rng.random(int(cut.sum())), lo)
    lo_arr = np.full(n, lo)
    p_int = _rescale(prompt, total_in, lo_arr, np.full(n, float(model.max_prompt)), rng)
    o_int = _rescale(output, total_out, lo_arr, np.maximum(model.max_total - p_int, lo).astype(np.float64), rng)
    return p_int, o_int


def fixed_lengths(n: int, total_in: int, total_out: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) pairs of (nearly) one length each, summing to the totals: what vLLM's
    random dataset sends at its default range ratio (a reply cut short by EOS is spread over all)."""
    if n < 1:
        raise ValueError(f"n(={n}) must be >= 1")

    def even(total: int) -> np.ndarray:
        out = np.full(n, max(total // n, 1), dtype=np.int64)
        extra = max(total - int(out.sum()), 0)
        out[rng.choice(n, size=extra, replace=False)] += 1
        return out

    return even(total_in), even(total_out)


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
    reconstruction of the measurement, not a random draw.  (The random dataset draws its prompts from
    that generator first: its runs get drawn gaps.)
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


def stream(seed: int, text: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(text.encode())]))


_WORKLOADS: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _portable(text: str, run: MeasuredRun) -> str:
    """``text`` (a run's place or session) without the run's folder: a replay draws the same numbers
    wherever its file lies and however its path is written (``../shared/...`` or ``/work/shared/...``)."""
    folder = os.path.dirname(run.file)
    return text.replace(folder + os.sep, "", 1) if folder else text


def run_workload(run: MeasuredRun, seed: int, lengths: LengthModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival, prompt, output) of one replay seed; the prompts are shared by a session's runs.

    The arrays depend on the run and the seed only (not on any profile), so they are memoised; the
    caller must not modify them."""
    key = (run.where, run.session, run.num_prompts, run.total_input_tokens, run.total_output_tokens,
           run.request_rate, run.burstiness, run.client_seed, run.input_lens, run.output_lens, run.send_times,
           run.dataset, seed, lengths)
    hit = _WORKLOADS.get(key)
    if hit is None:
        if len(_WORKLOADS) > 50_000:
            _WORKLOADS.clear()
        hit = _WORKLOADS[key] = _make_workload(run, seed, lengths)
    return hit


def _make_workload(run: MeasuredRun, seed: int, lengths: LengthModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = run.num_prompts
    shape = length_shape(run.dataset, run.total_input_tokens / n, run.total_output_tokens / n, lengths.max_prompt,
                         lengths.max_total)
    if run.input_lens is not None and run.output_lens is not None and len(run.input_lens) == len(run.output_lens):
        prompt = np.maximum(np.asarray(run.input_lens, dtype=np.int64), 1)
        output = np.maximum(np.asarray(run.output_lens, dtype=np.int64), 1)
        n = len(prompt)
    elif shape == "fixed":
        prompt, output = fixed_lengths(n, run.total_input_tokens, run.total_output_tokens,
                                       stream(seed, f"lengths|{_portable(run.session, run)}"))
    else:
        prompt, output = sample_lengths(n, run.total_input_tokens, run.total_output_tokens,
                                        stream(seed, f"lengths|{_portable(run.session, run)}"), lengths)
    if run.send_times is not None and len(run.send_times) == n:
        arrival = np.asarray(run.send_times, dtype=np.float64)  # the measured schedule
        if np.any(np.diff(arrival) < 0):  # replayed in send order, lengths with them
            order = np.argsort(arrival, kind="stable")
            arrival, prompt, output = arrival[order], prompt[order], output[order]
    elif run.client_seed is not None and shape == "spread":
        # (the random dataset, named or inferred, draws from the client's seeded generator first)
        arrival = client_arrival_times(n, run.request_rate, run.burstiness, run.client_seed)
    else:
        gaps = stream(seed, f"arrivals|{_portable(run.where, run)}")
        arrival = arrival_times(n, run.request_rate, run.burstiness, gaps)
    return arrival, prompt, output


