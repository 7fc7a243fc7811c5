"""Metamorphic relations and invariants of the planner on small scenarios (2 seeds, 800 requests, at most 3
replicas): budget, verification limit, Pareto ends, state-file keys, economics and plan.json consistency."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_scenario
from rich.console import Console

from planner import search
from planner.footprint import power_model
from planner.outcome import PlanResult, objective_total, to_dict, total
from planner.pricing import owned_hourly
from planner.report import _summary, classes_table, plan_json, print_report
from planner.search import enumerate_fleets, estimate, plan_fleet
from planner.variants import Candidate
from planner.verify import Verdict, pool_runs, run_once
from scenarios.loader import LoadedScenario, scenario_from_dict


def data(rate: float = 30.0, ttft_ms: float = 250, tpot_ms: float = 60, **plan: Any) -> dict[str, Any]:
    d = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    d["traffic"]["classes"][0]["rate"] = rate
    d["traffic"]["classes"][0]["slo"] = {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms, "percentile": 90}
    d["plan"] = {"max_total_replicas": 3, "seeds": 2, "requests": 800, "stress_pct": 0, **plan}
    return d


def small(rate: float = 30.0, ttft_ms: float = 250, **plan: Any) -> LoadedScenario:
    return scenario_from_dict(data(rate, ttft_ms, **plan))


def usd(v: Verdict | None) -> float | None:
    return None if v is None else total(v, "usd_per_hour")


def every_fleet(loaded: LoadedScenario) -> list[Verdict]:
    """Brute force: every fleet of the space verified with the plan's seeds and run length."""
    plan = loaded.scenario.plan
    seeds = [loaded.scenario.simulation.seed + i for i in range(plan.seeds)]
    out = []
    for counts in enumerate_fleets(loaded):
        cand = Candidate(counts, "least_outstanding")
        out.append(pool_runs(cand, [run_once(loaded, cand, s, plan.requests) for s in seeds], 0.95))
    return out


def test_a_feasible_first_fleet_is_not_reported_as_a_truncated_search() -> None:
    # the first fleet in cost order meets the SLOs and the verification limit is 1: the search found the
    # cheapest feasible fleet, and the report must not say it stopped before finding one (it had said so)
    result = plan_fleet(small(), max_verifications=1)
    assert result.recommended is not None and len(result.verified) == 1
    assert not result.truncated and "stopped at --max-verifications" not in _summary(result)
    assert to_dict(result)["truncated"] is False
    # where nothing feasible was reached within the limit, it still says so
    stuck = plan_fleet(small(ttft_ms=1.0), max_verifications=1)
    assert stuck.truncated and stuck.recommended is None


def owned_power_hungry(rate: float, budget: float) -> LoadedScenario:
    # 4090s owned outright whose electricity (at $5/kWh) is nearly all their cost: their $/h depends on how busy
    # they are, which screening guesses (offered load / summed capacity) and only simulation tells
    d = data(rate=rate, max_gpus={"H100-PCIe": 0}, max_budget_usd_per_hour=budget)
    d["pricing"] = {"owned": {"RTX-4090": {"purchase_usd": 0}}, "electricity_usd_per_kwh": 5.0}
    return scenario_from_dict(d)


def test_the_budget_holds_for_the_simulated_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    # two owned 4090s at 20 req/s simulate at ~$5.19/h.  Where screening guesses them under a $4.5/h budget (as
    # it did, ~$3.85/h, when it took their busy share as the load's share of capacity; here its guess is made
    # 30% low on purpose) they had been recommended anyway.  Over the budget once simulated, they are named as
    # the fleet that would do
    real = search.estimate

    def low(*args: Any, **kw: Any) -> Any:
        est = real(*args, **kw)
        return est if kw.get("util") is not None or len(args) > 4 else replace(est, usd_per_hour=0.7 * est.usd_per_hour)

    monkeypatch.setattr(search, "estimate", low)
    loaded = owned_power_hungry(20.0, 4.5)
    result = plan_fleet(loaded)
    pair = Candidate((("1xH100-PCIe", 0), ("1xRTX-4090", 2)), "least_outstanding")
    guess = search.estimate(loaded, pair, result.curves, result.offered_rps).usd_per_hour
    met = [v for v in result.verified if v.feasible]
    assert guess < 4.5 < min(usd(v) or 0 for v in met), "the case needs a guess under the budget and a cost over"
    assert result.recommended is None and result.closest is not None and result.closest.feasible
    assert usd(result.closest) == min(usd(v) or 0 for v in met) > 4.5
    assert result.message().startswith("no fleet within the budget of $4.5/h meets the SLOs; 1xRTX-4090:2")
    assert all((usd(v) or 0) <= 4.5 for v in [*result.runners_up, *result.pareto])


