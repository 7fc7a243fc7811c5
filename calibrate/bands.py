"""Prediction bands: what a profile's own fit uncertainty does to a prediction.

``calibrate fit`` records how firmly its runs pinned the profile's parameters as independent 1-sigma
moves in the fitted space, each cut short where its own runs rule out the far end (``fit.axes`` of the
profile file, :func:`calibrate.spread.principal_axes`).  :func:`band` replays a run with the profile
moved as far as each axis reaches, both ways; a metric's band runs
from the prediction down by the root sum of squares of the axes' falls and up by that of their rises (a
first-order propagation that keeps asymmetry: near saturation a slower step lengthens TTFT far more
than a faster one shortens it).  A move that leaves a parameter's bounds stops at the bound.

What the band holds is the calibration's uncertainty only, not the model's own error: where the runs
pin every parameter (a profile predicting the models it was fitted on) bands are a few percent and
``calibrate fit``'s residuals are the better guide; where they did not (a 1.5B's runs say little about
prefill compute, an 8B's nothing about the host's launch cost) a wide band for another model says the
calibration cannot tell, and which way.  Profiles derived for an unmeasured TP size, or roofline
defaults, carry no axes and get no band.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from calibrate.fit import FitPoint, default_params
from calibrate.importer import MeasuredRun
from calibrate.replay import DEFAULT_SEEDS, replay
from calibrate.workload import LengthModel
from scenarios.catalog import normalise_gpu_name
from scenarios.errors import FleetPlannerError
from sim.profiles import BUNDLED_DIR, profile_path, read_profile_entries
from sim.service import HardwareProfile


@dataclass(frozen=True)
class Axis:
    """One independent 1-sigma move of a fit's parameters (:func:`calibrate.spread.principal_axes`)."""

    moves: dict[str, float]
    """Parameter -> displacement in the fitted space (log space for log parameters)."""
    reach: tuple[float, float] = (1.0, 1.0)
    """How far along the axis the fit's runs allow, toward minus and toward plus (fractions of it)."""


def profile_axes(gpu: str, gpus: int, name: str | None = None, base: Path | None = None) -> list[Axis]:
    """The uncertainty axes recorded for ``gpus`` x ``gpu`` in the profile file ``name`` (a path or a
    bundled stem; default: the bundled files), or [] where that hardware has no fitted entry there."""
    files = [profile_path(name, base or Path.cwd())] if name else sorted(BUNDLED_DIR.glob("*.yaml"))
    for f in files:
        for i, (entry, prof) in enumerate(read_profile_entries(f)):
            if normalise_gpu_name(prof.gpu) == gpu and prof.gpus == gpus:
                return entry_axes(entry, f"{f}: profiles[{i}]")
    return []


def entry_axes(entry: dict[str, Any], where: str) -> list[Axis]:
    """The axes of a profile file's entry (``fit.axes``; [] where it has none); a malformed list is an
    error naming ``where`` and the field."""
    fit = entry.get("fit")
    return parse_axes(fit.get("axes") if isinstance(fit, dict) else None, f"{where}.fit.axes")


def parse_axes(axes: object, where: str) -> list[Axis]:
    """:class:`Axis` objects from their record (:func:`calibrate.spread.principal_axes`; None: no axes);
    errors name ``where`` and the field."""
    if axes is None:
        return []
    if not isinstance(axes, list):
        raise FleetPlannerError(f"{where}: expected a list of axes, got {axes!r}")
    out = []
    for j, axis in enumerate(axes):
        at = f"{where}[{j}]"
        moves, reach = (axis.get("moves"), axis.get("reach", [1.0, 1.0])) if isinstance(axis, dict) else (None, None)
        if not isinstance(moves, dict):
            raise FleetPlannerError(f"{at}: expected {{moves: {{parameter: move}}, reach: [minus, plus]}}, "
                                    f"got {axis!r}")
        for k, v in moves.items():
            if not _number(v):
                raise FleetPlannerError(f"{at}.moves.{k}: expected a number, got {v!r}")
        if not (isinstance(reach, list) and len(reach) == 2 and all(_number(r) and 0 <= r <= 1 for r in reach)):
            raise FleetPlannerError(f"{at}.reach: expected [minus, plus], each between 0 and 1, got {reach!r}")
        out.append(Axis({str(k): float(v) for k, v in moves.items()}, (float(reach[0]), float(reach[1]))))
    return out


