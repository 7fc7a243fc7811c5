"""A scenario's pool settings carried over to a fleet of other pools, each named after its serving
configuration: a plan's candidate fleets (:mod:`planner.variants`) and ``--fleet`` (:func:`scenarios.loader.
parse_fleet_spec`).  Such a pool keeps the grid settings of the scenario's first pool that runs its
configuration, and the class-affinity map, which names the scenario's own pools, is read with each pool
replaced by its configuration.
"""

from __future__ import annotations

from typing import Any

from scenarios.schema import ClassAffinity, Scenario


def pool_grid(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Per configuration, the grid settings of the first pool that runs it (a candidate's pools keep them)."""
    grid: dict[str, dict[str, Any]] = {}
    for pool in scenario.fleet.pools:
        grid.setdefault(pool.config, pool.model_dump(include={"grid_g_per_kwh", "grid_hourly_profile"},
                                                     exclude_none=True))
    return grid


def config_affinity(scenario: Scenario) -> dict[str, list[str]] | None:
    """The class-affinity map with each pool named by its configuration (each once, in order); None where the
    scenario routes otherwise."""
    routing = scenario.routing
    if not isinstance(routing, ClassAffinity):
        return None
    to_config = {p.key: p.config for p in scenario.fleet.pools}
    return {c: list(dict.fromkeys(to_config.get(p, p) for p in pools)) for c, pools in routing.affinity.items()}