def test_a_fleet_guessed_over_the_budget_but_within_it_once_simulated_is_recommended() -> None:
    # at 30 req/s the guess runs two owned 4090s flat out ($5.40/h); simulated they cost $5.35/h.  Under a $5.38/h
    # budget the plan had set them aside unsimulated and then named them as over the budget "at $5.35/h"
    loaded = owned_power_hungry(30.0, 5.38)
    result = plan_fleet(loaded)
    pair = Candidate((("1xH100-PCIe", 0), ("1xRTX-4090", 2)), "least_outstanding")
    assert estimate(loaded, pair, result.curves, result.offered_rps).usd_per_hour > 5.38
    best = result.recommended
    assert best is not None and best.candidate.fleet == "1xRTX-4090:2" and (usd(best) or math.inf) <= 5.38
    assert result.message().startswith("recommended: 1xRTX-4090:2")


def two_ends() -> dict[str, Any]:
    """4090s too slow for the TPOT bound (cheap, on a dirty grid); H100 PCIe on a dirty grid ($2/h) and H100
    SXM already owned on a clean one ($2.5/h, no carbon): the cheapest and the greenest fleets differ."""
    d = data(rate=10.0, ttft_ms=1000, tpot_ms=18, verify_top=1)
    d["configs"] = [{"gpu": "H100-PCIe"}, {"gpu": "H100-SXM"}, {"gpu": "RTX-4090", "max_model_len": 4096}]
    d["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1, "name": "dirty", "grid_g_per_kwh": 800},
                            {"config": "1xH100-SXM", "count": 0, "name": "green", "grid_g_per_kwh": 0},
                            {"config": "1xRTX-4090", "count": 0, "name": "rtx", "grid_g_per_kwh": 800}]}
    d["carbon"] = {"already_owned": ["H100-SXM"]}
    return d


def test_the_pareto_front_holds_the_cheapest_and_the_greenest_feasible_fleets() -> None:
    # the interleaved pass found its 3 x verify_top feasible fleets along the carbon ordering (SXM x1..3) while
    # the cost ordering was still failing 4090 fleets: the cheapest feasible fleet (1 H100 PCIe) was never
    # simulated, so the front lacked it and the pareto plan recommended a dearer fleet than the cost plan
    loaded = scenario_from_dict(two_ends())
    cheapest = plan_fleet(loaded, objective="cost").recommended
    greenest = plan_fleet(loaded, objective="carbon").recommended
    assert cheapest is not None and greenest is not None
    assert cheapest.candidate.fleet == "1xH100-PCIe:1" and greenest.candidate.fleet == "1xH100-SXM:1"
    result = plan_fleet(loaded, objective="pareto")
    front = [(usd(v), objective_total(v, "carbon")) for v in result.pareto]
    assert front == sorted(front) and len({c for c, _ in front}) == len(front)
    for i, (c, g) in enumerate(front):  # non-dominated, among every feasible fleet simulated
        for v in result.verified:
            if v.feasible:
                c2, g2 = usd(v) or 0, objective_total(v, "carbon")
                assert not (c2 <= (c or 0) and g2 <= g and (c2 < (c or 0) or g2 < g)), (i, v.candidate.fleet)
    assert front[0] == (usd(cheapest), objective_total(cheapest, "carbon"))
    assert front[-1][1] == objective_total(greenest, "carbon")
    assert result.recommended is not None and usd(result.recommended) == usd(cheapest)


