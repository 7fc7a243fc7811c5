"""Measured GPU power for the planner's ``measured`` power model, from calibration data.

``calibrate run`` records, for every load point of a bundle, the board power NVML reported (``power``:
``mean_w`` summed over the replica's GPUs, per-GPU records in ``gpus``).  A serving configuration reaches
that data through its calibrated profile entry (the configuration's ``profile:`` file, or the bundled
profile for its hardware); the entry's ``fit`` record, which the simulator ignores, may carry either

- ``power: {idle_w: W, busy_w: W, source: text}``: per-GPU figures, as :func:`power_from_bundle` derives
  them (or as measured by other means), or
- ``bundles: [DIR, ...]``: calibration bundle directories (relative to the profile file, else to the
  working directory) whose points are read when the plan runs.

From a bundle: *busy* = the mean per-GPU power at the point of highest request throughput; *idle* =
the intercept at zero load of a least-squares line of per-GPU power against request throughput
(clamped to [0, lowest measured power]); with a single point the idle figure stays the datasheet's.
Nothing is invented: without such a record :func:`measured_power` returns ``None`` and the planner
falls back to the linear model between idle and board power, saying so in the report.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from planner.footprint import MeasuredPower
from scenarios.catalog import normalise_gpu_name
from scenarios.errors import FleetPlannerError
from scenarios.schema import ServingConfig
from sim.profiles import BUNDLED_DIR, profile_path, read_profile_entries


def power_from_bundle(path: str | Path) -> MeasuredPower | None:
    """Idle and busy per-GPU power from a calibration bundle's points (``None`` if none has power)."""
    from calibrate.bundle import load_bundle

    bundle = load_bundle(path)
    xs: list[float] = []
    ws: list[float] = []
    methods: set[str] = set()
    for point in bundle.points:
        power = point.get("power", {})
        gpus = power.get("gpus") or []
        if not power.get("available") or power.get("mean_w") is None or not gpus:
            continue
        xs.append(float(point["result"]["request_throughput"]))
        ws.append(float(power["mean_w"]) / len(gpus))
        methods.add(str(power.get("method", "?")))
    if not ws:
        return None
    busy = ws[int(np.argmax(xs))]
    idle: float | None = None
    if len(ws) >= 2 and max(xs) > min(xs):
        _slope, intercept = np.polyfit(xs, ws, 1)
        idle = float(min(max(intercept, 0.0), min(ws)))
    src = f"calibration bundle {Path(path).name}: {len(ws)} load point(s), NVML {'/'.join(sorted(methods))}"
    return MeasuredPower(idle, busy, src)


def _entry_for(path: Path, gpu: str, gpus: int) -> dict[str, Any] | None:
    try:
        entries = read_profile_entries(path)
    except FleetPlannerError:
        return None  # the simulator reports unreadable profile files
    for entry, prof in entries:
        if normalise_gpu_name(prof.gpu) == gpu and prof.gpus == gpus:
            return entry
    return None


def _profile_entry(gpu: str, gpus: int, profile: str | None, base: Path) -> tuple[Path, dict[str, Any]] | None:
    """The raw profile entry (with its fit record) a configuration's simulation uses, and its file
    (resolved as :func:`sim.profiles.resolve_profile` does)."""
    files = [profile_path(profile, base)] if profile else sorted(BUNDLED_DIR.glob("*.yaml"))
    for f in files:
        entry = _entry_for(f, gpu, gpus)
        if entry is not None:
            return f, entry
    return None


def measured_power(cfg: ServingConfig, base: Path) -> MeasuredPower | None:
    """Measured per-GPU power of a serving configuration, if its calibration recorded any.  Looked up once
    per state of the profile files it reads: an edited ``fit.power`` (a long TUI session, a state file's
    key) is read again."""
    files = [profile_path(cfg.profile, base)] if cfg.profile else sorted(BUNDLED_DIR.glob("*.yaml"))
    return _lookup(cfg.gpu, cfg.gpus, cfg.profile, str(base), tuple(_stamp(f) for f in files))


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=128)
def _lookup(gpu: str, gpus: int, profile: str | None, base: str,
            _files: tuple[tuple[str, int, int], ...] = ()) -> MeasuredPower | None:
    found = _profile_entry(gpu, gpus, profile, Path(base))
    if found is None:
        return None
    path, entry = found
    fit: dict[str, Any] = entry["fit"] if isinstance(entry.get("fit"), dict) else {}
    rec = fit.get("power")
    if isinstance(rec, dict):
        try:
            idle = rec.get("idle_w")
            return MeasuredPower(
                None if idle is None else float(idle),
                float(rec["busy_w"]),
                str(rec.get("source", f"measured ({path.name})")),
            )
        except (KeyError, TypeError, ValueError):
            raise FleetPlannerError(
                f"{path}: profiles[{gpus}x{gpu}].fit.power: expected {{idle_w: W, busy_w: W, source: text}}"
            ) from None
    for item in fit.get("bundles") or []:
        for root in (path.parent, Path.cwd()):
            candidate = Path(item) if Path(item).is_absolute() else root / str(item)
            if (candidate / "manifest.json").exists():
                got = power_from_bundle(candidate)
                if got is not None:
                    return got
                break
    return None
