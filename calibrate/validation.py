"""Validation: replay measured runs under a profile and compare with what was measured.

For every run, :func:`validate_points` replays the measured load (:func:`calibrate.replay.replay`)
under the profile chosen for its hardware — a named profile file, else the bundled one for that GPU
type and count, else one derived from that GPU's other tensor-parallel sizes
(:func:`sim.profiles.derive_profile`), else roofline defaults — and records the measured and
predicted metrics under vLLM's result-file field names (:data:`METRICS`).  :func:`ape` is the
absolute percentage error of one metric, :func:`mape` its mean over runs.  A model never used in
fitting works the same way: the profile describes the hardware, the model enters through its
config.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from calibrate.fit import FitPoint
from calibrate.importer import MeasuredRun
from calibrate.replay import DEFAULT_SEEDS, replay
from calibrate.workload import LengthModel
from sim.profiles import resolve_profile
from sim.service import HardwareProfile

#: metrics reported by ``planner validate`` (vLLM result-file names)
METRICS = (
    "request_throughput", "output_throughput", "total_token_throughput",
    "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "mean_ttft_ms",
    "median_tpot_ms", "p90_tpot_ms", "median_itl_ms", "p99_itl_ms",
)

Chooser = Callable[[MeasuredRun], HardwareProfile]


def profile_chooser(name: str | None = None, base: Path | None = None) -> Chooser:
    """Profile per run, as :func:`sim.profiles.resolve_profile` picks it (``name``: file or bundled stem).
    A profile without a memory figure gets the GPU's memory as CUDA reports it (:func:`sim.service.profile_gpu`)."""
    cache: dict[tuple[str, int], HardwareProfile] = {}

    def choose(run: MeasuredRun) -> HardwareProfile:
        key = run.hardware_key
        if key not in cache:
            cache[key] = resolve_profile(run.gpu, run.gpu_count, name, base or Path.cwd())
        return cache[key]

    return choose


def record(run: MeasuredRun, predicted: dict[str, float] | None) -> dict[str, Any]:
    """One run's validation record (the JSON object ``planner validate --json`` writes)."""

    def clean(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    return {
        "file": run.file,
        "model_id": run.model_id,
        "gpu_name": run.gpu_name,
        "gpu_count": run.gpu_count,
        "request_rate": run.request_rate if math.isfinite(run.request_rate) else None,
        "measured": {k: clean(run.metrics.get(k)) for k in METRICS},
        "predicted": {k: clean((predicted or {}).get(k)) for k in METRICS},
    }


def validate_points(
    points: Sequence[FitPoint],
    choose: Chooser,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    lengths: LengthModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    failures: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Validation records of all points (predicted metrics are null where a run cannot be replayed:
    the model does not fit, its lengths do not fit its dataset, the simulated engine failed; the reason
    goes into ``failures``, keyed by the run's file and line)."""
    out = []
    for i, p in enumerate(points):
        try:
            predicted: dict[str, float] | None = replay(
                p.run, p.model, p.gpu, choose(p.run), seeds=seeds, lengths=lengths or LengthModel()
            ).metrics
        except (ValueError, RuntimeError) as exc:
            predicted = None
            if failures is not None:
                failures[p.run.place] = str(exc)
        out.append(record(p.run, predicted))
        if progress:
            progress(i + 1, len(points))
    return out


def ape(rec: dict[str, Any], metric: str) -> float:
    """Absolute percentage error of one metric in one record (nan when either side is missing)."""
    m = rec["measured"].get(metric)
    p = rec["predicted"].get(metric)
    if m is None or p is None or not m > 0:
        return math.nan
    return 100.0 * abs(p / m - 1.0)


def mape(records: Sequence[dict[str, Any]], metric: str) -> float:
    errs = [e for e in (ape(r, metric) for r in records) if math.isfinite(e)]
    return sum(errs) / len(errs) if errs else math.nan
