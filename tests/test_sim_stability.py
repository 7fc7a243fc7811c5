"""Stability: the backlog's growth tells a fleet that keeps up from one that does not, against queues whose
growth is known (D/D/1 and M/M/1 with rates on either side of capacity) and the simulator's own overload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_scenario

from planner.cli import main as planner_main
from planner.screen import screen_config
from scenarios.loader import scenario_from_dict
from sim.simulation import simulate
from sim.stability import GROWTH_LIMIT, backlog_growth, in_fleet, stationary


def fifo_frame(arrival: np.ndarray, service: np.ndarray) -> pd.DataFrame:
    """One FIFO server: each request's first token when its service starts, its last when it ends."""
    start = np.empty_like(arrival)
    finish = np.empty_like(arrival)
    free = 0.0
    for i, (a, s) in enumerate(zip(arrival, service, strict=True)):
        start[i] = max(a, free)
        finish[i] = free = start[i] + s
    return pd.DataFrame({"arrival": arrival, "first_token": start, "finish": finish,
                         "rejected": np.zeros(len(arrival), dtype=bool)})


@pytest.mark.parametrize(("mu", "expected"), [(8.0, 0.2), (5.0, 0.5), (12.0, 0.0), (40.0, 0.0)])
def test_deterministic_queue_grows_at_arrival_minus_service_rate(mu: float, expected: float) -> None:
    lam = 10.0
    arrival = np.arange(2000) / lam
    g = backlog_growth(fifo_frame(arrival, np.full(2000, 1 / mu)))
    assert g is not None
    assert g.share == pytest.approx(expected, abs=0.01)
    assert g.per_s == pytest.approx(lam * expected, abs=0.1)
    assert g.keeps_up == (expected <= GROWTH_LIMIT)
    assert g.start_s == pytest.approx(arrival[-1] / 2) and g.end_s == pytest.approx(arrival[-1])


@pytest.mark.parametrize(("rho", "unstable"), [(0.7, False), (0.9, False), (1.25, True), (1.6, True)])
def test_mm1_growth_matches_one_minus_capacity_over_load(rho: float, unstable: bool) -> None:
    """M/M/1 at load rho: the backlog grows at lam - mu, a share 1 - 1/rho of the arrivals, beyond capacity,
    and not at all below it (a random walk: each 4000-request run scatters by about 0.03)."""
    shares = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        lam, n = 10.0, 4000
        arrival = np.cumsum(rng.exponential(1 / lam, n))
        g = backlog_growth(fifo_frame(arrival, rng.exponential(rho / lam, n)))  # service rate lam / rho
        assert g is not None
        assert g.keeps_up != unstable
        shares.append(g.share)
    if unstable:
        assert np.mean(shares) == pytest.approx(1 - 1 / rho, abs=0.03), shares
    else:
        assert max(abs(s) for s in shares) < 0.02, shares


def test_in_fleet_counts_arrived_and_unfinished_and_rejected_leave_at_once() -> None:
    df = pd.DataFrame({"arrival": [0.0, 1.0, 2.0], "first_token": [0.5, np.nan, 2.5],
                       "finish": [3.0, np.nan, 4.0], "rejected": [False, True, False]})
    assert in_fleet(df, np.array([0.0, 0.9, 1.0, 2.0, 3.0, 4.0])).tolist() == [1, 1, 1, 2, 1, 0]


def test_too_short_a_run_is_not_judged() -> None:
    arrival = np.arange(2000) / 10.0
    # fewer requests than two windows' worth
    assert backlog_growth(fifo_frame(arrival[:99], np.full(99, 0.05))) is None
    # service times as long as the run: the fleet is still filling when the arrivals stop
    assert backlog_growth(fifo_frame(arrival[:400], np.full(400, 30.0))) is None


def batch_only(rate: float, replicas: int, requests: int = 800) -> dict:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"] = [{
        "name": "batch", "rate": rate, "arrival": {"type": "poisson"},
        "prompt_tokens": {"type": "lognormal", "mean": 800, "sigma": 0.6, "min": 64, "max": 3000},
        "output_tokens": {"type": "lognormal", "mean": 400, "sigma": 0.6, "min": 16, "max": 1000},
        "slo": {"e2e_ms": 60000, "percentile": 90}}]
    data["fleet"] = {"pools": [{"config": "1xRTX-4090", "count": replicas, "name": "rtx"}]}
    data["routing"] = {"type": "least_outstanding"}
    data["simulation"] = {"requests": requests, "seed": 1}
    return data


def test_simulated_overload_grows_as_the_screened_capacity_says() -> None:
    """One 4090 at 6 req/s: its backlog grows at 1 - capacity / load, the capacity measured apart by the
    planner's screening (a saturated run).  Two (5.5 req/s of screened capacity) still fall behind; five,
    with room to spare, do not."""
    loaded = scenario_from_dict(batch_only(6.0, 1))
    capacity = screen_config(loaded, "1xRTX-4090", 6.0, seed=1).capacity_rps
    for replicas in (1, 2, 5):
        shares = []
        for seed in (1, 2, 3):
            g = backlog_growth(simulate(scenario_from_dict(batch_only(6.0, replicas)), seed=seed).requests)
            assert g is not None
            shares.append(g.share)
        if replicas == 1:
            assert np.mean(shares) == pytest.approx(1 - capacity / 6.0, abs=0.05), (shares, capacity)
        assert all(s > GROWTH_LIMIT for s in shares) == (replicas * capacity < 6.0), (replicas, shares)
        assert all(abs(s) <= GROWTH_LIMIT for s in shares) == (replicas * capacity > 1.5 * 6.0), (replicas, shares)


def test_only_constant_rate_arrivals_are_judged() -> None:
    data = batch_only(6.0, 2)
    assert stationary(scenario_from_dict(data).scenario)
    data["traffic"]["classes"][0]["arrival"] = {"type": "gamma", "burstiness": 0.5}
    assert stationary(scenario_from_dict(data).scenario)
    data["traffic"]["classes"][0]["arrival"] = {"type": "diurnal", "amplitude": 0.5}
    assert not stationary(scenario_from_dict(data).scenario)


def test_simulate_says_when_the_fleet_does_not_keep_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two 4090s at 6 req/s meet a one-minute E2E bound over 800 requests, but their backlog grows: the
    command says so (and its JSON gives the growth); five have room and get no such note."""
    import yaml

    for replicas, grows in ((2, True), (5, False)):
        f = tmp_path / f"b{replicas}.yaml"
        f.write_text(yaml.safe_dump(batch_only(6.0, replicas)))
        out = tmp_path / f"b{replicas}.json"
        assert planner_main(["simulate", str(f), "--json", str(out), "--quiet"]) == 0
        err = capsys.readouterr().err
        summary = json.loads(out.read_text())
        assert summary["classes"][0]["slo_pass"] is True  # the short run's latencies pass
        assert ("does not keep up" in err) == grows, err
        assert (summary["backlog_growth"] > GROWTH_LIMIT) == grows
