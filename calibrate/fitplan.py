"""From measured runs to a profile file: one fit per hardware configuration, written as it goes.

Runs are grouped by hardware configuration (catalogue GPU name x GPU count = TP size) and each group
is fitted by :func:`calibrate.fit.fit_profile`.  Single-GPU configurations come first: a
tensor-parallel configuration of the same GPU type then *derives* from them — it keeps the GPU's
achieved bandwidth and compute fractions (properties of the chip, measured on more models) and fits
only what TP changes: the all-reduce (latency, link efficiency) and the host's per-step, per-layer,
per-sequence and request-path costs (more worker processes, another box).  This is how 2xH100-PCIe
is built from the 1xH100 fit plus the 70B runs, and 2/4/8xRTX-4090 from the 1xRTX-4090 fit plus the
14B runs.  The runtime memory reserve is then confirmed by a scan (:func:`calibrate.fit.confirm_reserve`).

Every finished configuration is written to the output file at once (atomically), so a long fit can
be interrupted and resumed: configurations already in the file are kept and skipped.  Each entry
carries its fit record — the runs and source files, the engine limits replayed, the metrics' MAPE,
the outliers — and a residual table; derived figures only, never the measurements themselves.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from calibrate.fit import (
    RESERVE_GRID,
    WEIGHTS,
    FitPoint,
    FitResult,
    confirm_reserve,
    default_params,
    fit_profile,
)
from calibrate.importer import MeasuredRun
from calibrate.replay import DEFAULT_SEEDS, engine_settings
from calibrate.resultfields import clip
from calibrate.workload import LengthModel
from scenarios.catalog import DRIVER_MEMORY_GB, GPUS, GpuSpec, find_gpu, find_model
from scenarios.errors import FleetPlannerError
from scenarios.models import ModelSpec, load_model_config, model_from_config, served_as, served_dtype_bytes
from sim.profiles import profile_fields
from sim.profiles import read_profile_entries as profile_file_entries
from sim.service import CUDA_GRAPH_MAX_TOKENS, DEFAULT_RUNTIME_RESERVE_GB, HardwareProfile

#: parameters a TP configuration keeps from the single-GPU fit of its GPU type
GPU_LEVEL = ("mem_eff", "compute_eff", "attn_eff")
#: host parameters a TP fit refits with the single-GPU fit's values as priors (same host, same launches)
HOST_INHERITED = ("per_layer_s", "eager_factor")
#: parameters fitted only after the engine's (:func:`fit_config`): a spread of the request path's latency
#: can explain any TTFT, and fitted from the start it pulls the KV reserve (hence the prefix-cache hits of a
#: box whose cache barely holds a sweep's prompts, 2xRTX-4090) toward a slow, jittery request path
LATE_PARAMS = ("frontend_spread",)
#: upper bound of ``frontend_s`` (the median) once the spread is fitted: a jittery request path's median may
#: reach tens of ms (4xRTX-4090: ~80); a steady one stays under the 50 ms its parameter allows
SPREAD_FRONTEND_MAX = 0.25


class FitInputError(FleetPlannerError):
    """A run cannot be fitted: unknown GPU or model, or an unusable file; the message names it."""


@dataclass(frozen=True)
class FitOptions:
    """How fits are run."""

    seeds: tuple[int, ...] = DEFAULT_SEEDS
    max_nfev: int = 60
    lengths: LengthModel = field(default_factory=LengthModel)
    reserve_grid: tuple[float, ...] = RESERVE_GRID
    derive_tp: bool = True

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError(f"seeds(={self.seeds}) must name at least one seed")
        if self.max_nfev < 1:
            raise ValueError(f"max_nfev(={self.max_nfev}) must be >= 1")


# ------------------------------------------------------------------------------------- resolution
def model_resolver(configs: Sequence[str | Path] = ()) -> Callable[[MeasuredRun], ModelSpec]:
    """How a run's model is found: a given config.json whose name matches the run's ``model_id`` (a
    single one applies to every run), the built-in catalogue, or the config fields a bundle carries;
    served in the ``--dtype`` of the run's server command where a bundle recorded one (else vLLM's
    ``auto``: 16-bit), and quantized as it loads where the server was started with ``--quantization fp8``
    (FP8 weights and activations; a checkpoint quantized already keeps its own), with the KV cache in the
    server's ``--kv-cache-dtype``."""
    specs = [load_model_config(p) for p in configs]

    def find(run: MeasuredRun) -> ModelSpec:
        spec = _find(run)
        served = str(run.engine.get("dtype") or "auto")
        if served != "auto":
            spec = replace(spec, dtype_bytes=served_dtype_bytes(served, f"{run.place}: server --dtype"))
        try:
            return served_as(spec, run.engine.get("quantization"), str(run.engine.get("kv_cache_dtype") or "auto"))
        except ValueError as exc:
            raise FitInputError(f"{run.place}: server {exc}") from None

    def _find(run: MeasuredRun) -> ModelSpec:
        short = run.short_model.lower()
        for s in specs:
            name = s.name.rstrip("/").lower()
            if name in (run.model_id.lower(), short) or name.split("/")[-1] == short:
                return s
        if len(specs) == 1:
            return specs[0]
        spec = find_model(run.model_id)
        if spec is not None:
            return spec
        if run.model_config and "error" not in run.model_config:
            return model_from_config(run.model_config, name=run.model_id, source=run.place)
        raise FitInputError(f"{run.place}: model_id {run.model_id!r} is not in the built-in catalogue; "
                            "give its config.json with --model-config")

    return find


