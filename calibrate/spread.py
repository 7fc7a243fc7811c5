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
                   min_sd: float = MIN_AXIS_SD) -> list[dict[str, float]]:
    """The fitted parameters' 1-sigma uncertainty as independent moves in the fitted space: the
    covariance's eigenvectors scaled by the square roots of their eigenvalues, largest first, those
    shorter than ``min_sd`` left out.  Each is a dict name -> displacement (log space for log
    parameters; those it does not move, to 4 decimals, left out).  Moving a fit by plus and minus each
    axis and replaying shows what its uncertainty does to a prediction (:mod:`calibrate.bands`).
    Correlations are kept: where only the ratio of two parameters is pinned, the long axis moves both."""
    got = covariance(sol, params, n_data, jac)
    if got is None:
        return []
    inv, s2 = got
    values, vectors = np.linalg.eigh((inv + inv.T) / 2 * s2)
    axes = []
    for k in np.argsort(values)[::-1]:
        sd = math.sqrt(max(float(values[k]), 0.0))
        if sd < min_sd:
            break
        move = {p.name: round(sd * float(vectors[i, k]), 4) for i, p in enumerate(params)}
        axes.append({name: d for name, d in move.items() if d != 0.0})
    return axes


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
