"""Token-length distributions: how many prompt and output tokens each request has.

A scenario gives each traffic class a distribution for its prompt and for its output lengths,
chosen by a ``type:`` name looked up in :data:`LENGTHS`:

``fixed``
    every request has ``value`` tokens.
``lognormal``
    ``mean`` is the mean of the *untruncated* lognormal, so ``mu = ln(mean) - sigma**2 / 2``.
    Draws are rounded to integers; those outside ``[min, max]`` are redrawn (vectorised, over
    the rejected subset only) up to :data:`MAX_REDRAWS` times, and any still outside are clipped.
    With wide bounds the sample mean is close to ``mean``; tight bounds pull it inside them.
``empirical``
    a histogram: bin ``i`` is chosen with probability ``weights[i] / sum(weights)`` (weights whose
    sum overflows are divided by the largest first), then the length is a uniform integer in
    ``[edges[i], edges[i+1])``.
``trace``
    the lengths recorded in the class's trace file (see :mod:`sim.traffic`), in arrival order.

Every sampler is vectorised: it draws ``n`` lengths with one call on the given
:class:`numpy.random.Generator` and returns an ``int64`` array of values ``>= 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from scenarios.errors import FleetPlannerError
from scenarios.traffic import EmpiricalLength, FixedLength, LognormalLength, TraceLength
from sim.registry import Registry

#: (distribution spec, generator, count, trace column or None) -> int64 lengths >= 1
LengthSampler = Callable[[Any, np.random.Generator, int, "np.ndarray | None"], np.ndarray]

Gen = np.random.Generator

LENGTHS: Registry[LengthSampler] = Registry("length distribution")

#: redraw rounds for out-of-bounds lognormal values before the rest are clipped
MAX_REDRAWS = 64

#: upper cap for an unbounded lognormal (keeps huge sigmas from overflowing int64)
UNBOUNDED_MAX = 2**40


def lognormal_mu(mean: float, sigma: float) -> float:
    """The ``mu`` of a lognormal with the given mean and ``sigma`` (std. dev. of the log)."""
    if not mean > 0:
        raise ValueError(f"mean(={mean}) must be > 0")
    if not sigma > 0:
        raise ValueError(f"sigma(={sigma}) must be > 0")
    return math.log(mean) - sigma * sigma / 2.0


def sample_lengths(
    dist: Any, rng: np.random.Generator, n: int, *, column: np.ndarray | None = None
) -> np.ndarray:
    """Draw ``n`` lengths from a scenario length distribution (``dist.type`` picks the sampler).

    ``column`` holds the trace's recorded lengths for ``type: trace`` (at least ``n`` of them).
    """
    if n < 0:
        raise ValueError(f"n(={n}) must be >= 0")
    out = LENGTHS.get(dist.type)(dist, rng, n, column)
    if out.shape != (n,):
        raise AssertionError(f"{dist.type} sampler returned shape {out.shape}, expected ({n},)")
    return out


@LENGTHS.register("fixed")
def _fixed(dist: FixedLength, rng: Gen, n: int, column: np.ndarray | None) -> np.ndarray:
    return np.full(n, dist.value, dtype=np.int64)


@LENGTHS.register("lognormal")
def _lognormal(dist: LognormalLength, rng: Gen, n: int, column: np.ndarray | None) -> np.ndarray:
    mu = lognormal_mu(dist.mean, dist.sigma)
    lo = float(dist.min)
    hi = float(dist.max) if dist.max is not None else float(UNBOUNDED_MAX)

    def draw(k: int) -> np.ndarray:
        return np.rint(rng.lognormal(mu, dist.sigma, size=k))

    values = draw(n)
    bad = np.flatnonzero((values < lo) | (values > hi))
    for _ in range(MAX_REDRAWS):
        if bad.size == 0:
            break
        redrawn = draw(bad.size)
        values[bad] = redrawn
        bad = bad[(redrawn < lo) | (redrawn > hi)]
    return np.clip(values, lo, hi).astype(np.int64)


@LENGTHS.register("empirical")
def _empirical(dist: EmpiricalLength, rng: Gen, n: int, column: np.ndarray | None) -> np.ndarray:
    weights = np.asarray(dist.weights, dtype=np.float64)
    with np.errstate(over="ignore"):
        total = weights.sum()
    if not math.isfinite(total):  # huge weights (1e308, 1e308) overflow the sum: rescale first
        weights = weights / weights.max()
    edges = np.asarray(dist.edges, dtype=np.int64)
    bins = rng.choice(weights.size, size=n, p=weights / weights.sum())
    return rng.integers(edges[bins], edges[bins + 1], dtype=np.int64)


@LENGTHS.register("trace")
def _trace(dist: TraceLength, rng: Gen, n: int, column: np.ndarray | None) -> np.ndarray:
    if column is None:
        raise FleetPlannerError("length type 'trace' needs arrival type 'trace' (a trace file with lengths)")
    if column.size < n:
        raise ValueError(f"n(={n}) exceeds the trace's {column.size} recorded lengths")
    return np.maximum(np.asarray(column[:n], dtype=np.int64), 1)
