"""How firmly a fit's runs pin each parameter (:mod:`calibrate.spread`): Gauss-Newton against a linear
problem whose covariance is known in closed form."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from calibrate.fit import Param
from calibrate.spread import parameter_spread

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
