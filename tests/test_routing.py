"""Routing policies send traffic where they say they do."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_scenario

from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario, scenario_from_dict
from sim.registry import Registry
from sim.router import ROUTERS
from sim.simulation import simulate


def two_class(routing: dict[str, Any], chat_rate: float, batch_rate: float = 1.0) -> LoadedScenario:
    base = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    chat = base["traffic"]["classes"][0]
    chat["rate"] = chat_rate
    batch = dict(chat, name="batch", rate=batch_rate)
    base["traffic"]["classes"] = [chat, batch]
    base["routing"] = routing
    return scenario_from_dict(base)


def served_by(loaded: LoadedScenario, requests: int = 1500) -> Any:
    df = simulate(loaded, requests=requests).requests
    return df.groupby(["cls", "pool"], observed=True).size().unstack(fill_value=0)


def test_round_robin_is_exactly_even() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "round_robin"}
    df = simulate(scenario_from_dict(data), requests=900).requests
    assert df["replica"].value_counts().tolist() == [300, 300, 300]


def test_least_outstanding_prefers_the_faster_replica_under_load() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0]["rate"] = 30.0
    df = simulate(scenario_from_dict(data), requests=3000).requests
    per_replica = df["replica"].value_counts()
    # the H100 (replica 0) drains its queue faster than each RTX 4090, so it gets more requests
    assert per_replica[0] > per_replica[1] and per_replica[0] > per_replica[2]


def test_class_affinity_keeps_chat_on_h100_until_spillover() -> None:
    routing = {
        "type": "class_affinity",
        "affinity": {"chat": ["h100"], "batch": ["rtx"]},
        "spill_threshold": 1.0,
    }
    light = served_by(two_class(routing, chat_rate=2.0))
    assert light.loc["chat", "rtx"] == 0 and light.loc["chat", "h100"] > 0
    assert light.loc["batch", "h100"] == 0
    heavy_routing = dict(routing, spill_threshold=0.02)  # spill as soon as ~5 requests are outstanding
    heavy = served_by(two_class(heavy_routing, chat_rate=60.0))
    assert heavy.loc["chat", "rtx"] > 0
    assert heavy.loc["chat", "h100"] > heavy.loc["chat", "rtx"] / 10


def test_cost_aware_fills_cheapest_per_capacity_pool_first() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "cost_aware", "headroom": 0.5}
    data["traffic"]["classes"][0]["rate"] = 1.0
    df = simulate(scenario_from_dict(data), requests=400).requests
    # an RTX 4090 at $0.25/h is far cheaper per unit of capacity than an H100 at $2/h
    assert (df["pool"] == "rtx").all()


def test_carbon_aware_prefers_the_green_grid() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "carbon_aware", "headroom": 0.5}
    data["fleet"]["pools"][0]["grid_g_per_kwh"] = 30.0  # h100 in Norway
    data["fleet"]["pools"][1]["grid_g_per_kwh"] = 700.0  # rtx in a coal-heavy grid
    data["traffic"]["classes"][0]["rate"] = 1.0
    df = simulate(scenario_from_dict(data), requests=400).requests
    assert (df["pool"] == "h100").all()


def test_carbon_aware_follows_hourly_grid_profiles() -> None:
    """Two regions with opposite daily cycles: traffic follows whichever grid is greener that hour."""
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "carbon_aware", "headroom": 0.5}
    solar = [10.0] * 8 + [0.1] * 8 + [10.0] * 8  # green from 08:00 to 16:00, coal at night
    data["fleet"]["pools"][0]["grid_g_per_kwh"] = 300.0
    data["fleet"]["pools"][0]["grid_hourly_profile"] = solar
    data["fleet"]["pools"][1]["grid_g_per_kwh"] = 300.0
    data["fleet"]["pools"][1]["grid_hourly_profile"] = [1.0] * 24
    data["traffic"]["classes"][0]["rate"] = 0.5
    data["simulation"]["start_hour"] = 6.0  # 2 h of dirty grid, then the green window opens
    df = simulate(scenario_from_dict(data), duration_s=4 * 3600.0).requests
    hour = (6.0 + df["arrival"] // 3600).astype(int)
    assert (df.loc[hour < 8, "pool"] == "rtx").all()
    assert (df.loc[hour >= 8, "pool"] == "h100").all()
    assert (hour < 8).sum() > 100 and (hour >= 8).sum() > 100


def test_least_kv_load_spreads_by_kv_fraction() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "least_kv_load"}
    data["traffic"]["classes"][0]["rate"] = 20.0
    df = simulate(scenario_from_dict(data), requests=2000).requests
    per_replica = df["replica"].value_counts()
    # the H100's KV cache is ~13x larger, so its KV fraction stays lowest: it takes most traffic
    assert per_replica[0] > per_replica[1] + per_replica[2]


def test_registry_is_strict() -> None:
    assert set(ROUTERS.names()) == {
        "round_robin",
        "least_outstanding",
        "least_kv_load",
        "class_affinity",
        "cost_aware",
        "carbon_aware",
    }
    with pytest.raises(FleetPlannerError, match="known: round_robin, least_outstanding"):
        ROUTERS.get("random")
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)


@pytest.mark.parametrize("policy", ["round_robin", "least_outstanding", "least_kv_load", "cost_aware"])
def test_a_request_too_long_for_its_replica_goes_to_one_that_holds_it(policy: str) -> None:
    # the 4090s hold 4096 tokens, the H100 8192: requests of 4097..8192 go to the H100 whatever the policy,
    # and only those no replica holds (over 8192) are rejected
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["configs"][0]["max_model_len"] = 8192
    data["traffic"]["classes"][0].update(
        rate=2.0, prompt_tokens={"type": "lognormal", "mean": 3500, "sigma": 0.8, "min": 100, "max": 12000},
        output_tokens={"type": "fixed", "value": 50})
    data["routing"] = {"type": policy}
    df = simulate(scenario_from_dict(data), requests=600).requests
    need = df["prompt_tokens"] + df["output_tokens"]
    assert (df["rejected"] == (need > 8192)).all() and df["rejected"].sum() > 0
    middle = df[(need > 4096) & (need <= 8192)]
    assert len(middle) > 100 and (middle["pool"] == "h100").all()
    assert (df.loc[need <= 4096, "pool"] == "rtx").any()