def test_a_state_file_is_not_reused_after_the_price_list_changes(tmp_path: Path) -> None:
    # runs carry their economics: a price-list file edited between two plans with one state file had the second
    # plan report the old prices ($0.50/h for two 4090s quoted at $0.40 each)
    d = data()
    d["pricing"] = {"catalogue": "prices.yaml"}
    state = tmp_path / "state.jsonl"
    got = []
    for price in (0.25, 0.40):
        (tmp_path / "prices.yaml").write_text(yaml.safe_dump(
            {"source": "quote", "date": "2026-01", "prices": {"H100-PCIe": {"on_demand": 2.0},
                                                              "RTX-4090": {"on_demand": price}}}))
        best = plan_fleet(scenario_from_dict(d, path=tmp_path / "s.yaml"), state=state).recommended
        assert best is not None and best.candidate.fleet == "1xRTX-4090:2"
        got.append(usd(best))
    assert got == pytest.approx([0.50, 0.80])
    # unchanged, the runs are reused
    before = state.read_text()
    plan_fleet(scenario_from_dict(d, path=tmp_path / "s.yaml"), state=state)
    assert state.read_text() == before


def check_economics(v: Verdict) -> None:
    econ = v.economics
    for p in [*econ["pools"], econ["total"]]:
        mtok_per_h = p["tokens_per_s"] * 3600 / 1e6
        assert p["usd_per_mtok"] == pytest.approx(p["usd_per_hour"] / mtok_per_h, rel=1e-9)
        assert p["kwh_per_mtok"] == pytest.approx(p["kwh_per_hour"] / mtok_per_h, rel=1e-9)
        assert p["g_per_mtok"] == pytest.approx((p["carbon_g_per_hour"] + p["embodied_g_per_hour"]) / mtok_per_h,
                                                rel=1e-9)
        assert p["usd_per_m_output_tok"] == pytest.approx(
            p["usd_per_hour"] / (p["output_tokens_per_s"] * 3600 / 1e6), rel=1e-9)
        assert p["kwh_per_hour"] == pytest.approx(p["power_w"] / 1000, rel=1e-12)
    for key in ("usd_per_hour", "power_w", "kwh_per_hour", "carbon_g_per_hour", "embodied_g_per_hour",
                "tokens_per_s", "output_tokens_per_s", "replicas", "gpus"):
        assert econ["total"][key] == pytest.approx(sum(p[key] for p in econ["pools"]), rel=1e-12)


def test_per_token_figures_over_several_seeds_agree_with_the_rates_beside_them() -> None:
    # a fleet's $/Mtok over its seeds was the mean of each seed's ratio, not its mean $/h over its mean tokens/s
    # (the two figures the same report row prints): off by up to ~1% on a mixed fleet
    result = plan_fleet(small(routing=["least_outstanding", "round_robin"], verify_top=8))
    assert any(len(v.economics["pools"]) == 2 and len(v.runs) == 2 for v in result.verified)
    for v in result.verified:
        check_economics(v)


def test_plan_json_classes_pool_the_seeds_as_the_report_does() -> None:
    result = plan_fleet(small())
    best = result.recommended
    assert best is not None and len(best.runs) == 2
    classes = to_dict(result)["recommended"]["classes"]
    _title, _cols, rows = classes_table(best, result.confidence)
    for name, cls in classes.items():
        per = [r["classes"][name] for r in best.runs]
        assert cls["n"] == sum(p["n"] for p in per) == 1600
        for metric, m in cls["metrics"].items():
            assert m["share"] == pytest.approx(sum(p["metrics"][metric]["share"] for p in per) / 2)
            row = next(r for r in rows if r[1].endswith(metric.upper()))
            assert row[2] == f"{m['value_ms']:,.0f}" and row[4].startswith(f"{m['share'] * 100:.1f}%")
    doc = json.loads(plan_json(result), parse_constant=lambda c: pytest.fail(f"{c} in plan.json"))
    assert doc["recommended"]["fleet"] == best.candidate.fleet and doc["message"] == result.message()
    buf = io.StringIO()
    print_report(result, Console(file=buf, width=200))
    assert result.message() in buf.getvalue()


