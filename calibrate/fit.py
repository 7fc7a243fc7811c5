"""Fitting a hardware profile: the step-time constants that make replays reproduce measured runs.

A hardware configuration (GPU type x count = TP size) is described by a
:class:`~sim.service.HardwareProfile`: achieved fractions of peak memory bandwidth (weights, KV
reads) and of peak FP16 throughput (prefill), fixed per-step, per-layer and per-sequence costs, the
tensor-parallel all-reduce (latency, link efficiency), the API server's latency, and the memory
vLLM keeps out of the KV cache.  The model enters only through its config (weights, FLOPs, KV bytes
per token, layers), so all runs on one configuration — several models — are fitted jointly, and the
profile predicts a model it never saw.

The fit (:func:`fit_profile`) replays every run (:func:`calibrate.replay.replay`) and minimises the
log-ratios predicted/measured of request throughput, TTFT, TPOT and ITL percentiles with
``scipy.optimize.least_squares`` under a robust ``soft_l1`` loss, so a few wild points cannot drag the
parameters; weak priors keep parameters the data do not pin down near physical defaults.  Parameters
live in a log (or logit) space, and finite differences use large steps: a replay is a discrete-event
simulation whose output is piecewise smooth in the parameters.  After a first pass, points whose
residuals are far out (robust z-score, and a factor ~1.5 off) are flagged as outliers and refitted
with zero weight (given :data:`MIN_RUNS_FOR_OUTLIERS` runs; fewer are only flagged); every run's
residuals are reported.  A host launch cost that no run's steps show (every model GPU-bound) is put
back to its prior (:func:`settle_launch_cost`), and each parameter's spread and the share of it the
runs (not the prior) set are reported (:mod:`calibrate.spread`).  The runtime memory reserve is then
confirmed by a scan (:func:`confirm_reserve`): it moves the KV capacity, hence preemption and
prefix-cache hits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from calibrate.importer import MeasuredRun
from calibrate.replay import DEFAULT_SEEDS, LengthModel, ReplayOutcome, engine_settings, replay
from calibrate.spread import central_jacobian, parameter_spread, principal_axes, robust_rows
from scenarios.catalog import GpuSpec
from scenarios.models import ModelSpec
from sim.service import DEFAULT_RUNTIME_RESERVE_GB, HardwareProfile, StepTimeModel

#: metric -> weight of its log-ratio residual in the fit
WEIGHTS: dict[str, float] = {
    "request_throughput": 1.0,
    "median_ttft_ms": 0.8,
    "p90_ttft_ms": 0.5,
    "median_tpot_ms": 1.0,
    "p90_tpot_ms": 0.5,
    "median_itl_ms": 0.6,
    "p99_itl_ms": 0.25,
}

#: residual (weighted log-ratio) beyond which the ``soft_l1`` loss weighs a run's metric less and less
F_SCALE = 0.1

#: fewest runs a fit refits without its outliers: in a handful of runs of one model each run is its
#: own regime (a rate, a cold or warm cache), and dropping one frees the parameters only it pinned
#: down; such fits still flag (report) outliers but keep them in, under the robust loss
MIN_RUNS_FOR_OUTLIERS = 8

#: runtime reserves (GB per GPU beyond the activation peak) :func:`confirm_reserve` tries.  None is
#: below 0.25 GB: vLLM counts every byte the process holds on the device outside PyTorch's allocator
#: as "non-torch" memory (total - free - torch's current), and that includes the CUDA context and the
#: cuBLAS workspaces, several hundred MB on any recent GPU.  A smaller reserve is not physical, and
#: near the edge where a model's context just fits it would flip the replay's memory decision.
RESERVE_GRID = (0.25, 0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Param:
    """One fitted profile field: bounds, prior (start) and the space it is fitted in."""

    name: str
    lo: float
    hi: float
    prior: float
    log: bool = True
    prior_weight: float = 0.03
    """Weight of the residual log(value / prior) (or value - prior in linear space)."""

    def __post_init__(self) -> None:
        if not self.lo < self.hi:
            raise ValueError(f"{self.name}: lo(={self.lo}) must be < hi(={self.hi})")
        if not self.lo <= self.prior <= self.hi:
            raise ValueError(f"{self.name}: prior(={self.prior}) must be within [{self.lo}, {self.hi}]")
        if self.log and self.lo <= 0:
            raise ValueError(f"{self.name}: lo(={self.lo}) must be > 0 for a log-space parameter")

    def to_x(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return math.log(v) if self.log else v

    def from_x(self, x: float) -> float:
        return math.exp(x) if self.log else x

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.to_x(self.lo), self.to_x(self.hi))


def default_params(tp: int) -> list[Param]:
    """The parameters fitted for a configuration of ``tp`` GPUs (link terms only when tp > 1)."""
    ps = [
        # streaming weights reaches 75-90 % of peak bandwidth on every GPU: a firm prior, so that runs
        # of launch-bound small models cannot explain their slow steps by a slow memory system
        Param("mem_eff", 0.3, 1.0, 0.8, prior_weight=0.5),
        Param("compute_eff", 0.15, 1.0, 0.6),
        Param("attn_eff", 0.1, 1.2, 0.6, prior_weight=0.2),
        Param("step_overhead_s", 2e-4, 0.03, 0.002),
        # the host's launch cost differs several-fold between boxes: a loose prior
        Param("per_layer_s", 1e-6, 1e-3, 8e-5, prior_weight=0.01),
        # a step beyond vLLM's CUDA graphs launches each kernel (~10-15 per layer) instead of two graph
        # pieces and the attention call: a few times the per-layer cost
        Param("eager_factor", 1.0, 20.0, 3.0),
        Param("per_seq_s", 1e-7, 5e-4, 3e-5),
        Param("frontend_s", 5e-4, 0.05, 0.006),
    ]
    if tp > 1:
        ps += [Param("comm_latency_s", 1e-6, 1e-3, 2e-5), Param("comm_eff", 0.02, 1.0, 0.5),
               # a TP server's worker processes busy-poll the host beside the API server: the request path's
               # latency varies from request to request (one process on a single GPU keeps it steady).
               # Fitted last (calibrate.fitplan.LATE_PARAMS), once the engine's constants and KV reserve stand.
               Param("frontend_spread", 0.02, 2.0, 0.5)]
    return ps


@dataclass(frozen=True)
class FitPoint:
    """A run to fit with what it needs to be replayed."""

    run: MeasuredRun
    model: ModelSpec
    gpu: GpuSpec
    weight: float = 1.0


@dataclass
class RunResidual:
    """Predicted vs measured for one run, with the log-ratio residual of each fitted metric."""

    run: MeasuredRun
    predicted: dict[str, float]
    measured: dict[str, float]
    log_ratio: dict[str, float]
    outlier: bool = False
    cache_hit: float = 0.0
    kv_tokens: int = 0

    def worst(self) -> tuple[str, float]:
        k = max(self.log_ratio, key=lambda m: abs(self.log_ratio[m]))
        return k, self.log_ratio[k]


@dataclass
class FitResult:
    """A fitted profile, its residuals and the fit's bookkeeping."""

    profile: HardwareProfile
    residuals: list[RunResidual]
    cost: float
    evaluations: int
    params: list[str]
    outliers: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def mape(self, metric: str, include_outliers: bool = False) -> float:
        # a measured value of 0 is not scored, as in the fit's residuals (:func:`residuals_of`)
        errs = [abs(r.predicted[metric] / r.measured[metric] - 1.0) for r in self.residuals
                if metric in r.measured and metric in r.predicted and (include_outliers or not r.outlier)
                and r.measured[metric] > 0 and math.isfinite(r.predicted[metric])]
        return 100.0 * float(np.mean(errs)) if errs else math.nan


