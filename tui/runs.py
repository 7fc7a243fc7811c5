"""Running ``simulate`` and ``plan`` for a session, and what the screens show of their results.

These functions are plain Python (no Textual) and run inside the session's background worker
thread.  :func:`run_simulation` returns a :class:`SimOutcome` (per-class and per-pool tables, the
fleet's economics, the queue time series); :func:`run_plan` wraps
:func:`planner.search.plan_fleet` and stops it when the worker is cancelled by raising a private
exception from inside the progress callback — finished runs are already cached in the state file,
so running the plan again resumes.  Both outcomes flatten into :class:`Metric` rows for the
side-by-side comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.loader import LoadedScenario
from scenarios.numbers import number

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Metric:
    """One comparable figure: a number (with its format and which direction is better) or a text."""

    value: float | str | None
    fmt: str = "{:,.1f}"
    better: str | None = "low"
    """``low``, ``high`` or ``None`` (no direction, e.g. a fleet spec)."""

    def text(self) -> str:
        v = self.value
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "-"
        return number(self.fmt, v) if isinstance(v, (int, float)) else str(v)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class SimOutcome:
    """What a simulation of the current fleet shows."""

    scenario: str
    fleet: str
    requests: int
    seed: int
    makespan_s: float
    classes: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    economics: dict[str, Any]
    timeseries: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    """What the figures do not show: a fleet that does not keep up (:mod:`sim.stability`)."""

    def metrics(self) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        for row in self.classes:
            name = row["class"]
            for metric in ("ttft", "tpot", "e2e"):
                out[f"{name} {metric.upper()} p90 ms"] = Metric(_num(row.get(f"{metric}_p90_ms")))
            attained = None if row.get("requests") == 0 else 100 * (_num(row.get("slo_attainment")) or 0.0)
            out[f"{name} SLO attainment %"] = Metric(attained, better="high")  # "-": no requests to judge
            verdict = row.get("slo_pass")
            out[f"{name} SLO"] = Metric("-" if verdict is None else ("pass" if verdict else "FAIL"), better=None)
        t = self.economics["total"]
        out["$/hour"] = Metric(_num(t["usd_per_hour"]), "${:,.2f}")
        out["$/1M tokens"] = Metric(_num(t.get("usd_per_mtok")), "${:,.3f}")
        out["kWh/hour"] = Metric(_num(t["kwh_per_hour"]), "{:,.2f}")
        out["gCO2e/hour"] = Metric(_num(t["carbon_g_per_hour"] + t["embodied_g_per_hour"]), "{:,.0f}")
        out["gCO2e/1M tokens"] = Metric(_num(t.get("g_per_mtok")), "{:,.1f}")
        for p in self.pools:
            out[f"{p['pool']} utilisation %"] = Metric(100 * p["utilisation"], "{:.0f}", better=None)
        return out


def fleet_spec(loaded: LoadedScenario) -> str:
    return ",".join(f"{p.config}:{p.count}" for p in loaded.scenario.fleet.pools if p.count > 0)


def run_simulation(loaded: LoadedScenario, requests: int | None = None) -> SimOutcome:
    """Simulate the scenario's own fleet (its seed; ``requests`` overrides its request count)."""
    from planner.costing import fleet_economics
    from sim.results import class_summary, pool_summary
    from sim.simulation import simulate
    from sim.stability import scenario_growth

    result = simulate(loaded, requests=requests)
    growth = scenario_growth(result.requests, loaded.scenario)
    econ = fleet_economics(result, loaded).to_dict()
    pools = pool_summary(result).to_dict("records")
    by_name = {e["name"]: e for e in econ["pools"]}
    for p in pools:
        e = by_name.get(p["pool"], {})
        p["usd_per_hour"] = e.get("usd_per_hour")
        p["kwh_per_hour"] = e.get("kwh_per_hour")
        p["g_per_hour"] = (e.get("carbon_g_per_hour") or 0.0) + (e.get("embodied_g_per_hour") or 0.0)
    return SimOutcome(
        scenario=loaded.scenario.name,
        fleet=fleet_spec(loaded),
        requests=len(result.requests),
        seed=result.seed,
        makespan_s=result.makespan,
        classes=class_summary(result).to_dict("records"),
        pools=pools,
        economics=econ,
        timeseries=result.timeseries,
        notes=[growth.describe()] if growth is not None and not growth.keeps_up else [],
    )


class _Cancelled(Exception):
    """Raised from the progress callback to stop ``plan_fleet`` when the worker is cancelled."""


@dataclass
class PlanOutcome:
    """A finished plan (the planner's own result object) and the scenario it was run on."""

    result: Any
    """:class:`planner.outcome.PlanResult`"""
    scenario: str

    def metrics(self) -> dict[str, Metric]:
        r = self.result
        best = r.recommended or r.closest
        out: dict[str, Metric] = {
            "plan": Metric("feasible" if r.recommended else "no fleet meets the SLOs", better=None),
            "plan fleet": Metric(best.candidate.fleet if best else None, better=None),
            "plan routing": Metric(best.candidate.routing if best else None, better=None),
        }
        if best is not None:
            t = best.economics["total"]
            out["plan $/hour"] = Metric(_num(t["usd_per_hour"]), "${:,.2f}")
            out["plan gCO2e/hour"] = Metric(_num(t["carbon_g_per_hour"] + t["embodied_g_per_hour"]), "{:,.0f}")
            out["plan SLO margin pp"] = Metric(100 * best.margin, "{:+.1f}", better="high")
        if r.stress is not None:
            verdict = "holds" if r.stress.feasible else "fails"
            out["plan stress test"] = Metric(f"{verdict} at +{r.stress_pct:g}% step time", better=None)
        out["plan Pareto fleets"] = Metric(float(len(r.pareto)), "{:.0f}", better=None)
        return out


def run_plan(
    loaded: LoadedScenario,
    state: Path | None,
    progress: Progress,
    cancelled: Callable[[], bool],
) -> PlanOutcome | None:
    """Plan the scenario's fleet; ``None`` when ``cancelled()`` turned true during the search."""
    from planner.search import plan_fleet

    def tell(msg: str, done: int, total: int) -> None:
        if cancelled():
            raise _Cancelled
        progress(msg, done, total)

    try:
        result = plan_fleet(loaded, state=state, progress=tell)
    except _Cancelled:
        return None
    return PlanOutcome(result, loaded.scenario.name)


def latency_curves(result: Any, cls: str = "ALL") -> dict[str, tuple[list[float], list[float]]]:
    """Per configuration: offered load per replica (req/s) and p90 TTFT (ms) from screening."""
    out = {}
    for name, curve in result.curves.items():
        xs = [float(p["rate"]) for p in curve.points]
        ys = [float(p["classes"].get(cls, {}).get("ttft_p90_ms", math.nan)) for p in curve.points]
        out[name] = (xs, ys)
    return out


def cost_carbon(result: Any) -> tuple[list[tuple[float, float, bool]], list[tuple[float, float]]]:
    """Every verified fleet as ($/h, kg CO2e/h, feasible), and the Pareto front sorted by cost."""

    def point(v: Any) -> tuple[float, float]:
        t = v.economics["total"]
        return float(t["usd_per_hour"]), float(t["carbon_g_per_hour"] + t["embodied_g_per_hour"]) / 1000.0

    pts = [(*point(v), bool(v.feasible)) for v in result.verified]
    front = sorted(point(v) for v in result.pareto)
    return pts, front
