"""The adaptive rate sweep: find a server's saturation knee with few load points.

The sweep is a pure function of the points already measured (:func:`next_rate`), so a resumed run
continues exactly where an interrupted one stopped.  It has two phases:

1. **Grow**: start at ``start_rate`` and multiply by ``factor`` until a point is *saturated*: the
   server no longer keeps up with the offered rate (request throughput below ``throughput_ratio`` of
   what the offered rate would give), or the median TTFT exploded (above ``ttft_factor`` × the
   reference point's, the point at the lowest rate), or requests failed.  If the lowest point is
   saturated (it can only tell by failures or throughput, being its own reference), the sweep walks
   down instead (÷ ``factor``): so start low.
2. **Refine**: bisect the bracket [last unsaturated rate, first saturated rate] at geometric
   midpoints, ``refine`` times.

A short run at a low rate reports less than the offered rate even on an idle server, since vLLM's
``request_throughput`` = completed / duration and the duration ends with the last request's latency.
The throughput test therefore compares with the *expected* throughput of an unsaturated server:
``n / ((n - 1) / rate + e2e0)`` where ``e2e0`` is the reference point's median end-to-end latency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: rates are rounded to this many significant digits (they name the point files)
RATE_DIGITS = 3


def round_rate(rate: float) -> float:
    return float(f"{rate:.{RATE_DIGITS}g}")


@dataclass(frozen=True)
class SweepConfig:
    start_rate: float = 1.0
    factor: float = 2.0
    max_rate: float = 256.0
    min_rate: float = 0.05
    max_points: int = 8
    refine: int = 2
    throughput_ratio: float = 0.8
    ttft_factor: float = 10.0

    def __post_init__(self) -> None:
        if not self.start_rate > 0:
            raise ValueError(f"start_rate(={self.start_rate}) must be > 0")
        if not self.factor > 1:
            raise ValueError(f"factor(={self.factor}) must be > 1")
        if not self.max_rate >= self.start_rate:
            raise ValueError(f"max_rate(={self.max_rate}) must be >= start_rate(={self.start_rate})")
        if not 0 < self.min_rate <= self.start_rate:
            raise ValueError(f"min_rate(={self.min_rate}) must be > 0 and <= start_rate")
        if self.max_points < 1:
            raise ValueError(f"max_points(={self.max_points}) must be >= 1")
        if self.refine < 0:
            raise ValueError(f"refine(={self.refine}) must be >= 0")
        if not 0 < self.throughput_ratio <= 1:
            raise ValueError(f"throughput_ratio(={self.throughput_ratio}) must be in (0, 1]")
        if not self.ttft_factor > 1:
            raise ValueError(f"ttft_factor(={self.ttft_factor}) must be > 1")

    def growth_rates(self) -> list[float]:
        """The rates of the grow phase if no point saturates (the plan's upper bound)."""
        rates: list[float] = []
        k = 0
        while (rate := self.start_rate * self.factor**k) <= self.max_rate * (1 + 1e-9):
            if len(rates) >= self.max_points:
                break
            rates.append(round_rate(rate))
            k += 1
        return rates


@dataclass(frozen=True)
class PointOutcome:
    """What the sweep needs to know about a finished point."""

    rate: float
    num_prompts: int
    completed: int
    request_throughput: float
    median_ttft_ms: float
    median_e2el_ms: float

    @classmethod
    def from_result(cls, rate: float, result: dict[str, Any]) -> PointOutcome:
        """Build from a ``vllm bench serve`` result JSON."""
        completed = int(result.get("completed", 0))
        num_prompts = int(result.get("num_prompts", completed + int(result.get("failed", 0) or 0)))
        return cls(
            rate=float(rate),
            num_prompts=max(num_prompts, completed, 1),
            completed=completed,
            request_throughput=float(result.get("request_throughput", 0.0)),
            median_ttft_ms=float(result.get("median_ttft_ms", 0.0) or 0.0),
            median_e2el_ms=float(result.get("median_e2el_ms", 0.0) or 0.0),
        )


def expected_throughput(point: PointOutcome, base_e2el_ms: float) -> float:
    """Throughput an unsaturated server would report for this point's rate and size."""
    n = point.num_prompts
    duration = (n - 1) / point.rate + base_e2el_ms / 1000.0
    return n / duration if duration > 0 else point.rate


def saturation_reason(point: PointOutcome, first: PointOutcome, cfg: SweepConfig) -> str | None:
    """Why ``point`` counts as saturated, or None.  ``first`` is the reference (lowest-rate) point."""
    if point.completed < point.num_prompts:
        return f"only {point.completed}/{point.num_prompts} requests completed"
    expected = expected_throughput(point, first.median_e2el_ms)
    if point.request_throughput < cfg.throughput_ratio * expected:
        return (
            f"throughput {point.request_throughput:.3g} req/s < {cfg.throughput_ratio:g} × "
            f"expected {expected:.3g} req/s"
        )
    ttft_limit = cfg.ttft_factor * first.median_ttft_ms
    if point is not first and first.median_ttft_ms > 0 and point.median_ttft_ms > ttft_limit:
        return (
            f"median TTFT {point.median_ttft_ms:.0f} ms > {cfg.ttft_factor:g} × lowest rate's "
            f"{first.median_ttft_ms:.0f} ms"
        )
    return None


@dataclass(frozen=True)
class SweepState:
    """Where the sweep stands: the knee bracket and the next rate to run (None: done)."""

    next_rate: float | None
    phase: str
    below: float | None  # highest unsaturated rate
    above: float | None  # lowest saturated rate
    reason: str


def _bracket(points: Sequence[PointOutcome], cfg: SweepConfig) -> tuple[float | None, float | None]:
    first = min(points, key=lambda p: p.rate)  # the least loaded point is the reference
    ok = [p.rate for p in points if saturation_reason(p, first, cfg) is None]
    bad = [p.rate for p in points if saturation_reason(p, first, cfg) is not None]
    below = max(ok) if ok else None
    above = min((r for r in bad if below is None or r > below), default=None)
    return below, above


def grid_index(rate: float, first: float, factor: float) -> int | None:
    """k where ``rate`` is the grid rate ``first × factor**k`` (rounded), or None (a refine rate)."""
    k = round(math.log(rate / first) / math.log(factor))
    return k if round_rate(first * factor**k) == rate else None


def next_rate(points: Sequence[PointOutcome], cfg: SweepConfig) -> SweepState:
    """Decide the next rate from the points run so far (in the order they were run)."""
    if not points:
        return SweepState(round_rate(cfg.start_rate), "grow", None, None, "first point")
    first = points[0].rate
    done = {p.rate for p in points}
    below, above = _bracket(points, cfg)
    if len(points) >= cfg.max_points:
        return SweepState(None, "done", below, above, f"reached max_points={cfg.max_points}")
    if above is None:  # nothing saturated yet: keep growing along the grid
        assert below is not None
        k = max(i for p in points if (i := grid_index(p.rate, first, cfg.factor)) is not None)
        rate = round_rate(first * cfg.factor ** (k + 1))
        if rate > cfg.max_rate * (1 + 1e-9):
            return SweepState(None, "done", below, None, f"no knee below max_rate={cfg.max_rate:g}")
        return SweepState(rate, "grow", below, None, "not saturated yet")
    if below is None:  # even the lowest rate saturated: walk down the grid
        k = min(i for p in points if (i := grid_index(p.rate, first, cfg.factor)) is not None)
        rate = round_rate(first * cfg.factor ** (k - 1))
        if rate < cfg.min_rate:
            return SweepState(None, "done", None, above, f"saturated even at min_rate={cfg.min_rate:g}")
        return SweepState(rate, "descend", None, above, "lowest rate already saturated")
    refined = sum(1 for p in points if grid_index(p.rate, first, cfg.factor) is None)
    if refined >= cfg.refine:
        return SweepState(None, "done", below, above, "knee refined")
    mid = round_rate(math.sqrt(below * above))
    if mid in done or mid <= below or mid >= above:
        return SweepState(None, "done", below, above, "knee bracket cannot be split further")
    return SweepState(mid, "refine", below, above, "bisecting the knee")


def estimate_seconds(rates: Sequence[float], num_prompts: int, startup_s: float, per_point_s: float) -> float:
    """Rough wall time: server start + per point (prompts / rate + overhead)."""
    return startup_s + sum(num_prompts / r + per_point_s for r in rates)
