"""Arrival processes: when the requests of one traffic class arrive.

A scenario picks a class's process by its ``type:`` name, looked up in :data:`ARRIVALS`; each
builder turns the spec into an :class:`ArrivalProcess` whose ``sample(rng, horizon, limit)`` returns
the sorted arrival times in ``[0, horizon)``, vectorised, only the first ``limit`` when it is given (the
same first ones: a sample's work and memory follow the requests wanted, never the horizon alone):

``poisson``
    exponential inter-arrival times at the class's rate.
``gamma``
    gamma inter-arrival times with shape ``burstiness`` and scale ``1 / (rate * burstiness)``, as
    ``vllm bench serve --burstiness``: same mean rate, squared coefficient of variation
    ``1 / burstiness`` (burstier below 1, more regular above).
``diurnal`` and ``piecewise``
    non-homogeneous Poisson processes.  With the cumulative rate ``Λ(t) = ∫₀ᵗ λ(s) ds``, the
    points ``u₁ < u₂ < ...`` of a unit-rate Poisson process mapped through ``Λ⁻¹`` are arrivals
    with rate ``λ(t)`` (the time-change theorem).  :class:`CumulativeRate` is piecewise linear
    through knots — exact for a piecewise-constant rate, a 4096-cell grid over one period for
    the sinusoid — and a periodic profile is inverted within one period, so any horizon costs
    the same.
``trace``
    replay of a CSV (header line first) or JSON Lines file (``.jsonl``, ``.ndjson``, ``.json``):
    times (seconds, or ISO 8601 date/times) sorted, shifted to start at 0 and multiplied by
    ``time_scale``; token counts (whole numbers >= 1) are kept for length type ``trace``.  A trace
    is not looped.  A missing file, column or bad value is a :class:`~scenarios.errors.ScenarioError`
    naming ``traffic.classes[i].arrival.path``, and for a value the file's line and column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from scenarios.errors import ScenarioError
from scenarios.loader import LoadedScenario
from scenarios.traffic import (
    MAX_TOKENS,
    DiurnalArrival,
    GammaArrival,
    PiecewiseArrival,
    PoissonArrival,
    TraceArrival,
    TraceLength,
    TrafficClass,
)
from sim.registry import Registry

#: cells of the grid on which a sinusoidal cumulative rate is tabulated, per period
DIURNAL_GRID = 4096


@dataclass(frozen=True, eq=False)
class Trace:
    """A replayed trace: sorted arrival times from 0 and, when the file has them, token counts."""

    times: np.ndarray
    prompt: np.ndarray | None = None
    output: np.ndarray | None = None


#: ``sample(rng, horizon, limit)``: the sorted times in ``[0, horizon)``, at most the first ``limit``
Sampler = Callable[[np.random.Generator, float, "int | None"], np.ndarray]


@dataclass(frozen=True)
class ArrivalProcess:
    """One class's arrivals: ``sample(rng, horizon, limit)`` gives the sorted times in ``[0, horizon)``."""

    sample: Sampler
    mean_rate: float
    """Long-run arrivals per second (used to size the first horizon)."""
    end_s: float = math.inf
    """No arrivals at or after this time (a trace's end; inf for an endless process)."""
    trace: Trace | None = None
    expected: Callable[[float], float] | None = None
    """Expected arrivals in ``[0, t)`` (None: ``mean_rate * t``)."""

    def expected_by(self, t: float) -> float:
        return self.expected(t) if self.expected is not None else self.mean_rate * t


@dataclass(frozen=True)
class ClassContext:
    """What an arrival-process builder may need besides its spec: the scenario and the class."""

    loaded: LoadedScenario
    index: int
    cls: TrafficClass
    rate: float
    """The class's absolute mean rate, requests/s (0 for a trace without rate)."""

    def error(self, field: str, message: str) -> ScenarioError:
        source = str(self.loaded.path) if self.loaded.path else "<scenario>"
        return ScenarioError([f"{source}: traffic.classes[{self.index}].{field}: {message}"])


ArrivalBuilder = Callable[[Any, ClassContext], ArrivalProcess]
ARRIVALS: Registry[ArrivalBuilder] = Registry("arrival process")

_EMPTY = np.empty(0, dtype=np.float64)


def _renewal(
    draw: Callable[[int], np.ndarray], mean_gap: float, cv2: float, horizon: float, limit: int | None = None
) -> np.ndarray:
    """Cumulative sums of i.i.d. gaps ``draw(k)`` up to ``horizon`` (the first ``limit`` at most), drawn
    in a few large chunks; a chunk holds at most ``2 * limit + 1024`` gaps, so a horizon far beyond the
    ``limit``-th point costs no more than one just past it (and gives the same first ``limit`` points)."""
    if horizon <= 0 or limit == 0:
        return _EMPTY
    chunks: list[np.ndarray] = []
    start, count = 0.0, 0
    while start < horizon and (limit is None or count < limit):
        expected = (horizon - start) / mean_gap
        size = int(expected + 6.0 * math.sqrt(expected * cv2) + 16)
        if limit is not None:
            size = min(size, 2 * (limit - count) + 1024)
        chunk = start + np.cumsum(draw(size))
        chunks.append(chunk)
        start, count = float(chunk[-1]), count + size
    times = np.concatenate(chunks)
    return times[: np.searchsorted(times, horizon, side="left")][:limit]


