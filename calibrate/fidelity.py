"""Fidelity: how well fitted profiles predict runs they were not fitted on.

Four honest checks on a set of measured runs:

``lomo``
    leave one model out, per single-GPU configuration with at least two models: fit the profile on
    every other model's runs, replay the held-out model's runs with it (the model enters only through
    its config.json), and score the predictions.
``cross_tp``
    leave one tensor-parallel size out, per GPU type measured at two or more TP sizes: one profile
    with shared link and host parameters (the GPU's efficiencies taken from its single-GPU fit when
    there is one) fitted on the other sizes predicts the left-out size.
``in_sample``
    the profiles fitted on everything, replayed on the same runs (the fit's own residuals): the only
    check possible where a configuration has a single model.
``unmeasured``
    every configuration as if its GPU type had never been measured: its runs replayed under roofline
    defaults (what the simulator gives an unmeasured GPU type) and, where another GPU type was fitted at
    the same size, under that fit's constants borrowed whole but for the GPU's memory (which the
    simulator does not do: this check says whether it should).

Each check yields validation records (:func:`calibrate.validation.record`) tagged with the check's
name; :func:`summarise` turns them into MAPE per configuration and overall.  Folds are independent and
run in worker processes when asked.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from calibrate.bands import add_bands, inside, parse_axes
from calibrate.fit import FitPoint
from calibrate.fitplan import FitOptions, base_profile, fit_config, group_points
from calibrate.importer import MeasuredRun
from calibrate.validation import mape, validate_points
from sim.service import HardwareProfile

#: metrics the fidelity table reports
TABLE_METRICS = ("request_throughput", "median_tpot_ms", "median_ttft_ms", "p90_ttft_ms")

_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

Fold = tuple[str, list[FitPoint], list[FitPoint], HardwareProfile | None, bool]


def _run_fold(fold: Fold, options: FitOptions, band: bool = False) -> list[dict[str, Any]]:
    name, train, test, parent, _joint = fold
    # a joint (cross-TP) fold fits one profile to runs of several TP sizes: the replay takes the TP
    # size from each run, so the link and host parameters are shared across sizes
    result = fit_config(train, options, parent=parent)
    prof = result.profile

    def choose(run: MeasuredRun) -> HardwareProfile:
        return replace(prof, gpus=run.gpu_count)

    recs = validate_points(test, choose, seeds=options.seeds, lengths=options.lengths)
    if band:  # the range the fold's own fit uncertainty leaves each held-out prediction
        axes = parse_axes(result.extra.get("axes"), f"{name}: fit.axes")
        add_bands(test, recs, choose, lambda run: axes, seeds=options.seeds, lengths=options.lengths)
    for r in recs:
        r["check"] = name
    return recs


def _execute(folds: Sequence[Fold], options: FitOptions, workers: int,
             progress: Callable[[str], None] | None, band: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if workers <= 1 or len(folds) <= 1:
        for f in folds:
            out += _run_fold(f, options, band)
            if progress:
                progress(f[0])
        return out
    # fresh interpreters with single-threaded BLAS: the fits are pure-Python bound, and BLAS thread
    # pools inherited through fork would spin against the other workers
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [(f[0], pool.submit(_run_fold, f, options, band)) for f in folds]
            for name, fut in futures:
                out += fut.result()
                if progress:
                    progress(name)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def lomo_folds(points: Sequence[FitPoint]) -> list[Fold]:
    """Leave-one-model-out folds of every single-GPU configuration with two or more models."""
    folds: list[Fold] = []
    for (gpu, n), group in group_points(points).items():
        models = sorted({p.run.model_id for p in group})
        if n != 1 or len(models) < 2:
            continue
        for m in models:
            train = [p for p in group if p.run.model_id != m]
            test = [p for p in group if p.run.model_id == m]
            folds.append((f"lomo {n}x{gpu} -{m.split('/')[-1]}", train, test, None, False))
    return folds


def cross_tp_folds(points: Sequence[FitPoint], parents: dict[str, HardwareProfile]) -> list[Fold]:
    """Leave-one-TP-size-out folds per GPU type with two or more TP sizes (> 1)."""
    folds: list[Fold] = []
    by_gpu: dict[str, dict[int, list[FitPoint]]] = {}
    for (gpu, n), group in group_points(points).items():
        if n > 1:
            by_gpu.setdefault(gpu, {})[n] = group
    for gpu, sizes in by_gpu.items():
        if len(sizes) < 2:
            continue
        for n in sorted(sizes):
            train = [p for k, g in sizes.items() if k != n for p in g]
            folds.append((f"cross-tp {n}x{gpu}", train, sizes[n], parents.get(gpu), True))
    return folds


def lomo(points: Sequence[FitPoint], options: FitOptions, *, workers: int = 1,
         progress: Callable[[str], None] | None = None, band: bool = False) -> list[dict[str, Any]]:
    """Leave-one-model-out records; ``band``: each with the range its fold's fit uncertainty leaves
    (:func:`calibrate.bands.add_bands`)."""
    return _execute(lomo_folds(points), options, workers, progress, band)


def cross_tp(points: Sequence[FitPoint], options: FitOptions, parents: dict[str, HardwareProfile], *,
             workers: int = 1, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    return _execute(cross_tp_folds(points, parents), options, workers, progress)


def in_sample(points: Sequence[FitPoint], profiles: dict[tuple[str, int], HardwareProfile],
              options: FitOptions) -> list[dict[str, Any]]:
    """Replays under the given (all-data) profiles; configurations without a profile get priors."""
    recs = []
    for key, group in group_points(points).items():
        prof = profiles.get(key) or base_profile(*key)
        recs += _replayed(group, prof, f"in-sample {key[1]}x{key[0]}", options)
    return recs


def _replayed(points: Sequence[FitPoint], profile: HardwareProfile, check: str,
              options: FitOptions) -> list[dict[str, Any]]:
    """Validation records of ``points`` replayed under ``profile``, tagged ``check``."""
    recs = validate_points(points, lambda run: profile, seeds=options.seeds, lengths=options.lengths)
    for r in recs:
        r["check"] = check
    return recs


def borrowed(profile: HardwareProfile, gpu: str) -> HardwareProfile:
    """``profile``'s fitted constants lent to another GPU type ``gpu``: efficiencies, host, link and
    request-path costs, runtime reserve; the GPU's memory is its own (as CUDA reports it for a catalogue GPU:
    :func:`sim.service.profile_gpu`)."""
    return replace(profile, gpu=gpu, memory_gb=None, fitted_weights_gb=None,
                   source=f"{profile.gpus}x{profile.gpu}'s fit lent to {gpu} [{profile.source}]")


def unmeasured(points: Sequence[FitPoint], profiles: dict[tuple[str, int], HardwareProfile],
               options: FitOptions) -> list[dict[str, Any]]:
    """Replays of each configuration's runs as if its GPU type were unmeasured: under roofline defaults
    (``roofline`` records) and under each other GPU type's profile of the same size in ``profiles``
    (``borrowed`` records, via :func:`borrowed`)."""
    recs = []
    for (gpu, n), group in group_points(points).items():
        variants = [(f"roofline {n}x{gpu}", HardwareProfile(gpu=gpu, gpus=n))]
        variants += [(f"borrowed {n}x{gpu} from {n}x{g}", borrowed(p, gpu))
                     for (g, k), p in sorted(profiles.items()) if k == n and g != gpu]
        for name, prof in variants:
            recs += _replayed(group, prof, name, options)
    return recs


def config_of(rec: dict[str, Any]) -> str:
    from scenarios.catalog import normalise_gpu_name

    return f"{rec['gpu_count']}x{normalise_gpu_name(rec['gpu_name'])}"


def summarise(records: Sequence[dict[str, Any]], exclude: set[tuple[str, float]] | None = None,
              metrics: Sequence[str] = TABLE_METRICS) -> list[dict[str, Any]]:
    """MAPE rows per (check kind, configuration) and one overall row per check kind.

    ``exclude``: (file, rate) pairs left out (known oddities flagged by the all-data fit)."""
    exclude = exclude or set()
    kept = [r for r in records if (r["file"], r["request_rate"]) not in exclude]
    rows: list[dict[str, Any]] = []
    kinds = sorted({r["check"].split()[0] for r in kept})
    for kind in kinds:
        mine = [r for r in kept if r["check"].split()[0] == kind]
        for cfg in sorted({config_of(r) for r in mine}):
            sub = [r for r in mine if config_of(r) == cfg]
            rows.append({"check": kind, "config": cfg, "runs": len(sub),
                         "models": len({r["model_id"] for r in sub}),
                         **{m: mape(sub, m) for m in metrics}})
        rows.append({"check": kind, "config": "overall", "runs": len(mine),
                     "models": len({r["model_id"] for r in mine}), **{m: mape(mine, m) for m in metrics}})
    return rows


def band_rows(records: Sequence[dict[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> list[dict[str, Any]]:
    """Per check (fold) with bands: per metric, how many measured values lie in their band and the mean
    width of the bands (high / low)."""
    rows = []
    for check in sorted({r["check"] for r in records if r.get("band")}):
        mine = [r for r in records if r["check"] == check and r.get("band")]
        row: dict[str, Any] = {"check": check, "runs": len(mine)}
        for m in metrics:
            marks = [inside(r, m) for r in mine]
            widths = [b[1] / b[0] for b in (r["band"].get(m) for r in mine) if b and b[0] > 0 and b[1] is not None]
            row[m] = (sum(bool(k) for k in marks), sum(k is not None for k in marks),
                      sum(widths) / len(widths) if widths else math.nan)
        rows.append(row)
    return rows


def band_markdown(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    head = ["fold", "runs", *(m.replace("_ms", "") for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r[m][0]}/{r[m][1]} in, {r[m][2]:.2f}×" for m in metrics]
        lines.append("| " + " | ".join([r["check"], str(r["runs"]), *cells]) + " |")
    return "\n".join(lines)


def markdown(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    head = ["check", "config", "runs", "models", *(m.replace("_ms", "") for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [("-" if math.isnan(r[m]) else f"{r[m]:.1f}%") for m in metrics]
        cfg = f"**{r['config']}**" if r["config"] == "overall" else r["config"]
        lines.append("| " + " | ".join([r["check"], cfg, str(r["runs"]), str(r["models"]), *vals]) + " |")
    return "\n".join(lines)
