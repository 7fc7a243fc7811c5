"""What a plan found: the screening estimates, the verified fleets, the recommendation, the runners-up, the
cost-carbon front or the closest fleet, and their JSON form (``plan.json``, ``planner plan --json``).

:mod:`planner.search` fills a :class:`PlanResult`; :mod:`planner.report` and :mod:`planner.plots` read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from planner.screen import ConfigCurve
from planner.variants import Candidate
from planner.verify import Verdict, pooled_classes


@dataclass
class Estimate:
    """A candidate as screening sees it (no simulation): summed capacity, and cost and carbon per hour."""

    candidate: Candidate
    capacity_rps: float
    slo_rps: float
    usd_per_hour: float
    carbon_g_per_hour: float


@dataclass
class PlanResult:
    """Everything one ``planner plan`` search found, in the order it was found."""

    objective: str
    offered_rps: float
    curves: dict[str, ConfigCurve]
    enumerated: int
    screened: int
    verified: list[Verdict] = field(default_factory=list)
    recommended: Verdict | None = None
    runners_up: list[Verdict] = field(default_factory=list)
    pareto: list[Verdict] = field(default_factory=list)
    closest: Verdict | None = None
    estimates: dict[str, Estimate] = field(default_factory=dict)
    elapsed_s: float = 0.0
    truncated: bool = False
    """The search stopped at ``max_verifications`` before finding a feasible fleet in objective order."""
    slos: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Class -> its SLO (ttft_ms, tpot_ms, e2e_ms, percentile), for reports and plots."""
    confidence: float = 0.95
    """Level of the confidence intervals on SLO attainment."""
    stress: Verdict | None = None
    """The recommended fleet verified again with every engine step ``1 + stress_pct / 100`` times as long
    as the profiles say (None: not run, or no fleet recommended)."""
    stress_pct: float = 0.0
    budget: float | None = None
    """``plan.max_budget_usd_per_hour``: fleets above it are not recommended, however well they do."""
    peaks: list[str] = field(default_factory=list)
    """One note per class whose rate varies over the day: the plan is sized for its peak rate."""
    affinity_idle: set[str] = field(default_factory=set)
    """Keys of class-affinity candidates whose map routes every class over the whole fleet (it names
    none of the fleet's pools, or all of them): kept where class affinity is the only policy asked for."""

    requests: int = 0
    """Requests per verification run (``plan.requests``, or the scenario's, capped)."""

    def fleet_notes(self, v: Verdict) -> list[str]:
        """What a reader of a fleet's figures must know: routing that changes nothing, requests the fleet
        never serves, classes its runs could not judge."""
        notes = [note] if (note := self.routing_note(v)) else []
        for name, (n, of) in v.rejected.items():
            notes.append(f"{v.candidate.fleet} rejects {n:,} of {of:,} {name} requests ({n / of:.1%}) in its runs: "
                         "prompt plus output longer than the replica they reach can hold (max_model_len or KV "
                         "cache); they count as missing every bound of their class")
        if v.unverified:
            notes.append(f"not verified: {', '.join(v.unverified)} had no requests in {len(v.runs)} run(s) of "
                         f"{self.requests:,} requests, so its SLOs were not judged; raise plan.requests")
        if v.growth_unjudged == "short":
            notes.append(f"not judged whether {v.candidate.fleet} keeps up with the load: its runs of "
                         f"{self.requests:,} requests are too short to tell a filling fleet from a backlog that "
                         "grows (a short run can flatter an overloaded fleet); raise plan.requests")
        elif v.growth_unjudged == "trace":
            notes.append(f"not judged whether {v.candidate.fleet} keeps up with the load: its traffic is "
                         "replayed from a trace, whose rate varies; its figures hold for the trace's length only")
        return notes

    def routing_note(self, v: Verdict) -> str | None:
        if v.candidate.key not in self.affinity_idle:
            return None
        return (f"routing: the class-affinity map names none of the pools of {v.candidate.fleet}, or all of "
                f"them, so every class is routed over the whole fleet")

    def message(self) -> str:
        if self.recommended is not None:
            best = self.recommended
            caveats = [f"rejects {sum(n for n, _ in best.rejected.values()):,} requests"] if best.rejected else []
            caveats += ["classes unverified"] if best.unverified else []
            caveats += ["runs too short to judge whether it keeps up"] if best.growth_unjudged == "short" else []
            return (f"recommended: {best.candidate.fleet} with {best.candidate.routing}"
                    + (f" ({', '.join(caveats)}: see notes)" if caveats else ""))
        within = f" within the budget of ${self.budget:g}/h" if self.budget else ""
        if self.closest is None:
            return f"no fleet{within} meets the SLOs, and no candidate could be simulated within the caps"
        if self.closest.feasible:  # only fleets over the budget met them
            return (f"no fleet{within} meets the SLOs; {self.closest.candidate.fleet} "
                    f"({self.closest.candidate.routing}) does, at ${total(self.closest, 'usd_per_hour'):.2f}/h")
        return (
            f"no fleet meets the SLOs; closest is {self.closest.candidate.fleet} "
            f"({self.closest.candidate.routing}), missing {self.closest.worst}"
        )


def total(v: Verdict, key: str) -> float:
    value = v.economics["total"].get(key)
    return math.inf if value is None else float(value)


def objective_total(v: Verdict, objective: str) -> float:
    """What the objective minimises: $/h, or for ``carbon`` operational plus embodied g CO2e/h."""
    return total(v, "usd_per_hour") if objective != "carbon" else total(v, "carbon_g_per_hour") + total(
        v, "embodied_g_per_hour")


def to_dict(result: PlanResult) -> dict[str, Any]:
    """JSON-ready plan result."""

    def verdict(v: Verdict | None) -> dict[str, Any] | None:
        if v is None:
            return None
        econ = v.economics
        return {
            "fleet": v.candidate.fleet,
            "counts": dict(v.candidate.counts),
            "routing": v.candidate.routing,
            "feasible": v.feasible,
            "margin": v.margin,
            "worst": v.worst,
            "seeds": len(v.runs),
            "backlog_growth": v.growth,
            "attainment": {k: {"mean": a[0], "low": a[1], "high": a[2]} for k, a in v.attainment.items()},
            "classes": pooled_classes(v.runs),
            "economics": econ,
            "routing_note": result.routing_note(v),
            "rejected": {k: n for k, (n, _) in v.rejected.items()},
            "unverified": v.unverified,
            "notes": result.fleet_notes(v),
        }

    return {
        "objective": result.objective,
        "message": result.message(),
        "offered_rps": result.offered_rps,
        "recommended": verdict(result.recommended),
        "runners_up": [verdict(v) for v in result.runners_up],
        "pareto": [verdict(v) for v in result.pareto],
        "closest": verdict(result.closest),
        "candidates": {"enumerated": result.enumerated, "screened": result.screened, "verified": len(result.verified)},
        "peaks": result.peaks,
        "configs": {
            k: {"capacity_rps": c.capacity_rps, "slo_rps": c.slo_rps, "points": c.points}
            for k, c in result.curves.items()
        },
        "stress": None if result.stress is None else {
            "step_time_pct": result.stress_pct, "feasible": result.stress.feasible, "margin": result.stress.margin,
            "worst": result.stress.worst,
            "attainment": {k: {"mean": a[0], "low": a[1], "high": a[2]} for k, a in result.stress.attainment.items()},
        },
        "truncated": result.truncated,
        "requests_per_run": result.requests,
        "slos": result.slos,
        "confidence": result.confidence,
        "elapsed_s": result.elapsed_s,
    }
