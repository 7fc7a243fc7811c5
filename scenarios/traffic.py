"""Traffic in a scenario: classes of requests with their arrival process, lengths and SLOs.

A traffic class has a rate (or a share of ``traffic.total_rate``), an arrival process selected by its
``type:`` (poisson, gamma with burstiness, diurnal, piecewise rate steps, trace replay), prompt and
output length distributions (fixed, lognormal, empirical histogram, or from a trace) and SLO targets
on TTFT, TPOT and end-to-end latency at a chosen percentile.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from scenarios.base import Name, Strict

#: most requests one workload may hold (a memory guard; the simulator refuses more)
MAX_REQUESTS = 200_000_000
#: longest request length a scenario may state, tokens (beyond any model's context)
MAX_TOKENS = 10_000_000
#: highest arrival rate a scenario may state, requests/s (also for a rate step's rate x factor)
MAX_RATE = 1e6
#: latest time a rate step may start, and longest period, seconds (~31.7 years; keeps clocks precise)
MAX_SECONDS = 1e9
#: least gamma burstiness (shape): below it nearly all gaps are 0 and a few are enormous
MIN_BURSTINESS = 1e-3
#: largest lognormal sigma: the median is then mean x exp(-sigma^2 / 2) = mean x 4e-6, so nearly every draw
#: falls below ``min`` (measured LLM traffic: 0.5-1.5); far beyond it the draws overflow to NaN
MAX_SIGMA = 5.0


# ----------------------------------------------------------------------------------------- lengths
class FixedLength(Strict):
    """Every request has the same length."""

    type: Literal["fixed"] = "fixed"
    value: int = Field(ge=1, le=MAX_TOKENS)


class LognormalLength(Strict):
    """Lognormal lengths with a given mean, clipped (by resampling) to [min, max]."""

    type: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0)
    """Mean of the untruncated distribution, tokens."""
    sigma: float = Field(default=1.0, gt=0, le=MAX_SIGMA)
    """Shape: standard deviation of log(length), at most :data:`MAX_SIGMA`."""
    min: int = Field(default=1, ge=1, le=MAX_TOKENS)
    max: int | None = Field(default=None, ge=1, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _bounds(self) -> LognormalLength:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max(={self.max}) must be >= min(={self.min})")
        return self


class EmpiricalLength(Strict):
    """A histogram: bin ``i`` spans ``[edges[i], edges[i+1])`` and is drawn with weight ``weights[i]``."""

    type: Literal["empirical"] = "empirical"
    edges: list[int] = Field(min_length=2)
    weights: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> EmpiricalLength:
        if len(self.weights) != len(self.edges) - 1:
            raise ValueError(
                f"weights has {len(self.weights)} entries; edges(={len(self.edges)}) needs one fewer"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)) or self.edges[0] < 1:
            raise ValueError("edges must be increasing integers >= 1")
        if self.edges[-1] > MAX_TOKENS + 1:
            raise ValueError(f"edges must end by {MAX_TOKENS + 1:,} (lengths up to {MAX_TOKENS:,} tokens)")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return self


class TraceLength(Strict):
    """Lengths taken from the class's trace file (only with a ``trace`` arrival process)."""

    type: Literal["trace"] = "trace"


LengthDist = Annotated[
    FixedLength | LognormalLength | EmpiricalLength | TraceLength, Field(discriminator="type")
]


# ---------------------------------------------------------------------------------------- arrivals
class PoissonArrival(Strict):
    """Exponential inter-arrival times at the class's rate."""

    type: Literal["poisson"] = "poisson"


class GammaArrival(Strict):
    """Gamma inter-arrival times as in ``vllm bench serve --burstiness``: shape = burstiness.

    burstiness < 1 is burstier than Poisson, > 1 more regular; 1 is Poisson.
    """

    type: Literal["gamma"] = "gamma"
    burstiness: float = Field(gt=0)

    @field_validator("burstiness")
    @classmethod
    def _not_degenerate(cls, burstiness: float) -> float:
        if burstiness < MIN_BURSTINESS:
            raise ValueError(f"must be >= {MIN_BURSTINESS:g}: below that a gamma process is degenerate "
                             "(nearly every gap 0, a rare few enormous)")
        return burstiness


class DiurnalArrival(Strict):
    """Poisson with a sinusoidal rate: rate x (1 + amplitude x cos(2 pi (t - peak_s) / period_s))."""

    type: Literal["diurnal"] = "diurnal"
    amplitude: float = Field(default=0.5, ge=0, le=1)
    period_s: float = Field(default=86400.0, gt=0, le=MAX_SECONDS)
    peak_s: float = Field(default=50400.0, ge=0, le=MAX_SECONDS)
    """Time of the daily peak, seconds from the start (default 14:00)."""


class RateStep(Strict):
    """From ``start_s`` on, the class's rate is multiplied by ``factor``."""

    start_s: float = Field(ge=0, le=MAX_SECONDS)
    factor: float = Field(ge=0)
    """Multiplies the class's rate; the product is at most MAX_RATE requests/s."""