Progress = Callable[[str, float], None]


def evaluate(points: Sequence[FitPoint], profile: HardwareProfile, seeds: Sequence[int],
             lengths: LengthModel) -> list[ReplayOutcome | None]:
    out: list[ReplayOutcome | None] = []
    for p in points:
        try:
            out.append(replay(p.run, p.model, p.gpu, profile, seeds=seeds, lengths=lengths))
        except (ValueError, RuntimeError):
            # the model does not fit under this profile's memory model, or the engine left requests
            # unfinished: a failed replay, scored as far off (see residuals_of)
            out.append(None)
    return out


def residuals_of(points: Sequence[FitPoint], outcomes: Sequence[ReplayOutcome | None],
                 weights: dict[str, float]) -> list[RunResidual]:
    res = []
    for p, o in zip(points, outcomes, strict=True):
        lr: dict[str, float] = {}
        pred = o.metrics if o is not None else {}
        for k in weights:
            m = p.run.metrics.get(k)
            v = pred.get(k, math.nan)
            if m is None or not m > 0:
                continue
            lr[k] = math.log(v / m) if v > 0 and math.isfinite(v) else 3.0
        res.append(RunResidual(p.run, dict(pred), {k: p.run.metrics[k] for k in weights if k in p.run.metrics},
                               lr, cache_hit=o.cache_hit if o else 0.0, kv_tokens=o.kv_tokens if o else 0))
    return res


