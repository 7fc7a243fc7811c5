"""Workload generation: a scenario's traffic classes turned into one time-ordered request stream.

Each traffic class is an arrival process (when its requests come, :mod:`sim.arrivals`) plus two
length distributions (prompt and output tokens, :mod:`sim.lengths`) and a prefix-cache hit
fraction.  :func:`generate_workload` draws every class on its own random streams, derived from
the caller's generator and the class *name* — so adding, removing or reordering classes, or
changing one class's lengths, leaves the other draws as they were (common random numbers for
what-if comparisons).  It merges the classes by arrival time (a stable merge: ties keep class
order) and keeps either the first ``requests`` arrivals or all arrivals in ``[0, duration_s)``.

For a request count the classes are generated over a horizon expected to hold a few more than
``requests`` arrivals in all; if it falls short the horizon doubles and the classes are drawn
again from the same seeds, until there are enough or every class has ended (a trace is not
looped, so a count beyond the traces yields fewer requests).  Each class draws at most its first
``requests`` arrivals, so the work follows the request count however far the horizon has grown
(a class idle for a long stretch costs no more).  Everything is vectorised: a million requests
take a fraction of a second.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario
from scenarios.traffic import MAX_REQUESTS
from sim.arrivals import ARRIVALS, ArrivalProcess, Trace, build_arrivals
from sim.lengths import LENGTHS, sample_lengths

__all__ = ["ARRIVALS", "LENGTHS", "MAX_REQUESTS", "Workload", "build_arrivals", "generate_workload"]


_EMPTY = np.empty(0, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Workload:
    """All requests of a simulation, one array element per request, in arrival order."""

    arrival: np.ndarray
    """Arrival times, float64 seconds from 0, ascending."""
    cls: np.ndarray
    """int32 index into :attr:`class_names`."""
    prompt: np.ndarray
    """int64 prompt tokens, >= 1."""
    output: np.ndarray
    """int64 output tokens, >= 1."""
    cached: np.ndarray
    """int64 prompt tokens served from the prefix cache: floor(prompt x prefix_cache_hit), < prompt."""
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.arrival)
        for name in ("cls", "prompt", "output", "cached"):
            size = len(getattr(self, name))
            if size != n:
                raise ValueError(f"len({name})(={size}) must equal len(arrival)(={n})")

    def __len__(self) -> int:
        return len(self.arrival)

    def class_counts(self) -> dict[str, int]:
        """Number of requests of each class."""
        counts = np.bincount(self.cls, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}


def _class_rngs(rng: np.random.Generator, names: list[str]) -> list[tuple[np.random.SeedSequence, ...]]:
    """Per class: seeds of (arrival, prompt, output) streams, from one draw of ``rng`` and the name."""
    root = int(rng.integers(0, 2**63 - 1))
    return [
        tuple(np.random.SeedSequence([root, zlib.crc32(name.encode()), stream]) for stream in range(3))
        for name in names
    ]


def _arrivals(
    processes: list[ArrivalProcess], seeds: list[Any], requests: int | None, duration_s: float | None
) -> list[np.ndarray]:
    """Each class's arrival times over a horizon holding ``requests`` arrivals (or ``duration_s``)."""

    def draw(horizon: float) -> list[np.ndarray]:
        # at most the first ``requests`` of each class: the merge keeps no more of any one class
        return [p.sample(np.random.default_rng(s), horizon, requests) for p, s in zip(processes, seeds, strict=True)]

    if requests is None:
        assert duration_s is not None
        expected = sum(p.expected_by(duration_s) for p in processes if p.trace is None)
        if expected > MAX_REQUESTS:
            raise FleetPlannerError(
                f"duration_s(={duration_s}) would generate ~{expected:.3g} requests; "
                f"the limit is {MAX_REQUESTS:,}"
            )
        return draw(duration_s)
    rate = sum(p.mean_rate for p in processes)
    horizon = (requests * 1.02 + 6.0 * math.sqrt(requests) + 20.0) / rate if rate > 0 else 1.0
    last_end = max(p.end_s for p in processes)
    for _ in range(200):
        if duration_s is not None:
            horizon = min(horizon, duration_s)
        times = draw(horizon)
        if sum(t.size for t in times) >= requests:
            break
        if (duration_s is not None and horizon >= duration_s) or horizon >= last_end:
            break
        horizon *= 2.0
    return times


def generate_workload(
    loaded: LoadedScenario,
    rng: np.random.Generator,
    *,
    requests: int | None = None,
    duration_s: float | None = None,
) -> Workload:
    """The scenario's requests: the first ``requests`` arrivals, or all in ``[0, duration_s)``.

    With both, at most ``requests`` arrivals before ``duration_s``; with neither, the scenario's
    ``simulation`` section decides.  Traces are not looped: a request count beyond what the trace
    classes (and any others) supply yields fewer requests.  Same generator state, same workload.
    """
    if requests is None and duration_s is None:
        requests = loaded.scenario.simulation.resolved_requests()
        duration_s = loaded.scenario.simulation.duration_s
    if requests is not None and requests < 1:
        raise ValueError(f"requests(={requests}) must be >= 1")
    if requests is not None and requests > MAX_REQUESTS:
        raise ValueError(f"requests(={requests}) must be <= {MAX_REQUESTS}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration_s(={duration_s}) must be > 0")
    classes = loaded.scenario.traffic.classes
    processes = build_arrivals(loaded)
    seeds = _class_rngs(rng, [c.name for c in classes])
    per_class = _arrivals(processes, [s[0] for s in seeds], requests, duration_s)

    arrival = np.concatenate(per_class) if per_class else _EMPTY
    cls = np.repeat(np.arange(len(classes), dtype=np.int32), [t.size for t in per_class])
    order = np.argsort(arrival, kind="stable")[:requests]
    arrival, cls = arrival[order], cls[order]
    counts = np.bincount(cls, minlength=len(classes))

    prompt = np.empty(arrival.size, dtype=np.int64)
    output = np.empty(arrival.size, dtype=np.int64)
    cached = np.empty(arrival.size, dtype=np.int64)
    for c, (spec, process) in enumerate(zip(classes, processes, strict=True)):
        mask = cls == c
        n = int(counts[c])
        trace = process.trace or Trace(_EMPTY)
        p = sample_lengths(spec.prompt_tokens, np.random.default_rng(seeds[c][1]), n, column=trace.prompt)
        o = sample_lengths(spec.output_tokens, np.random.default_rng(seeds[c][2]), n, column=trace.output)
        prompt[mask], output[mask] = p, o
        cached[mask] = np.minimum(np.floor(p * spec.prefix_cache_hit).astype(np.int64), p - 1)
    return Workload(arrival, cls, prompt, output, cached, tuple(c.name for c in classes))