class PiecewiseArrival(Strict):
    """Poisson with a piecewise-constant rate profile (repeats every ``period_s`` if given)."""

    type: Literal["piecewise"] = "piecewise"
    steps: list[RateStep] = Field(min_length=1)
    period_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)

    @field_validator("steps")
    @classmethod
    def _some_traffic(cls, steps: list[RateStep]) -> list[RateStep]:
        if not any(s.factor > 0 for s in steps):
            raise ValueError("every step's factor is 0, so no requests would ever arrive; give one a factor > 0")
        return steps

    @model_validator(mode="after")
    def _order(self) -> PiecewiseArrival:
        starts = [s.start_s for s in self.steps]
        if starts != sorted(starts) or starts[0] != 0:
            raise ValueError("steps must start at start_s 0 and be in increasing start_s order")
        if self.period_s is not None and starts[-1] >= self.period_s:
            raise ValueError(
                f"every step's start_s must be < period_s(={self.period_s}); the last is {starts[-1]}"
            )
        return self


class TraceArrival(Strict):
    """Replay a trace file (CSV or JSON Lines) of arrival times and, optionally, token counts."""

    type: Literal["trace"] = "trace"
    path: str
    """Trace file, relative to the scenario file."""
    time_column: str = "timestamp"
    prompt_column: str = "prompt_tokens"
    output_column: str = "output_tokens"
    time_scale: float = Field(default=1.0, gt=0)
    """Multiply trace times by this (0.5 replays twice as fast)."""


Arrival = Annotated[
    PoissonArrival | GammaArrival | DiurnalArrival | PiecewiseArrival | TraceArrival,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------------------- traffic
class SLO(Strict):
    """Latency targets of a class: the chosen percentile of each metric must stay under its bound."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=90.0, gt=0, lt=100)
    """Percentile the bounds apply to (90 -> p90 TTFT <= ttft_ms ...)."""


class TrafficClass(Strict):
    """A stream of requests with its own rate, lengths and SLOs."""

    name: Name
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE)
    """Mean arrival rate, requests/s (or give ``share`` of ``traffic.total_rate``)."""
    share: float | None = Field(default=None, gt=0)
    arrival: Arrival = PoissonArrival()
    prompt_tokens: LengthDist = LognormalLength(mean=210, sigma=1.0, min=4, max=1024)
    output_tokens: LengthDist = LognormalLength(mean=210, sigma=1.0, min=4, max=1024)
    slo: SLO = SLO()
    prefix_cache_hit: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of prompt tokens served from vLLM's prefix cache (shared system prompts, repeats)."""

    @model_validator(mode="after")
    def _rate_fits_arrival(self) -> TrafficClass:
        if isinstance(self.arrival, TraceArrival):
            for field, value in (("rate", self.rate), ("share", self.share)):
                if value is not None:
                    raise ValueError(f"{field}(={value:g}) cannot be set with arrival type 'trace': the trace's "
                                     "times set the rate (speed it up or slow it down with arrival.time_scale)")
        problem = _steps_problem(self.arrival, self.rate, "rate") if self.rate is not None else None
        if problem:
            raise ValueError(problem)
        return self


def _steps_problem(arrival: Arrival, rate: float, what: str) -> str | None:
    """What is wrong with a piecewise class's stepped rates (rate x factor): over MAX_RATE, or all 0."""
    if not isinstance(arrival, PiecewiseArrival):
        return None
    for j, step in enumerate(arrival.steps):
        if rate * step.factor > MAX_RATE:
            return (f"arrival.steps[{j}].factor(={step.factor:g}) x {what}(={rate:g}) is {rate * step.factor:.3g} "
                    f"requests/s; at most {MAX_RATE:g} (lower the factor or the rate)")
    if not any(rate * step.factor > 0 for step in arrival.steps):
        return f"{what}(={rate:g}) x every arrival.steps factor is 0 requests/s, so no requests would ever arrive"
    return None


class Traffic(Strict):
    """All traffic classes; rates are absolute or shares of ``total_rate``."""

    classes: list[TrafficClass] = Field(min_length=1)
    total_rate: float | None = Field(default=None, gt=0, le=MAX_RATE)

    @model_validator(mode="after")
    def _rates(self) -> Traffic:
        names = [c.name for c in self.classes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"class names must be unique; repeated: {', '.join(dup)}")
        for c in self.classes:
            if c.rate is not None and c.share is not None:
                raise ValueError(f"class {c.name!r}: give rate or share, not both")
            if c.rate is None and c.share is None and not isinstance(c.arrival, TraceArrival):
                raise ValueError(f"class {c.name!r}: needs rate (requests/s) or share (of total_rate)")
            if c.share is not None and self.total_rate is None:
                raise ValueError(f"class {c.name!r} has a share but traffic.total_rate is not set")
            if c.share is not None and not self.rate_of(c) > 0:
                raise ValueError(f"class {c.name!r}: its share(={c.share:g}) of total_rate is 0 requests/s "
                                 "beside the others' shares")
            problem = _steps_problem(c.arrival, self.rate_of(c), "share of total_rate") if c.share is not None else None
            if problem:
                raise ValueError(f"class {c.name!r}: {problem}")
        return self

    def rate_of(self, cls: TrafficClass) -> float:
        """Absolute mean rate of a class, requests/s (0 for a pure trace class)."""
        if cls.rate is not None:
            return cls.rate
        if cls.share is not None and self.total_rate is not None:
            total_share = sum(c.share or 0.0 for c in self.classes)
            return self.total_rate * cls.share / total_share
        return 0.0