@ARRIVALS.register("poisson")
def _poisson(spec: PoissonArrival, ctx: ClassContext) -> ArrivalProcess:
    rate = ctx.rate

    def sample(rng: np.random.Generator, horizon: float, limit: int | None) -> np.ndarray:
        return _renewal(lambda k: rng.exponential(1.0 / rate, k), 1.0 / rate, 1.0, horizon, limit)

    return ArrivalProcess(sample, rate)


@ARRIVALS.register("gamma")
def _gamma(spec: GammaArrival, ctx: ClassContext) -> ArrivalProcess:
    rate, shape = ctx.rate, spec.burstiness

    def sample(rng: np.random.Generator, horizon: float, limit: int | None) -> np.ndarray:
        def gaps(k: int) -> np.ndarray:
            return rng.gamma(shape, 1.0 / (rate * shape), k)

        return _renewal(gaps, 1.0 / rate, 1.0 / shape, horizon, limit)

    return ArrivalProcess(sample, rate)


@dataclass(frozen=True, eq=False)
class CumulativeRate:
    """``Λ(t)``, piecewise linear through knots ``(t[k], L[k])`` with ``t[0] = L[0] = 0``.

    With ``period`` set, ``t[-1] == period`` and ``Λ(t + period) = Λ(t) + L[-1]``; otherwise ``Λ``
    continues past ``t[-1]`` with slope ``tail_rate``.
    """

    t: np.ndarray
    L: np.ndarray
    period: float | None = None
    tail_rate: float = 0.0

    def __call__(self, x: float) -> float:
        if self.period is not None:
            k = math.floor(x / self.period)
            return k * float(self.L[-1]) + float(np.interp(x - k * self.period, self.t, self.L))
        return float(np.interp(x, self.t, self.L)) + self.tail_rate * max(x - float(self.t[-1]), 0.0)

    def _inside(self, u: np.ndarray) -> np.ndarray:
        """Λ⁻¹ on ``[0, L[-1])``: the segment with ``L[i] <= u < L[i+1]`` (never a flat one)."""
        i = np.clip(np.searchsorted(self.L, u, side="right") - 1, 0, max(self.L.size - 2, 0))
        if self.L.size < 2:
            return np.zeros_like(u)
        width = self.L[i + 1] - self.L[i]
        frac = np.divide(u - self.L[i], width, out=np.zeros_like(u), where=width > 0)
        return self.t[i] + frac * (self.t[i + 1] - self.t[i])

    def inverse(self, u: np.ndarray) -> np.ndarray:
        total = float(self.L[-1])
        if self.period is not None:
            k = np.floor(u / total)
            return k * self.period + self._inside(u - k * total)
        tail = float(self.t[-1]) + (u - total) / self.tail_rate if self.tail_rate > 0 else np.inf
        return np.where(u < total, self._inside(np.minimum(u, total)), tail)

    @property
    def end_s(self) -> float:
        """Time after which the rate is zero for good (inf when it never is)."""
        if self.period is not None:
            return math.inf if self.L[-1] > 0 else 0.0
        if self.tail_rate > 0:
            return math.inf
        return float(self.t[int(np.argmax(self.L[-1] <= self.L))])

    @property
    def mean_rate(self) -> float:
        if self.period is not None:
            return float(self.L[-1]) / self.period
        span = float(self.t[-1])
        return self.tail_rate if self.tail_rate > 0 or span == 0 else float(self.L[-1]) / span


def _time_changed(cum: CumulativeRate) -> ArrivalProcess:
    """A non-homogeneous Poisson process: unit-rate Poisson points mapped through ``Λ⁻¹``."""

    def sample(rng: np.random.Generator, horizon: float, limit: int | None) -> np.ndarray:
        u = _renewal(rng.standard_exponential, 1.0, 1.0, cum(horizon), limit)
        times = np.maximum.accumulate(cum.inverse(u)) if u.size else _EMPTY
        return times[: np.searchsorted(times, horizon, side="left")]

    return ArrivalProcess(sample, cum.mean_rate, cum.end_s, expected=cum)


@ARRIVALS.register("diurnal")
def _diurnal(spec: DiurnalArrival, ctx: ClassContext) -> ArrivalProcess:
    rate, amp, period = ctx.rate, spec.amplitude, spec.period_s
    t = np.linspace(0.0, period, DIURNAL_GRID + 1)
    w = 2.0 * math.pi / period
    lam = rate * (t + amp / w * (np.sin(w * (t - spec.peak_s)) + math.sin(w * spec.peak_s)))
    lam = np.maximum.accumulate(lam - lam[0])
    return _time_changed(CumulativeRate(t, lam, period=period))