def resolve_points(runs: Sequence[MeasuredRun], configs: Sequence[str | Path] = (),
                   hardware: dict[str, GpuSpec] | None = None) -> list[FitPoint]:
    """Runs with their model and GPU specs; runs a replay cannot reproduce raise :class:`FitInputError`.

    ``hardware``: specs of GPU types (or CPU hosts) outside the catalogue, by the name the runs carry
    (see :func:`scenarios.loader.load_hardware_file`); they take precedence over catalogue entries.
    """
    find = model_resolver(configs)
    known = {**GPUS, **(hardware or {})}
    out = []
    for r in runs:
        spec = known.get(r.gpu) or find_gpu(r.gpu_name, known)
        if spec is None:
            raise FitInputError(f"{r.place}: gpu_name {clip(r.gpu_name)} is not a known GPU "
                                f"(known: {', '.join(known)}; describe others with --hardware FILE)")
        if r.max_concurrency is not None and r.max_concurrency < 1:
            raise FitInputError(f"{r.place}: max_concurrency(={r.max_concurrency}) must be >= 1 (or null)")
        if r.gpu != spec.name:
            r = replace(r, gpu=spec.name)
        out.append(FitPoint(r, find(r), spec))
    return out


def group_points(points: Sequence[FitPoint]) -> dict[tuple[str, int], list[FitPoint]]:
    """Points per hardware configuration, single-GPU configurations first."""
    groups: dict[tuple[str, int], list[FitPoint]] = {}
    for p in points:
        groups.setdefault(p.run.hardware_key, []).append(p)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def base_profile(gpu: str, gpus: int, points: Sequence[FitPoint] = ()) -> HardwareProfile:
    """Start of a fit: priors, the GPU's memory as CUDA reports it (a bundle's NVML figure if known)."""
    mem: float | None = DRIVER_MEMORY_GB.get(gpu)
    for p in points:
        if p.run.engine.get("gpu_memory_bytes"):
            mem = float(p.run.engine["gpu_memory_bytes"]) / 1e9
            break
    values: dict[str, Any] = {q.name: q.prior for q in default_params(gpus)}
    return HardwareProfile(gpu=gpu, gpus=gpus, memory_gb=mem, runtime_reserve_gb=DEFAULT_RUNTIME_RESERVE_GB, **values)