def _number(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def moved(profile: HardwareProfile, moves: dict[str, float], scale: float) -> HardwareProfile:
    """``profile`` with each parameter of ``moves`` moved by ``scale`` x its displacement in the fitted
    space, held within the parameter's bounds (unknown names are ignored)."""
    specs = {p.name: p for p in default_params(profile.gpus)}
    values: dict[str, Any] = {}
    for name, d in moves.items():
        spec = specs.get(name)
        if spec is None:
            continue
        lo, hi = spec.bounds
        values[name] = spec.from_x(min(max(spec.to_x(getattr(profile, name)) + scale * d, lo), hi))
    return replace(profile, **values)


def band(point: FitPoint, profile: HardwareProfile, axes: Sequence[Axis], center: dict[str, float],
         *, seeds: Sequence[int] = DEFAULT_SEEDS, lengths: LengthModel | None = None) -> dict[str, list[float]]:
    """Metric -> ``[low, high]`` around the prediction ``center`` (see module docstring); where a move
    made the replay fail (the model no longer fits, the engine stalled) the band is unbounded: 0 to inf."""
    falls: dict[str, float] = {k: 0.0 for k in center}
    rises: dict[str, float] = {k: 0.0 for k in center}
    for axis in axes:
        ends: list[dict[str, float]] = []
        for scale in (axis.reach[1], -axis.reach[0]):
            if scale == 0.0:  # the runs rule out any move this way
                ends.append(center)
                continue
            try:
                ends.append(replay(point.run, point.model, point.gpu, moved(profile, axis.moves, scale), seeds=seeds,
                                   lengths=lengths).metrics)
            except (ValueError, RuntimeError):
                ends.append({})
        for k, c in center.items():
            vals = [v if math.isfinite(v) else math.inf for v in (e.get(k, math.inf) for e in ends)]
            lo = min(v if math.isfinite(v) else -math.inf for v in vals)
            hi = max(vals)
            falls[k] += max(c - lo, 0.0) ** 2
            rises[k] += max(hi - c, 0.0) ** 2
    return {k: [max(c - math.sqrt(falls[k]), 0.0), c + math.sqrt(rises[k])] for k, c in center.items()}


def add_bands(points: Sequence[FitPoint], records: Sequence[dict[str, Any]],
              choose: Callable[[MeasuredRun], HardwareProfile], axes_of: Callable[[MeasuredRun], list[Axis]], *,
              seeds: Sequence[int] = DEFAULT_SEEDS, lengths: LengthModel | None = None,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Give each validation record (:func:`calibrate.validation.validate_points`, in the order of
    ``points``) a ``band``: metric -> ``[low, high]`` under its profile's axes (high null: unbounded), or
    None where the run has no prediction or its profile no axes."""
    for i, (p, rec) in enumerate(zip(points, records, strict=True)):
        center = {k: v for k, v in rec["predicted"].items() if v is not None}
        axes = axes_of(p.run) if center else []
        got = band(p, choose(p.run), axes, center, seeds=seeds, lengths=lengths) if axes else None
        # JSON has no infinity: an unbounded top is null
        rec["band"] = {k: [lo, hi if math.isfinite(hi) else None] for k, (lo, hi) in got.items()} if got else None
        if progress:
            progress(i + 1, len(points))


def inside(rec: dict[str, Any], metric: str) -> bool | None:
    """Whether the measured ``metric`` of a banded record lies in its band (None: no band or no value)."""
    b, m = (rec.get("band") or {}).get(metric), rec["measured"].get(metric)
    return None if b is None or m is None else bool(b[0] <= m and (b[1] is None or m <= b[1]))