def flag_outliers(residuals: list[RunResidual], z: float = 3.5, floor: float = 0.4,
                  max_share: float = 0.12) -> list[int]:
    """Indices of runs with a metric whose residual is far out: beyond ``z`` robust standard
    deviations of that metric's residuals and ``floor`` in log-ratio (a factor 1.5).  At most
    ``max_share`` of the runs (the worst first) are flagged: outliers are a few wild points, not a
    model the profile fails to describe."""
    score: dict[int, float] = {}
    metrics = {k for r in residuals for k in r.log_ratio}
    for k in metrics:
        vals = np.array([r.log_ratio.get(k, 0.0) for r in residuals])
        med = float(np.median(vals))
        mad = max(1.4826 * float(np.median(np.abs(vals - med))), 0.02)
        for i, v in enumerate(vals):
            zi = abs(v - med) / mad
            if zi > z and abs(v) > floor:
                score[i] = max(score.get(i, 0.0), zi)
    limit = max(1, int(max_share * len(residuals)))
    return sorted(sorted(score, key=lambda i: -score[i])[:limit])


def _profile_from(base: HardwareProfile, params: Sequence[Param], x: np.ndarray) -> HardwareProfile:
    values: dict[str, Any] = {p.name: p.from_x(float(v)) for p, v in zip(params, x, strict=True)}
    return replace(base, **values)


def fit_profile(
    points: Sequence[FitPoint],
    base: HardwareProfile,
    *,
    params: Sequence[Param] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    lengths: LengthModel | None = None,
    weights: dict[str, float] | None = None,
    max_nfev: int = 60,
    outlier_pass: bool = True,
    multi_start: bool = True,
    progress: Progress | None = None,
) -> FitResult:
    """Fit ``params`` of ``base`` to ``points`` (see module docstring); returns the profile and residuals."""
    if not points:
        raise ValueError("points(=[]) must hold at least one run")
    params = list(params if params is not None else default_params(base.gpus))
    weights = dict(weights or WEIGHTS)
    lengths = lengths or LengthModel()
    point_w = np.array([p.weight for p in points])
    evals = 0

    def resid(x: np.ndarray, pw: np.ndarray) -> np.ndarray:
        nonlocal evals
        evals += 1
        prof = _profile_from(base, params, x)
        rs = residuals_of(points, evaluate(points, prof, seeds, lengths), weights)
        out = [math.sqrt(w) * weights[k] * r.log_ratio.get(k, 0.0) for r, w in zip(rs, pw, strict=True)
               for k in weights]
        for p, v in zip(params, x, strict=True):
            out.append(p.prior_weight * (v - p.to_x(p.prior)))
        if progress:
            progress(f"eval {evals}", evals / max(max_nfev * (len(params) + 1), 1))
        return np.asarray(out)

    x0 = np.array([p.to_x(getattr(base, p.name) if _has_value(base, p) else p.prior) for p in params])
    lo = np.array([p.bounds[0] for p in params])
    hi = np.array([p.bounds[1] for p in params])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def solve(x_start: np.ndarray, pw: np.ndarray, step: float) -> Any:
        return least_squares(resid, x_start, args=(pw,), bounds=(lo, hi), loss="soft_l1", f_scale=F_SCALE,
                             diff_step=step, x_scale=1.0, max_nfev=max_nfev, xtol=1e-4, ftol=1e-5)

    def coarse_then_fine(starts: list[np.ndarray], pw: np.ndarray) -> Any:
        # coarse finite differences first (a replay is piecewise smooth: small steps see its event
        # noise), from every start; then a finer polish from the best
        best = min((solve(s, pw, 0.1) for s in starts), key=lambda sol: sol.cost)
        fine = solve(best.x, pw, 0.03)
        return fine if fine.cost <= best.cost else best

    pw = point_w  # the runs' weights in the final solve (outliers, if refitted without them, at 0)
    sol = coarse_then_fine(_starts(params, x0, lo, hi) if multi_start else [x0], pw)
    x = sol.x
    outliers: list[int] = []
    if outlier_pass and len(points) >= MIN_RUNS_FOR_OUTLIERS:
        prof = _profile_from(base, params, x)
        rs = residuals_of(points, evaluate(points, prof, seeds, lengths), weights)
        outliers = flag_outliers(rs)
        if outliers:
            pw = point_w.copy()
            pw[outliers] = 0.0
            sol = coarse_then_fine([x], pw)
            x = sol.x
    rows = robust_rows(sol.fun, F_SCALE)
    jac = central_jacobian(lambda v: resid(v, pw), x, lo, hi) * rows[:, None]
    spread = parameter_spread(sol, params, len(points) * len(weights), jac)
    axes = principal_axes(sol, params, len(points) * len(weights), jac,
                          sum_sq=lambda v: float(np.sum((resid(v, pw) * rows) ** 2)))
    prof, unpinned = settle_launch_cost(points, _profile_from(base, params, x), params)
    rs = residuals_of(points, evaluate(points, prof, seeds, lengths), weights)
    if outlier_pass and 4 <= len(points) < MIN_RUNS_FOR_OUTLIERS:
        outliers = flag_outliers(rs)  # reported; their weight stays (the robust loss bounds it)
    for i in outliers:
        rs[i].outlier = True
    result = FitResult(prof, rs, float(sol.cost), evals, [p.name for p in params],
                       [rs[i].run.where for i in outliers])
    result.extra["spread"] = spread
    result.extra["axes"] = axes
    if unpinned:
        result.extra["unpinned"] = unpinned
    return result