def test_owned_gpus_with_a_count_pool_grids_and_hourly_profiles_are_charged_as_documented() -> None:
    d = data(rate=10.0)
    d["pricing"] = {"overrides": {"RTX-4090": 0.5}, "electricity_usd_per_kwh": 0.3, "pue": 1.3,
                    "owned": {"RTX-4090": {"purchase_usd": 1600, "count": 1, "overhead_usd_per_hour": 0.05}}}
    d["carbon"] = {"grid_g_per_kwh": 100, "hourly_profile": [0.5] * 12 + [1.0] * 12, "lifetime_years": 5}
    d["fleet"]["pools"][0]["grid_g_per_kwh"] = 50
    d["fleet"]["pools"][1]["grid_hourly_profile"] = [2.0] * 24
    loaded = scenario_from_dict(d)
    cand = Candidate((("1xH100-PCIe", 1), ("1xRTX-4090", 2)), "least_outstanding")
    econ = run_once(loaded, cand, 3, 400)["economics"]
    h100, rtx = econ["pools"]
    # the H100 rents; its pool's own intensity under the scenario's profile (mean 0.75)
    assert h100["usd_per_hour"] == pytest.approx(2.0)
    assert h100["carbon_g_per_hour"] == pytest.approx(h100["kwh_per_hour"] * 1.3 * 50 * 0.75)
    assert h100["embodied_g_per_hour"] == pytest.approx(318_000 / (5 * 8760))
    # one of the two 4090s owned (amortised + overhead + its share of electricity x PUE), one at the quote;
    # the 4090 pool's own profile (x2) replaces the scenario's
    assert rtx["usd_per_hour"] == pytest.approx(owned_hourly(1600, 3, 0.05) + 0.5 + rtx["kwh_per_hour"] / 2 * 1.3 * 0.3)
    assert rtx["carbon_g_per_hour"] == pytest.approx(rtx["kwh_per_hour"] * 1.3 * 100 * 2.0)
    assert rtx["cost_basis"].startswith("1 owned: $1,600 over 3 y") and "1 rented: scenario quote" in rtx["cost_basis"]
    # the screening estimate prices the same way (rent exact; the owned share's electricity at a guessed load)
    curves = plan_fleet(scenario_from_dict(d)).curves
    est = estimate(loaded, cand, curves, 10.0)
    share = 10.0 / (curves["1xH100-PCIe"].capacity_rps + 2 * curves["1xRTX-4090"].capacity_rps)
    util = curves["1xRTX-4090"].busy_at(share * curves["1xRTX-4090"].capacity_rps)  # each its share of the load
    assert share < util < 1
    kw = power_model(loaded.scenario, loaded.scenario.gpu_catalogue()["RTX-4090"]).mean_w(util) * 2 / 1000
    assert est.usd_per_hour == pytest.approx(2.0 + owned_hourly(1600, 3, 0.05) + 0.5 + kw / 2 * 1.3 * 0.3)


def test_the_recommendation_is_the_cheapest_and_greenest_feasible_fleet_by_enumeration() -> None:
    loaded = small(ttft_ms=100)
    feasible = [v for v in every_fleet(loaded) if v.feasible]
    assert len(feasible) > 2
    for objective in ("cost", "carbon"):
        best = plan_fleet(loaded, objective=objective).recommended
        assert best is not None and best.feasible
        assert objective_total(best, objective) == pytest.approx(min(objective_total(v, objective) for v in feasible))


def recommended_cost(loaded: LoadedScenario) -> float:
    result = plan_fleet(loaded)
    return math.inf if result.recommended is None else usd(result.recommended) or math.inf


