"""Scenario variants the planner simulates: a candidate fleet, scaled traffic, one replica alone.

Variants are built by editing the scenario's plain data (the fields the scenario set; defaults stay
defaults) and validating it again, so every variant is as valid as a hand-written file.  A candidate
fleet has one pool per serving configuration, named after the configuration; the scenario's
class-affinity map (which names its own pools) is translated to those configuration names.
:func:`peak_traffic` is the traffic a plan is sized for: a class whose rate varies over the day
(``diurnal``, ``piecewise``) arrives as Poisson at its peak rate, since a standing fleet must meet the
SLOs in the busiest hour, not in the stretch of the day a few thousand simulated requests happen to cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scenarios.fleetmap import config_affinity, pool_grid
from scenarios.loader import LoadedScenario
from scenarios.schema import ClassAffinity, Scenario
from scenarios.traffic import MAX_RATE, DiurnalArrival, PiecewiseArrival


@dataclass(frozen=True, order=True)
class Candidate:
    """A fleet (replicas per serving configuration) and a routing policy."""

    counts: tuple[tuple[str, int], ...]
    routing: str

    def __post_init__(self) -> None:
        for name, n in self.counts:
            if n < 0:
                raise ValueError(f"count of {name}(={n}) must be >= 0")

    @property
    def fleet(self) -> str:
        """Compact spec, e.g. ``1xH100-PCIe:2,2xRTX-4090:1``."""
        return ",".join(f"{name}:{n}" for name, n in self.counts if n > 0) or "(empty)"

    @property
    def key(self) -> str:
        return f"{self.fleet}|{self.routing}"

    def count(self, config: str) -> int:
        return dict(self.counts).get(config, 0)

    def replicas(self) -> int:
        return sum(n for _, n in self.counts)


def _with(loaded: LoadedScenario, data: dict[str, Any]) -> LoadedScenario:
    return LoadedScenario(Scenario.model_validate(data), loaded.model, loaded.path)


def routing_settings(scenario: Scenario, policy: str) -> dict[str, Any]:
    """Settings for ``policy`` on a candidate fleet whose pools are named after configurations."""
    if policy == "class_affinity":
        routing, affinity = scenario.routing, config_affinity(scenario)
        if not isinstance(routing, ClassAffinity) or affinity is None:
            raise ValueError(f"policy(={policy!r}) needs the scenario's routing to define an affinity map")
        return {"type": policy, "affinity": affinity, "spill_threshold": routing.spill_threshold}
    if policy == scenario.routing.type:
        return scenario.routing.model_dump(mode="json")
    return {"type": policy}


def affinity_applies(scenario: Scenario, cand: Candidate) -> bool:
    """Whether class affinity changes anything on a candidate's fleet: some class's map names a part of
    the fleet, not none of it (the class then spills to every pool) nor all of it (a one-pool fleet)."""
    if cand.routing != "class_affinity":
        return True
    affinity = routing_settings(scenario, cand.routing)["affinity"]
    present = {name for name, n in cand.counts if n > 0}
    return any(0 < len(present.intersection(pools)) < len(present) for pools in affinity.values())


def candidate_scenario(loaded: LoadedScenario, cand: Candidate) -> LoadedScenario:
    """The scenario with its fleet and routing replaced by the candidate's."""
    scenario = loaded.scenario
    grid = pool_grid(scenario)
    data = scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    pools = [{"config": name, "count": n, "name": name} for name, n in cand.counts if n > 0]
    for pool in pools:
        pool.update(grid.get(str(pool["config"]), {}))
    data["fleet"] = {"pools": pools}
    routing = routing_settings(scenario, cand.routing)
    if routing["type"] == "class_affinity":
        present = {p["name"] for p in pools}
        routing["affinity"] = {c: [p for p in ps if p in present] for c, ps in routing["affinity"].items()}
    data["routing"] = routing
    return _with(loaded, data)


def scaled_traffic(loaded: LoadedScenario, factor: float) -> LoadedScenario:
    """The scenario with every class's arrival rate multiplied by ``factor``."""
    if not factor > 0:
        raise ValueError(f"factor(={factor}) must be > 0")
    data = loaded.scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    traffic = data["traffic"]
    if traffic.get("total_rate") is not None:
        traffic["total_rate"] *= factor
    for cls in traffic["classes"]:
        if cls.get("rate") is not None:
            cls["rate"] *= factor
        arrival = cls.get("arrival", {})
        if arrival.get("type") == "trace":
            arrival["time_scale"] = arrival.get("time_scale", 1.0) / factor
    return _with(loaded, data)


def slowed_scenario(loaded: LoadedScenario, factor: float) -> LoadedScenario:
    """The scenario with every serving configuration's engine steps ``factor`` times as long as its
    profile says (``step_time_scale``, at most 10): the planner's stress test of its recommendation."""
    if not factor >= 1:
        raise ValueError(f"factor(={factor}) must be >= 1")
    data = loaded.scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    for cfg in data["configs"]:
        cfg["step_time_scale"] = min(cfg.get("step_time_scale", 1.0) * factor, 10.0)
    return _with(loaded, data)


def total_rate(scenario: Scenario) -> float:
    """Offered load of all classes, requests/s (trace classes count 0 here)."""
    return sum(scenario.traffic.rate_of(c) for c in scenario.traffic.classes)


def peak_traffic(loaded: LoadedScenario) -> tuple[LoadedScenario, list[str]]:
    """The scenario with every ``diurnal`` or ``piecewise`` class arriving as Poisson at its peak rate
    (every class then has an absolute rate, so shares of ``total_rate`` stay as they were), and one note
    per such class; the scenario itself where no class varies."""
    traffic = loaded.scenario.traffic
    data = loaded.scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    notes = []
    for cls, raw in zip(traffic.classes, data["traffic"]["classes"], strict=True):
        base, arrival = traffic.rate_of(cls), cls.arrival
        if isinstance(arrival, DiurnalArrival):
            peak, what = 1.0 + arrival.amplitude, f"diurnal: {base:.3g} x (1 + {arrival.amplitude:g})"
        elif isinstance(arrival, PiecewiseArrival):
            peak = max(step.factor for step in arrival.steps)
            what = f"piecewise: {base:.3g} x {peak:g}"
        else:
            peak, what = 1.0, ""
        if cls.rate is not None or cls.share is not None:
            raw.pop("share", None)
            raw["rate"] = min(base * peak, MAX_RATE)
        if what:
            raw["arrival"] = {"type": "poisson"}
            notes.append(f"class {cls.name} is sized for its peak rate, {raw['rate']:.3g} req/s ({what})")
    if not notes:
        return loaded, []
    data["traffic"].pop("total_rate", None)
    return _with(loaded, data), notes
