"""How firmly a fit's runs pin each parameter of a hardware profile.

A fitted value means something about the hardware only where the runs set it.  Runs of a launch-bound
small model say nothing about memory bandwidth; runs whose prompts all hit the prefix cache say
nothing about prefill compute; runs of one model on a tensor-parallel box pin the sum of its host costs
over a step but not each one.  There the weak prior of :func:`calibrate.fit.default_params` decides.

:func:`parameter_spread` reads this off the solution of ``scipy.optimize.least_squares``, by
Gauss-Newton: the covariance of the fitted (log-space) parameters is ``s^2 (J^T J)^-1``, with ``J`` the
Jacobian of the residuals (the runs' and the priors') and ``s^2`` the runs' residual variance.  ``J``
is taken by central differences over +-:data:`SPREAD_STEP` (:func:`central_jacobian`), not from the
optimiser's own small forward steps: a replay is piecewise smooth, and a step of a few percent sees
the jumps of its events rather than the trend.  (Fitted on the 1.5B alone on the RTX 4090 box,
compute efficiency read +-5% off the optimiser's Jacobian, yet fits with it held at 0.55 or at 0.87
matched the runs equally well; the central Jacobian says +-32%, and +-2% once the 8B's runs join.)  The
*data share* of a parameter is the part of its variance the runs remove, against its prior alone
(``1 - var / var_prior``): near 1, the runs set it; near 0, the prior does.  It accounts for
correlations: two parameters that only the same runs move, in opposite directions, share little.
Where the share is small, the spread only echoes the prior's weight.  At a bound the local picture
does not hold, so such parameters are named instead.  Local and approximate: a replay is piecewise
smooth, and model error is not noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from calibrate.fit import Param


#: half-width of :func:`central_jacobian`'s differences in the fitted space (log space: about +-10%)
SPREAD_STEP = 0.1

#: shortest uncertainty axis :func:`principal_axes` keeps (fitted space: 0.02 is about 2%)
MIN_AXIS_SD = 0.02

#: halvings :func:`axis_reach` makes of a side the runs rule out at its full length
REACH_STEPS = 4

#: rise of the sum of squares, in residual variances, at which the runs rule a move out: 4 (a 2-sigma
#: move in a linear problem, about 95 %), so that replay noise and a gently curved valley do not cut an
#: axis; a host cost that would outlast the GPU's work raises it by orders of magnitude
REACH_CHI2 = 4.0


def central_jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     step: float = SPREAD_STEP) -> np.ndarray:
    """Jacobian of ``fun`` at ``x`` by central differences over +-``step`` (one-sided where a bound is
    nearer): 2 evaluations per parameter."""
    cols = []
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] = min(x[i] + step, hi[i])
        down[i] = max(x[i] - step, lo[i])
        cols.append((fun(up) - fun(down)) / (up[i] - down[i]))
    return np.column_stack(cols)


def robust_rows(fun: np.ndarray, f_scale: float) -> np.ndarray:
    """Row weights under the ``soft_l1`` loss at residuals ``fun``: ``(1 + (f / f_scale)^2)^-3/4``, as
    ``least_squares`` scales its own Jacobian (so far-off runs weigh in the spread as little as in the fit)."""
    return (1.0 + (np.asarray(fun, dtype=float) / f_scale) ** 2) ** -0.75


def covariance(sol: Any, params: Sequence[Param], n_data: int,
               jac: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
    """``((J^T J)^-1, s^2)`` of ``sol``, whose first ``n_data`` residuals are the runs' and the rest the
    priors', with ``jac`` (default: the optimiser's, ``sol.jac``); the fitted parameters' covariance is
    their product.  None if the Jacobian or the residuals are not finite."""
    jac = np.asarray(sol.jac if jac is None else jac, dtype=float)
    res = np.asarray(sol.fun, dtype=float)[:n_data]
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(res))):
        return None
    used = int(np.count_nonzero(np.any(jac[:n_data] != 0.0, axis=1) | (res != 0.0)))
    s2 = float(res @ res) / max(used - len(params), 1)
    return np.linalg.pinv(jac.T @ jac), s2


def principal_axes(sol: Any, params: Sequence[Param], n_data: int, jac: np.ndarray | None = None,
                   min_sd: float = MIN_AXIS_SD,
                   sum_sq: Callable[[np.ndarray], float] | None = None) -> list[dict[str, Any]]:
    """The fitted parameters' 1-sigma uncertainty as independent moves in the fitted space: the
    covariance's eigenvectors scaled by the square roots of their eigenvalues, largest first, those
    shorter than ``min_sd`` left out.  Each is ``{"moves": name -> displacement (log space for log
    parameters; those it does not move, to 4 decimals, left out), "reach": [minus, plus]}``.  Moving a
    fit by ``-minus`` and ``+plus`` times each axis and replaying shows what its uncertainty does to a
    prediction (:mod:`calibrate.bands`).  Correlations are kept: where only the ratio of two parameters
    is pinned, the long axis moves both.

    The axes are a local (Gauss-Newton) picture, and a replay is not linear: a step lasts the longer of
    the host's launch cost and the GPU's work, so a host cost the runs never show has no slope (and a
    prior-wide axis) up to the point where it would outlast the GPU in their steps, beyond which they
    rule it out.  Given ``sum_sq`` (the weighted sum of squares of all residual rows at a point of the
    fitted space), each side's reach is cut to how far the runs allow (:func:`axis_reach`: until they
    rule the move out at about 95 %); without it, both are 1."""
    got = covariance(sol, params, n_data, jac)
    if got is None:
        return []
    inv, s2 = got
    values, vectors = np.linalg.eigh((inv + inv.T) / 2 * s2)
    x = np.asarray(sol.x, dtype=float)
    lo = np.array([p.bounds[0] for p in params])
    hi = np.array([p.bounds[1] for p in params])
    base = sum_sq(x) if sum_sq is not None else 0.0
    axes: list[dict[str, Any]] = []
    for k in np.argsort(values)[::-1]:
        sd = math.sqrt(max(float(values[k]), 0.0))
        if sd < min_sd:
            break
        vec = sd * vectors[:, k]
        reach = [1.0, 1.0]
        if sum_sq is not None:
            reach = [axis_reach(sum_sq, x, sign * vec, base + REACH_CHI2 * s2, lo, hi) for sign in (-1.0, 1.0)]
        move = {p.name: round(float(vec[i]), 4) for i, p in enumerate(params)}
        axes.append({"moves": {name: d for name, d in move.items() if d != 0.0}, "reach": reach})
    return axes


def axis_reach(sum_sq: Callable[[np.ndarray], float], x: np.ndarray, axis: np.ndarray, limit: float,
               lo: np.ndarray, hi: np.ndarray, steps: int = REACH_STEPS) -> float:
    """The largest ``t`` in [0, 1] (to 1 / 2^``steps``) with ``sum_sq(x + t * axis) <= limit`` (within the
    bounds ``lo``, ``hi``): 1 where the local picture holds, less where the runs rule the far end out.
    ``limit``: the sum of squares at ``x`` plus :data:`REACH_CHI2` residual variances (a 1-sigma move
    raises it by one in a linear problem)."""
    def fits(t: float) -> bool:  # (rounding aside: a linear problem meets the limit exactly at t = 1)
        return sum_sq(np.clip(x + t * axis, lo, hi)) <= limit * (1 + 1e-9)

    if fits(1.0):
        return 1.0
    ok, bad = 0.0, 1.0
    for _ in range(steps):
        t = (ok + bad) / 2
        if fits(t):
            ok = t
        else:
            bad = t
    return ok


def parameter_spread(sol: Any, params: Sequence[Param], n_data: int,
                     jac: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Name -> ``pm_pct`` (approximate 1-sigma spread, %, at most 999), ``data_share`` and, for a
    parameter the optimiser left pressed against one of its bounds, ``at_bound``; from ``sol`` and
    ``jac`` as for :func:`covariance`; empty if the Jacobian is not finite."""
    got = covariance(sol, params, n_data, jac)
    if got is None:
        return {}
    cov, s2 = got
    out: dict[str, dict[str, Any]] = {}
    for i, p in enumerate(params):
        sd = math.sqrt(max(float(cov[i, i]) * s2, 0.0))
        x = float(sol.x[i])
        pct = 100.0 * math.expm1(min(sd, 3.0)) if p.log else 100.0 * sd / max(abs(p.from_x(x)), 1e-12)
        share = 1.0 - float(cov[i, i]) * p.prior_weight**2 if p.prior_weight > 0 else 1.0
        entry: dict[str, Any] = {"pm_pct": round(min(pct, 999.0), 1), "data_share": round(min(max(share, 0.0), 1.0), 2)}
        # pressed against a bound: near it, with the cost still falling beyond it (the optimiser's
        # iterates stay strictly inside, so "on" the bound means close with the gradient pointing out)
        lo, hi = p.bounds
        g, near = float(sol.grad[i]), 0.05 * (hi - lo)
        if int(sol.active_mask[i]) != 0 or (hi - x < near and g < 0) or (x - lo < near and g > 0):
            entry["at_bound"] = True
        out[p.name] = entry
    return out