def settle_launch_cost(points: Sequence[FitPoint], profile: HardwareProfile,
                       params: Sequence[Param]) -> tuple[HardwareProfile, list[str]]:
    """Put ``per_layer_s`` and ``eager_factor`` back to their priors where no run pins them.

    The host's launch cost shows only in steps it outlasts the GPU's work (a step lasts the longer of
    the two): the per-layer cost in the smallest step (one token), the eager factor in the smallest
    step beyond CUDA graphs.  Where that happens in no run, every value below the GPU's time fits
    equally well and the optimiser leaves the parameter wherever it wandered (a start point, a flat
    drift), to be extrapolated to smaller models or more GPUs.  The prior (for a tensor-parallel fit:
    its single-GPU parent's value) then stands, provided it does not show either, so the fit itself is
    unchanged.  Returns the profile and the names of parameters so settled."""
    settled_names: list[str] = []
    graphs = [engine_settings(p.run).cuda_graph_max_tokens for p in points]
    for name, shows in (("per_layer_s", StepTimeModel.launch_bound), ("eager_factor", StepTimeModel.eager_bound)):
        spec = next((p for p in params if p.name == name), None)
        if spec is None or getattr(profile, name) == spec.prior:
            continue
        values: dict[str, Any] = {name: spec.prior}
        settled = replace(profile, **values)
        if not any(shows(StepTimeModel(p.model, p.gpu, prof, p.run.gpu_count, graphs[i]))
                   for prof in (profile, settled) for i, p in enumerate(points)):
            profile = settled
            settled_names.append(name)
    return profile, settled_names


def _starts(params: Sequence[Param], x0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Starting points: ``x0``, and one where the host launch cost dominates small models (the step is
    a max of host and GPU time, a kink a local optimiser does not cross by itself)."""
    starts = [x0]
    names = [p.name for p in params]
    if "per_layer_s" in names:
        alt = x0.copy()
        i = names.index("per_layer_s")
        alt[i] = min(max(x0[i] + math.log(4.0), lo[i]), hi[i])
        starts.append(alt)
    return starts


def _has_value(profile: HardwareProfile, p: Param) -> bool:
    v = getattr(profile, p.name, None)
    return isinstance(v, int | float) and p.lo <= v <= p.hi


def objective(residuals: Sequence[RunResidual], weights: dict[str, float] | None = None) -> float:
    """Robust (soft_l1, scale 0.1) sum over non-outlier runs, as the fit minimises it."""
    weights = weights or WEIGHTS
    total = 0.0
    for r in residuals:
        if r.outlier:
            continue
        for k, w in weights.items():
            z = (w * r.log_ratio.get(k, 0.0) / 0.1) ** 2
            total += 2 * (math.sqrt(1 + z) - 1)
    return 0.01 * total


def confirm_reserve(
    points: Sequence[FitPoint], profile: HardwareProfile,
    grid: Sequence[float] = RESERVE_GRID,
    *, seeds: Sequence[int] = DEFAULT_SEEDS, lengths: LengthModel | None = None,
) -> tuple[HardwareProfile, dict[float, float]]:
    """Scan ``runtime_reserve_gb`` (KV capacity) with the other parameters fixed; keep the best.

    Every run counts, outliers of the fit included (the robust loss bounds their weight): runs near
    KV exhaustion are both the likeliest outliers under a wrong reserve and the only ones it moves."""
    lengths = lengths or LengthModel()
    scores: dict[float, float] = {}
    for g in grid:
        prof = replace(profile, runtime_reserve_gb=g)
        scores[g] = objective(residuals_of(points, evaluate(points, prof, seeds, lengths), WEIGHTS))
    # where the runs cannot tell reserves apart, the default stands (not the start value: a TP fit
    # starts from its single-GPU parent's reserve, which a few hundredths of objective decided)
    best = min(scores, key=lambda g: (round(scores[g], 6), abs(g - DEFAULT_RUNTIME_RESERVE_GB)))
    return replace(profile, runtime_reserve_gb=best), scores