@ARRIVALS.register("piecewise")
def _piecewise(spec: PiecewiseArrival, ctx: ClassContext) -> ArrivalProcess:
    starts = np.array([s.start_s for s in spec.steps], dtype=np.float64)
    rates = ctx.rate * np.array([s.factor for s in spec.steps], dtype=np.float64)
    if spec.period_s is not None:
        knots = np.append(starts, spec.period_s)
        cum = np.concatenate([[0.0], np.cumsum(rates * np.diff(knots))])
        return _time_changed(CumulativeRate(knots, cum, period=spec.period_s))
    cum = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(starts))])
    return _time_changed(CumulativeRate(starts, cum, tail_rate=float(rates[-1])))


# ------------------------------------------------------------------------------------------- traces
#: largest trace time, seconds (a Unix timestamp is ~1.8e9; this spans ~30 million years)
MAX_TRACE_SECONDS = 1e15


def _seconds(value: Any) -> float:
    """A trace time: a number of seconds, or an ISO 8601 date/time (naive ones read as UTC)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text)
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _count(value: Any) -> float:
    """A trace token count: a whole number >= 1 (12 or 12.0, as a number or text), never a boolean."""
    if isinstance(value, bool):
        raise ValueError(value)
    count = float(value)
    if math.isfinite(count) and not (count >= 1 and count.is_integer()):
        raise ValueError(count)
    return count


def _rows(text: str, jsonl: bool) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(column names, [(line number, row)]) of a CSV (header line first) or JSON Lines text."""
    if not jsonl:
        reader = csv.DictReader(io.StringIO(text))
        rows = [(reader.line_num, row) for row in reader]
        return list(reader.fieldnames or []), rows
    out: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number}: expected a JSON object per line")
        columns.update(dict.fromkeys(row))
        out.append((number, row))
    return list(columns), out


def read_trace(spec: TraceArrival, ctx: ClassContext, *, prompt: bool, output: bool) -> Trace:
    """Read a class's trace file; ``prompt``/``output``: whether its token columns are needed."""
    path = ctx.loaded.resolve(spec.path)

    def fail(message: str) -> ScenarioError:
        return ctx.error("arrival.path", message)

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise fail(f"trace file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read trace file {path}: {exc}") from None
    try:
        columns, rows = _rows(text, path.suffix.lower() in (".jsonl", ".ndjson", ".json"))
    except (ValueError, csv.Error) as exc:
        raise fail(f"{path.name}: {exc}") from None
    wanted = [("time_column", spec.time_column, True), ("prompt_column", spec.prompt_column, prompt)]
    wanted.append(("output_column", spec.output_column, output))
    for field, name, needed in wanted:
        if needed and name not in columns:
            known = ", ".join(columns) or "(none)"
            raise fail(f"{path.name} has no column {name!r} (arrival.{field}); columns: {known}")
    if not rows:
        raise fail(f"{path.name} has no rows")

    def column(name: str, convert: Callable[[Any], float], limit: float, what: str) -> np.ndarray:
        values = np.empty(len(rows), dtype=np.float64)
        for k, (line, row) in enumerate(rows):
            where = f"{path.name} line {line}: {name} value {row.get(name)!r}"
            try:
                values[k] = convert(row.get(name))
            except (TypeError, ValueError):
                raise fail(f"{where} is not {what}") from None
            except OverflowError:  # an integer beyond any float
                raise fail(f"{where} is out of range (at most {limit:,.0f})") from None
            if not math.isfinite(values[k]):
                raise fail(f"{where} is not finite")
            if abs(values[k]) > limit:
                raise fail(f"{where} is out of range (at most {limit:,.0f})")
        return values

    times = column(spec.time_column, _seconds, MAX_TRACE_SECONDS, "a number")
    order = np.argsort(times, kind="stable")
    times = (times[order] - times[order[0]]) * spec.time_scale

    def tokens(name: str) -> np.ndarray:
        return column(name, _count, MAX_TOKENS, "a token count (a whole number >= 1)")[order].astype(np.int64)

    return Trace(
        times,
        tokens(spec.prompt_column) if prompt else None,
        tokens(spec.output_column) if output else None,
    )


@ARRIVALS.register("trace")
def _trace(spec: TraceArrival, ctx: ClassContext) -> ArrivalProcess:
    trace = read_trace(
        spec,
        ctx,
        prompt=isinstance(ctx.cls.prompt_tokens, TraceLength),
        output=isinstance(ctx.cls.output_tokens, TraceLength),
    )
    times = trace.times
    span = float(times[-1])

    def sample(rng: np.random.Generator, horizon: float, limit: int | None) -> np.ndarray:
        return times[: np.searchsorted(times, horizon, side="left")][:limit]

    rate = times.size / span if span > 0 else float(times.size)
    return ArrivalProcess(sample, rate, end_s=float(np.nextafter(span, math.inf)), trace=trace)


def build_arrivals(loaded: LoadedScenario) -> list[ArrivalProcess]:
    """One arrival process per traffic class (reads trace files); every problem in one ScenarioError."""
    traffic = loaded.scenario.traffic
    processes: list[ArrivalProcess] = []
    problems: list[str] = []
    for i, cls in enumerate(traffic.classes):
        ctx = ClassContext(loaded, i, cls, traffic.rate_of(cls))
        try:
            processes.append(ARRIVALS.get(cls.arrival.type)(cls.arrival, ctx))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return processes