# ------------------------------------------------------------------------------------------ fitting
Progress = Callable[[str, float], None]


def fit_config(points: Sequence[FitPoint], options: FitOptions, *, parent: HardwareProfile | None = None,
               progress: Progress | None = None) -> FitResult:
    """Fit one configuration (all its points share ``gpu``; ``parent``: a single-GPU fit to derive from)."""
    gpu, gpus = points[0].run.hardware_key
    base = base_profile(gpu, gpus, points)
    params = default_params(gpus)
    if parent is not None:
        base = replace(base, **{k: getattr(parent, k) for k in GPU_LEVEL},
                       runtime_reserve_gb=parent.runtime_reserve_gb)
        params = [p for p in params if p.name not in GPU_LEVEL]
        params = [replace(p, prior=getattr(parent, p.name)) if p.name in HOST_INHERITED else p for p in params]
    late = [p for p in params if p.name in LATE_PARAMS]
    early = [p for p in params if p.name not in LATE_PARAMS]
    steady: dict[str, Any] = {p.name: 0.0 for p in late}
    base = replace(base, **steady)  # the engine's fit sees a steady request path
    result = fit_profile(points, base, params=early, seeds=options.seeds, lengths=options.lengths,
                         max_nfev=options.max_nfev, progress=progress)
    scores: dict[float, float] = {}
    if options.reserve_grid:
        prof, scores = confirm_reserve(points, result.profile, options.reserve_grid, seeds=options.seeds,
                                       lengths=options.lengths)
        if prof.runtime_reserve_gb != result.profile.runtime_reserve_gb:
            result = fit_profile(points, prof, params=early, seeds=options.seeds,
                                 lengths=options.lengths, max_nfev=max(options.max_nfev // 2, 4),
                                 progress=progress, multi_start=False)
    if late:  # then all parameters together from there, the request path's spread with them
        spread: dict[str, Any] = {p.name: p.prior for p in late}
        start = replace(result.profile, **spread)
        params = [replace(p, hi=SPREAD_FRONTEND_MAX) if p.name == "frontend_s" else p for p in params]
        result = fit_profile(points, start, params=params, seeds=options.seeds, lengths=options.lengths,
                             max_nfev=max(options.max_nfev // 2, 4), progress=progress, multi_start=False)
    if scores:
        result.extra["reserve_scan"] = {float(k): round(v, 4) for k, v in scores.items()}
    hits = [r.cache_hit for r in result.residuals]
    result.profile = replace(result.profile, prefix_hit=round(sum(hits) / max(len(hits), 1), 3))
    return result


def fit_all(
    points: Sequence[FitPoint],
    options: FitOptions,
    *,
    done: dict[tuple[str, int], dict[str, Any]] | None = None,
    on_result: Callable[[tuple[str, int], dict[str, Any]], None] | None = None,
    progress: Callable[[tuple[str, int], str, float], None] | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Fit every configuration; ``done`` entries (a resumed file) are kept, not refitted."""
    entries: dict[tuple[str, int], dict[str, Any]] = dict(done or {})
    fitted: dict[str, HardwareProfile] = {}
    for key, entry in entries.items():
        if key[1] == 1:
            fitted[key[0]] = HardwareProfile.from_dict(profile_fields(entry))
    for key, group in group_points(points).items():
        if key in entries:
            continue
        parent = fitted.get(key[0]) if options.derive_tp and key[1] > 1 else None

        def report(msg: str, frac: float, key: tuple[str, int] = key) -> None:
            if progress:
                progress(key, msg, frac)

        result = fit_config(group, options, parent=parent, progress=report)
        entry = profile_entry(result, group, options, parent)
        entries[key] = entry
        if key[1] == 1:
            fitted[key[0]] = result.profile
        if on_result:
            on_result(key, entry)
    return entries


# ---------------------------------------------------------------------------------------- the file
def _pct(x: float) -> float | None:
    return None if not math.isfinite(x) else round(100.0 * x, 1)


def _round_gb(x: float) -> float:
    """GB to 2 decimals, or 3 significant digits below 1 GB (a test model's weights are a few MB)."""
    return round(x, 2) if x >= 1 else float(f"{x:.3g}")


def profile_entry(result: FitResult, points: Sequence[FitPoint], options: FitOptions,
                  parent: HardwareProfile | None) -> dict[str, Any]:
    """The YAML entry of one fitted configuration: profile fields, fit record, residual table."""
    prof = result.profile
    models = sorted({p.run.model_id for p in points})
    files = sorted({p.run.file for p in points})
    settings = engine_settings(points[0].run)
    # CUDA graphs where a server set them otherwise than vLLM's default (--enforce-eager: 0)
    graphs = {"cuda_graph_max_tokens": settings.cuda_graph_max_tokens} \
        if settings.cuda_graph_max_tokens != CUDA_GRAPH_MAX_TOKENS else {}
    source = f"calibrate fit: {len(points)} runs of {len(models)} model(s) on {prof.gpus}x{prof.gpu}"
    per_gpu = [p.model.weight_bytes / p.run.gpu_count / 1e9 for p in points]
    prof = replace(prof, source=source, fitted_weights_gb=(_round_gb(min(per_gpu)), _round_gb(max(per_gpu))))
    entry: dict[str, Any] = {}
    for k, v in prof.to_dict().items():
        entry[k] = round(v, 6 if abs(v) >= 1e-3 else 9) if isinstance(v, float) else v
    fit: dict[str, Any] = {
        "runs": len(points),
        "models": models,
        "files": sorted({os.path.relpath(os.path.dirname(f) or ".") for f in files}),
        "file_names": [os.path.basename(f) for f in files],
        "fitted": result.params,
        "derived_from": f"1x{parent.gpu} (kept {', '.join(GPU_LEVEL)})" if parent is not None else None,
        "seeds": len(options.seeds),
        "engine": {"max_num_seqs": settings.max_num_seqs, "max_num_batched_tokens": settings.max_num_batched_tokens,
                   "gpu_memory_utilization": settings.gpu_memory_utilization, "block_size": settings.block_size,
                   **graphs},
        "length_model": {"prompt_sigma": options.lengths.prompt_sigma, "output_sigma": options.lengths.output_sigma,
                         "reply_ratio": options.lengths.reply_ratio, "stop_bias": options.lengths.stop_bias},
        "mape_pct": {k: round(result.mape(k), 1) for k in WEIGHTS},
        "outliers": [o for o in result.outliers],
        "unpinned": result.extra.get("unpinned", []),
        "spread": result.extra.get("spread", {}),
        "axes": result.extra.get("axes", []),
        "evaluations": result.evaluations,
    }
    if "reserve_scan" in result.extra:
        fit["reserve_scan"] = result.extra["reserve_scan"]
    bundles = sorted({os.path.relpath(Path(f).parent.parent) for f in files
                      if Path(f).parent.name == "points" and (Path(f).parent.parent / "manifest.json").is_file()})
    if bundles:  # the planner's measured power model reads their NVML records (planner.measured)
        fit["bundles"] = bundles
    entry["fit"] = fit
    entry["residuals"] = [
        {"file": os.path.basename(r.run.file), "model": r.run.short_model, "rate": r.run.request_rate,
         "outlier": r.outlier, "kv_tokens": r.kv_tokens, "cache_hit": round(r.cache_hit, 2),
         **{k: _pct(math.exp(v) - 1.0) for k, v in r.log_ratio.items()}}
        for r in result.residuals
    ]
    return entry


HEADER = """\
# Hardware profiles fitted by `calibrate fit` (fleet-planner).  Derived figures only: each entry names
# the measurement files it was fitted on (fit.files) and lists every run's residual, in percent
# (predicted / measured - 1), per metric.  The simulator reads the profile fields; `fit` and
# `residuals` are the record.  Regenerate rather than edit.
"""


def write_profile_file(path: str | Path, entries: dict[tuple[str, int], dict[str, Any]],
                       header: str = HEADER) -> None:
    """Write all entries (sorted by GPU, count) atomically."""
    p = Path(path)
    data = {"profiles": [entries[k] for k in sorted(entries)]}
    text = header + yaml.safe_dump(data, sort_keys=False, width=110, allow_unicode=False)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)


def read_profile_entries(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Entries of a profile file keyed by (GPU, count), their fit records checked; errors name the file
    and entry."""
    entries = profile_file_entries(path)
    for i, (entry, _) in enumerate(entries):
        check_record(entry, f"{path}: profiles[{i}]")
    return {(prof.gpu, prof.gpus): entry for entry, prof in entries}


#: the fit record's lists of names and its mappings, as :func:`profile_entry` writes them
_RECORD_LISTS = ("models", "files", "file_names", "fitted", "unpinned", "outliers")
_RECORD_MAPS = ("spread", "engine", "mape_pct", "reserve_scan", "length_model")


def _number(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def check_record(entry: dict[str, Any], where: str) -> None:
    """Refuse a fit record (``fit``) or residual table (``residuals``) of an entry that a hand edit left
    shaped otherwise than ``calibrate fit`` writes it, naming the field (``fit.axes``: :mod:`calibrate.bands`)."""
    fit = {} if entry.get("fit") is None else entry["fit"]
    if not isinstance(fit, dict):
        raise FleetPlannerError(f"{where}.fit: expected a mapping (the record calibrate fit writes), got {fit!r:.60}")
    for key in _RECORD_LISTS:
        v = fit.get(key) or []
        if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise FleetPlannerError(f"{where}.fit.{key}: expected a list of names, got {v!r:.60}")
    for key in _RECORD_MAPS:
        if not isinstance(fit.get(key) or {}, dict):
            raise FleetPlannerError(f"{where}.fit.{key}: expected a mapping, got {fit[key]!r:.60}")
    for key in ("runs", "seeds", "evaluations"):
        v = fit.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise FleetPlannerError(f"{where}.fit.{key}: expected a whole number, got {v!r:.60}")
    if fit.get("derived_from") is not None and not isinstance(fit["derived_from"], str):
        raise FleetPlannerError(f"{where}.fit.derived_from: expected text, got {fit['derived_from']!r:.60}")
    for name, v in (fit.get("engine") or {}).items():
        if isinstance(v, dict | list):
            raise FleetPlannerError(f"{where}.fit.engine.{name}: expected a number, got {v!r:.60}")
    for name, s in (fit.get("spread") or {}).items():
        if not (isinstance(s, dict) and _number(s.get("pm_pct")) and _number(s.get("data_share"))):
            raise FleetPlannerError(f"{where}.fit.spread.{name}: expected a mapping with numbers pm_pct and "
                                    f"data_share, got {s!r:.60}")
    for key in ("mape_pct", "reserve_scan"):
        bad = [k for k, v in (fit.get(key) or {}).items() if not _number(v)]
        if bad:
            raise FleetPlannerError(f"{where}.fit.{key}.{bad[0]}: expected a number, got {fit[key][bad[0]]!r:.60}")
    rows = [] if entry.get("residuals") is None else entry["residuals"]
    if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        raise FleetPlannerError(f"{where}.residuals: expected a list of mappings (one per run), got {rows!r:.60}")
    for j, row in enumerate(rows):
        for k, v in row.items():
            ok = isinstance(v, str) if k in ("file", "model") else isinstance(v, bool) if k == "outlier" \
                else _number(v)
            if not ok:
                raise FleetPlannerError(f"{where}.residuals[{j}].{k}: expected "
                                        f"{'text' if k in ('file', 'model') else 'a number'}, got {v!r:.60}")
