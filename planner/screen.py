"""Fast screening: what one replica of each serving configuration can carry for the traffic mix.

For every configuration of the menu, a single replica is simulated (short runs, the scenario's
class mix) under overload to measure its saturation throughput, then at a few fractions of it to
trace latency versus load (the "latency vs load per configuration" plot).  The planner uses the
saturation capacities as a *necessary* condition (a fleet whose summed capacity falls short of
the offered load cannot meet any SLO for long) and the SLO-compliant load as a hint of which
candidates to verify first.  Screening never declares a fleet feasible: only verification does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.variants import Candidate, candidate_scenario, scaled_traffic
from scenarios.loader import LoadedScenario
from sim.fleet import build_fleet
from sim.results import class_summary
from sim.simulation import simulate
from sim.traffic import generate_workload

LOAD_POINTS = (0.25, 0.5, 0.7, 0.85, 0.95)


@dataclass
class ConfigCurve:
    """Screening results of one serving configuration."""

    config: str
    capacity_rps: float
    """Saturation throughput of one replica under the scenario's mix, requests/s."""
    slo_rps: float
    """Highest measured load at which one replica alone met every class's SLO (0 if none)."""
    points: list[dict[str, Any]] = field(default_factory=list)
    """Per load point: load fraction, rate, requests' mean time in the replica (s) and per-class latency
    percentiles (ms)."""

    def busy_at(self, rate: float) -> float:
        """Utilisation (the share of time it runs engine steps, as the simulator counts it) of one replica
        offered ``rate`` req/s.  Continuous batching keeps a replica stepping while any request is in it, so
        it is busy far more than its share of capacity: requests stay in it ``sojourn`` seconds (the
        screened runs' mean, interpolated at ``rate``), and with Poisson arrivals the chance that none is in
        it is ``exp(-rate * sojourn)`` (as for M/G/infinity).  Power and carbon follow this, not
        ``rate / capacity``; at or beyond saturation it is 1."""
        if not self.capacity_rps > 0 or rate >= self.capacity_rps:
            return 1.0
        known = sorted((float(p["rate"]), float(p["sojourn_s"])) for p in self.points if p.get("sojourn_s"))
        if not known:
            return max(rate, 0.0) / self.capacity_rps
        sojourn = float(np.interp(rate, [r for r, _ in known], [t for _, t in known]))
        return 1.0 - math.exp(-max(rate, 0.0) * sojourn)


def offered_rate(loaded: LoadedScenario, seed: int) -> float:
    """Mean arrival rate of the scenario's traffic, measured on a generated workload."""
    w = generate_workload(loaded, np.random.default_rng(seed), requests=4000)
    span = float(w.arrival[-1] - w.arrival[0]) if len(w) > 1 else 0.0
    return (len(w) - 1) / span if span > 0 else 0.0


def _meets(classes: Any) -> bool:
    rows = [r for r in classes.to_dict("records") if r["class"] != "ALL"]
    return all(r["slo_pass"] in (True, None) for r in rows)


def screen_config(loaded: LoadedScenario, config: str, rate: float, seed: int, requests: int = 600) -> ConfigCurve:
    """Measure one replica of ``config``: saturation capacity and latency at several loads."""
    one = candidate_scenario(loaded, Candidate(((config, 1),), "least_outstanding"))
    plan = build_fleet(one)[0].replica
    w = generate_workload(one, np.random.default_rng(seed), requests=2000)
    guess = plan.nominal_capacity(float(np.mean(w.prompt)), float(np.mean(w.output)))
    # overload it (a trace whose requests all arrive at once has no rate to scale: its burst as it is)
    overload = scaled_traffic(one, max(3.0 * guess, 1e-3) / rate) if rate > 0 else one
    res = simulate(overload, seed=seed, requests=requests * 2, samples=0)
    done = int(res.requests["finish"].notna().sum())
    capacity = done / res.makespan if res.makespan > 0 else 0.0
    curve = ConfigCurve(config, capacity, 0.0)
    if not (capacity > 0 and rate > 0):  # it serves none of the mix (every prompt over its max_model_len)
        return curve
    for frac in LOAD_POINTS:
        target = frac * capacity
        variant = scaled_traffic(one, target / rate)
        r = simulate(variant, seed=seed, requests=requests, samples=0)
        classes = class_summary(r)
        served = r.requests[~r.requests["rejected"]]
        point: dict[str, Any] = {"load": frac, "rate": target, "classes": {},
                                 "sojourn_s": float(served["e2e"].mean()) if len(served) else None}
        for row in classes.to_dict("records"):
            point["classes"][row["class"]] = {
                k: row[k] for k in ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "e2e_p90_ms")
            }
        point["meets_slo"] = _meets(classes)
        if point["meets_slo"]:
            curve.slo_rps = max(curve.slo_rps, target)
        curve.points.append(point)
    return curve


def screen(
    loaded: LoadedScenario,
    menu: list[str],
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[float, dict[str, ConfigCurve]]:
    """Offered rate of the scenario and a :class:`ConfigCurve` for every configuration of the menu."""
    rate = offered_rate(loaded, seed)
    curves = {}
    for name in menu:
        if progress:
            progress(f"screening {name}")
        curves[name] = screen_config(loaded, name, rate, seed)
    return rate, curves
