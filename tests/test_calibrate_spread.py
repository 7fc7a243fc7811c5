"""How firmly a fit's runs pin each parameter (:mod:`calibrate.spread`): Gauss-Newton against a linear
problem whose covariance is known in closed form."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from calibrate.fit import Param
from calibrate.spread import central_jacobian, parameter_spread, principal_axes, robust_rows

PARAMS = [Param("mem_eff", 0.3, 1.0, 0.8, prior_weight=0.03), Param("comm_eff", 0.02, 1.0, 0.5, prior_weight=0.1)]


def _sol(x: list[float], grad: list[float] | None = None, jac_scale: float = 2.0) -> SimpleNamespace:
    # four runs' residuals move mem_eff only (slope 2 in log space), none moves comm_eff; then the priors
    jac = np.array([[jac_scale, 0.0]] * 4 + [[0.03, 0.0], [0.0, 0.1]])
    fun = np.array([0.1, -0.1, 0.1, -0.1, 0.0, 0.0])
    return SimpleNamespace(jac=jac, fun=fun, x=np.array(x), grad=np.array(grad or [0.0, 0.0]),
                           active_mask=np.zeros(2, dtype=int))


def test_spread_matches_the_closed_form() -> None:
    got = parameter_spread(_sol([math.log(0.8), math.log(0.5)]), PARAMS, n_data=4)
    s2 = 0.04 / (4 - 2)  # residual sum of squares over (runs - parameters)
    var_mem = s2 / (4 * 2.0**2 + 0.03**2)
    assert got["mem_eff"]["pm_pct"] == pytest.approx(100 * math.expm1(math.sqrt(var_mem)), abs=0.05)
    assert got["mem_eff"]["data_share"] == pytest.approx(1.0, abs=0.005)
    # no run moves comm_eff: its variance is the prior's alone, and the runs' share of it is nil
    assert got["comm_eff"]["pm_pct"] == pytest.approx(100 * math.expm1(math.sqrt(s2 / 0.1**2)), abs=0.05)
    assert got["comm_eff"]["data_share"] == 0.0
    assert not any("at_bound" in v for v in got.values())


def test_a_parameter_pressed_against_a_bound_is_named() -> None:
    hi = math.log(1.0)
    # just inside the upper bound, with the cost still falling outward (gradient < 0): pressed
    got = parameter_spread(_sol([hi - 0.01, math.log(0.5)], grad=[-0.2, 0.0]), PARAMS, n_data=4)
    assert got["mem_eff"].get("at_bound") is True and "at_bound" not in got["comm_eff"]
    # as close, but the cost rises outward: an interior optimum that happens to lie near the bound
    got = parameter_spread(_sol([hi - 0.01, math.log(0.5)], grad=[0.2, 0.0]), PARAMS, n_data=4)
    assert "at_bound" not in got["mem_eff"]


def test_a_failed_jacobian_gives_no_spread() -> None:
    assert parameter_spread(_sol([0.0, 0.0], jac_scale=math.nan), PARAMS, n_data=4) == {}
    assert principal_axes(_sol([0.0, 0.0], jac_scale=math.nan), PARAMS, n_data=4) == []


def test_the_axes_rebuild_the_covariance_and_keep_its_correlation() -> None:
    # four runs pin the sum of the two parameters, one run their difference: its axis is twice as long
    jac = np.array([[1.0, 1.0]] * 4 + [[1.0, -1.0], [0.03, 0.0], [0.0, 0.1]])
    fun = np.array([0.1, -0.1, 0.1, -0.1, 0.05, 0.0, 0.0])
    sol = SimpleNamespace(jac=jac, fun=fun, x=np.zeros(2))
    axes = principal_axes(sol, PARAMS, n_data=5, min_sd=0.0)
    assert all(a["reach"] == [1.0, 1.0] for a in axes)  # nothing to say otherwise without a sum of squares
    vecs = np.array([[a["moves"]["mem_eff"], a["moves"]["comm_eff"]] for a in axes])
    s2 = float(fun[:5] @ fun[:5]) / (5 - 2)
    np.testing.assert_allclose(vecs.T @ vecs, s2 * np.linalg.inv(jac.T @ jac), atol=2e-4)  # 4-digit rounding
    # the long axis moves both parameters in opposite directions (their difference is what is loose)
    long, short = vecs
    assert long[0] * long[1] < 0 and np.linalg.norm(long) == pytest.approx(2 * np.linalg.norm(short), rel=1e-2)
    # shorter axes than min_sd are left out
    assert len(principal_axes(sol, PARAMS, n_data=5, min_sd=np.linalg.norm(long) * 0.9)) == 1


def test_an_axis_reaches_only_as_far_as_the_runs_allow() -> None:
    """A parameter the runs do not feel up to a threshold (a host cost hidden behind the GPU's work) and
    then rule out: its axis is as long as its prior allows, but the far side is cut at the threshold."""
    from calibrate.spread import axis_reach

    jac = np.array([[2.0, 0.0]] * 4 + [[0.03, 0.0], [0.0, 0.1]])
    fun = np.array([0.1, -0.1, 0.1, -0.1, 0.0, 0.0])
    x0 = np.array([math.log(0.8), math.log(0.2)])
    sol = SimpleNamespace(jac=jac, fun=fun, x=x0)
    s2 = float(fun[:4] @ fun[:4]) / 2

    def sum_sq(v: np.ndarray) -> float:
        # the runs' residuals as the Jacobian has them, plus a cliff once comm_eff rises 30% above its fit
        linear = float(np.sum((jac @ (v - x0) + fun) ** 2))
        return linear + (100.0 if v[1] > x0[1] + math.log(1.3) else 0.0)

    axes = principal_axes(sol, PARAMS, n_data=4, sum_sq=sum_sq)
    by_param = {max(a["moves"], key=lambda k: abs(a["moves"][k])): a for a in axes}
    comm = by_param["comm_eff"]
    # the prior alone spans ~+-100% of log space; upward the cliff at +30% cuts it (to the halving below)
    up = 1 if comm["moves"]["comm_eff"] > 0 else 0
    assert comm["reach"][1 - up] == 1.0
    length = abs(comm["moves"]["comm_eff"])
    assert math.log(1.3) - length / 16 <= comm["reach"][up] * length <= math.log(1.3)
    assert by_param["mem_eff"]["reach"] == [1.0, 1.0]  # where the local picture holds, the whole axis
    # the linear rise along a whole 1-sigma axis is the residual variance: exactly the limit
    lo, hi = np.array([p.bounds[0] for p in PARAMS]), np.array([p.bounds[1] for p in PARAMS])
    vec = np.array([by_param["mem_eff"]["moves"].get(p.name, 0.0) for p in PARAMS])
    assert axis_reach(sum_sq, x0, vec, sum_sq(x0) + s2 * 1.01, lo, hi) == 1.0
    assert axis_reach(sum_sq, x0, vec, sum_sq(x0) + s2 * 0.5, lo, hi) < 1.0


def test_central_jacobian_differences_across_the_step_and_stops_at_bounds() -> None:
    def fun(x: np.ndarray) -> np.ndarray:
        return np.array([x[0] ** 2, 3.0 * x[1]])

    lo, hi = np.array([-5.0, -5.0]), np.array([1.05, 5.0])
    jac = central_jacobian(fun, np.array([1.0, 2.0]), lo, hi, step=0.1)
    # x0 is 0.05 from its upper bound: (1.05^2 - 0.9^2) / 0.15; x1 is linear: exact
    assert jac[0, 0] == pytest.approx((1.05**2 - 0.9**2) / 0.15)
    assert jac[1, 1] == pytest.approx(3.0) and jac[0, 1] == 0.0 and jac[1, 0] == 0.0


def test_robust_rows_scale_as_least_squares_scales_its_jacobian() -> None:
    from scipy.optimize import least_squares

    t = np.linspace(0.0, 1.0, 30)
    y = 2.0 * t + 1.0 + np.random.default_rng(0).normal(0.0, 0.05, 30)
    y[5] += 3.0  # one wild point, which the loss weighs down

    def fun(p: np.ndarray) -> np.ndarray:
        return p[0] * t + p[1] - y

    sol = least_squares(fun, [1.0, 0.0], loss="soft_l1", f_scale=0.1)
    raw = np.column_stack([t, np.ones_like(t)])
    np.testing.assert_allclose(raw * robust_rows(sol.fun, 0.1)[:, None], sol.jac, atol=1e-6)
    assert robust_rows(sol.fun, 0.1)[5] < 0.01


def test_a_parameter_one_model_cannot_pin_gets_a_wide_spread(shared_measurements: Path) -> None:
    """Fitted on the 1.5B alone (launch-bound), the RTX 4090 box's compute efficiency is barely pinned:
    fits with it held anywhere from 0.55 to 0.87 match those runs about equally well.  The spread must
    say so, and must still call it firm once the 8B's compute-heavy prefills join."""
    from calibrate.fitplan import FitOptions, fit_config, resolve_points
    from calibrate.importer import load_runs

    points = [p for p in resolve_points(load_runs([shared_measurements], client_seed=42))
              if p.run.hardware_key == ("RTX-4090", 1)]
    options = FitOptions(seeds=(0, 1), max_nfev=20, reserve_grid=())
    alone = fit_config([p for p in points if "1.5B" in p.run.model_id], options).extra["spread"]
    both = fit_config(points, options).extra["spread"]
    assert alone["compute_eff"]["pm_pct"] >= 15.0, alone
    assert both["compute_eff"]["pm_pct"] <= 6.0, both