def test_looser_slos_never_cost_more_at_the_same_seeds() -> None:
    costs = [recommended_cost(small(ttft_ms=t)) for t in (60, 80, 100, 150, 1000)]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    by_pct = []
    for pct in (99, 95, 90, 75):
        d = data(ttft_ms=100)
        d["traffic"]["classes"][0]["slo"]["percentile"] = pct
        by_pct.append(recommended_cost(scenario_from_dict(d)))
    assert by_pct == sorted(by_pct, reverse=True) and by_pct[0] > by_pct[-1]


def test_a_larger_menu_or_budget_never_costs_more_and_caps_bind_every_fleet_simulated() -> None:
    both = recommended_cost(small(ttft_ms=100))
    assert both <= min(recommended_cost(small(ttft_ms=100, menu=[m])) for m in ("1xH100-PCIe", "1xRTX-4090"))
    for budget in (1.0, 2.0, 100.0):
        assert recommended_cost(small(ttft_ms=100, max_budget_usd_per_hour=budget)) == both
    capped: PlanResult = plan_fleet(small(ttft_ms=100, max_replicas={"1xRTX-4090": 2}, max_gpus={"H100-PCIe": 1},
                                          max_total_replicas=3))
    assert capped.verified
    for v in capped.verified:
        assert v.candidate.count("1xRTX-4090") <= 2 and v.candidate.count("1xH100-PCIe") <= 1
        assert v.candidate.replicas() <= 3
    assert (usd(capped.recommended) or math.inf) >= both


def test_a_state_file_of_another_scenario_is_not_reused(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    first = plan_fleet(small(), state=state)
    n = len(state.read_text().splitlines())
    other = plan_fleet(small(rate=10.0), state=state)
    assert len(state.read_text().splitlines()) == n + sum(len(v.runs) for v in other.verified)
    fresh = plan_fleet(small(rate=10.0))
    assert other.recommended is not None and fresh.recommended is not None and first.recommended is not None
    assert other.recommended.candidate == fresh.recommended.candidate
    assert other.recommended.economics == fresh.recommended.economics


def test_over_the_budget_the_fleet_named_is_the_cheapest_that_meets_the_slos_whatever_the_objective() -> None:
    """The budget is in dollars: with ``--objective carbon`` too, the fleet named as meeting the SLOs over it is
    the cheapest such, not the greenest (it had been the greenest)."""
    from planner.search import _conclude

    def verdict(fleet: str, usd: float, carbon: float) -> Verdict:
        econ = {"pools": [], "total": {"usd_per_hour": usd, "carbon_g_per_hour": carbon, "embodied_g_per_hour": 0.0}}
        return Verdict(Candidate(((fleet, 1),), "least_outstanding"), [{"economics": econ, "classes": {}}],
                       True, 0.05, "")

    cheap, green = verdict("cheap", 3.0, 500.0), verdict("green", 6.0, 100.0)
    for objective in ("cost", "carbon", "pareto"):
        result = PlanResult(objective=objective, offered_rps=1.0, curves={}, enumerated=2, screened=2)
        result.verified = [green, cheap]
        _conclude(result, [], objective)
        assert result.recommended is None and result.closest is cheap, objective


def test_screening_guesses_each_fleets_carbon_as_its_simulation_finds_it() -> None:
    """Screening orders candidates by a guessed footprint before any is simulated; with each replica busy
    as its configuration's screening runs were at its share of the load, the guess comes within 10% of what
    verification simulates (by the load's share of capacity it had guessed busy fractions far too low:
    3 H100s 51% under their simulated carbon)."""
    for rate in (6.0, 30.0):
        result = plan_fleet(small(rate=rate, max_total_replicas=3), objective="carbon")
        assert result.verified
        for v in result.verified:
            guess = estimate(small(rate=rate), v.candidate, result.curves, result.offered_rps)
            assert guess.carbon_g_per_hour == pytest.approx(objective_total(v, "carbon"), rel=0.10), v.candidate.fleet
