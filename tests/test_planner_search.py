"""The optimiser: cheapest feasible fleet (checked by brute force), infeasible answers, resume."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_scenario

from planner import search
from planner.cli import main as planner_main
from planner.outcome import to_dict
from planner.search import enumerate_fleets, plan_fleet
from planner.variants import Candidate, peak_traffic
from planner.verify import Verdict, pool_runs, run_once
from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario, scenario_from_dict


def small(rate: float = 30.0, ttft_ms: float = 250, **plan: Any) -> LoadedScenario:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0]["rate"] = rate
    data["traffic"]["classes"][0]["slo"] = {"ttft_ms": ttft_ms, "tpot_ms": 60, "percentile": 90}
    data["plan"] = {"max_total_replicas": 3, "seeds": 2, "requests": 800, **plan}
    return scenario_from_dict(data)


def every_fleet(loaded: LoadedScenario) -> list[Verdict]:
    """Brute force: every fleet of :func:`small`'s space verified as the planner does (2 seeds, 800 requests)."""
    seeds = [loaded.scenario.simulation.seed + i for i in range(2)]
    out = []
    for counts in enumerate_fleets(loaded):
        cand = Candidate(counts, "least_outstanding")
        out.append(pool_runs(cand, [run_once(loaded, cand, s, 800) for s in seeds], 0.95))
    return out


def test_optimiser_answer_is_the_cheapest_feasible_fleet_by_enumeration() -> None:
    loaded = small()
    result = plan_fleet(loaded)
    assert result.recommended is not None
    all_verdicts = every_fleet(loaded)
    feasible = [v for v in all_verdicts if v.feasible]
    assert feasible, "the test space must contain a feasible fleet"
    cheapest = min(v.economics["total"]["usd_per_hour"] for v in feasible)
    assert result.recommended.economics["total"]["usd_per_hour"] == pytest.approx(cheapest)
    assert result.recommended.feasible
    # cheaper fleets exist in the space and fail, so the answer is not trivially the smallest one
    assert len(enumerate_fleets(loaded)) == 9
    assert min(v.economics["total"]["usd_per_hour"] for v in result.verified) <= cheapest
    assert any(not v.feasible and v.economics["total"]["usd_per_hour"] < cheapest for v in all_verdicts)


def test_infeasible_slos_give_the_closest_fleet_and_what_it_misses(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = small(ttft_ms=1.0)
    result = plan_fleet(loaded)
    assert result.recommended is None and result.closest is not None
    msg = result.message()
    assert msg.startswith("no fleet meets the SLOs; closest is ")
    # "missing Y by Z": the bound, by how much, and the achieved percentile against the bound
    assert re.search(r"missing chat p90 TTFT by [\d,]+ ms \([\d,]+ ms vs bound 1 ms; ", msg), msg
    # the closest fleet is the best the space offers (the most capable fleets are simulated), on all seeds
    assert result.closest.candidate.fleet in {v.candidate.fleet for v in result.verified}
    assert len(result.closest.runs) == 2
    assert all(v.margin <= result.closest.margin for v in result.verified)
    assert to_dict(result)["recommended"] is None


def test_cli_plan_exit_code_json_and_report(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    data = small().scenario.model_dump(mode="json", exclude_none=True)
    import yaml

    f.write_text(yaml.safe_dump(data))
    out, rep = tmp_path / "plan.json", tmp_path / "rep"
    state = tmp_path / "state.jsonl"
    assert planner_main(["plan", str(f), "--json", str(out), "--report", str(rep), "--state", str(state)]) == 0
    doc = json.loads(out.read_text())
    assert doc["recommended"]["feasible"] is True
    assert {"fleet", "routing", "economics", "attainment"} <= set(doc["recommended"])
    for a in doc["recommended"]["attainment"].values():  # confidence interval on SLO attainment
        assert 0 <= a["low"] <= a["mean"] <= a["high"] <= 1 and a["high"] - a["low"] > 0
    total = doc["recommended"]["economics"]["total"]
    assert total["usd_per_hour"] > 0 and total["usd_per_mtok"] > 0 and total["kwh_per_mtok"] > 0
    assert total["g_per_mtok"] > 0
    for png in ("latency_vs_load.png", "cost_carbon.png", "utilisation.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (rep / png).stat().st_size > 5000
    md = (rep / "report.md").read_text()
    assert doc["stress"]["step_time_pct"] == 10 and doc["stress"]["worst"]  # the scenario's default stress test
    for part in ("**recommended: ", "### per class:", "### per pool and fleet", "kWh/Mtok", "power modelled:",
                 "stress test: with every engine step 10% slower",
                 "![latency vs load", "![cost vs carbon", "![utilisation"):
        assert part in md, part
    lines = state.read_text().splitlines()
    assert lines, "runs are written as they finish"
    # resume: a second run simulates nothing new and answers the same
    assert planner_main(["plan", str(f), "--json", str(out), "--state", str(state)]) == 0
    assert state.read_text().splitlines() == lines
    assert json.loads(out.read_text())["recommended"]["fleet"] == doc["recommended"]["fleet"]
    data["traffic"]["classes"][0]["slo"]["ttft_ms"] = 1.0
    f.write_text(yaml.safe_dump(data))
    assert planner_main(["plan", str(f), "--state", str(state)]) == 3
    assert planner_main(["plan", str(f), "--state", str(state), "--stress", "150"]) == 2
    data["plan"]["stress_pct"] = 150
    f.write_text(yaml.safe_dump(data))
    assert planner_main(["plan", str(f), "--state", str(state)]) == 2  # the scenario's, refused with its path


def test_the_recommended_fleet_is_stress_tested_with_slower_steps() -> None:
    """The stress test verifies the recommended fleet again, all seeds, with every step slower: twice as
    slow, the fleet the search picked as cheapest (so with little to spare) must do worse and say so."""
    loaded = small()
    # by default the scenario's plan.stress_pct (10) is run; 0 there, or from the caller, skips it
    assert loaded.scenario.plan.stress_pct == 10 and plan_fleet(loaded).stress_pct == 10
    plain = plan_fleet(small(stress_pct=0))
    assert plain.stress is None and to_dict(plain)["stress"] is None
    assert plan_fleet(loaded, stress_pct=0).stress is None
    result = plan_fleet(small(stress_pct=100))
    best, stressed = result.recommended, result.stress
    assert best is not None and stressed is not None
    assert stressed.candidate == best.candidate and len(stressed.runs) == 2
    assert stressed.margin < best.margin and not stressed.feasible
    doc = to_dict(result)["stress"]
    assert doc["step_time_pct"] == 100 and doc["feasible"] is False and doc["worst"] == stressed.worst
    from planner.report import stress_line

    assert stress_line(result).startswith(f"stress test: with every engine step 100% slower than the profiles say, "
                                          f"{best.candidate.fleet} would miss ")


def test_a_budget_no_fleet_meets_recommends_nothing_and_names_the_cheapest_fleet_that_would() -> None:
    # screening drops every fleet over the budget; the fleets simulated after that may meet the SLOs, but
    # they are over the budget too and must not come back as the recommendation.  The fleet named is the
    # cheapest of the whole space that meets them (checked by brute force), not one of the largest fleets
    loaded = small(max_budget_usd_per_hour=0.01)
    result = plan_fleet(loaded)
    assert result.screened == 0 and result.recommended is None and result.closest is not None
    assert result.message().startswith("no fleet within the budget of $0.01/h meets the SLOs")
    met = [v for v in every_fleet(loaded) if v.feasible]
    assert len({v.economics["total"]["usd_per_hour"] for v in met}) > 1, "the test needs a choice to make"
    assert result.closest.feasible
    cheapest = min(v.economics["total"]["usd_per_hour"] for v in met)
    assert result.closest.economics["total"]["usd_per_hour"] == pytest.approx(cheapest)
    assert f"at ${cheapest:.2f}/h" in result.message()


def test_the_verification_limit_holds_for_the_best_effort_fleets_too() -> None:
    result = plan_fleet(small(ttft_ms=1.0), max_verifications=1)
    assert len(result.verified) == 1 and result.truncated and result.closest is not None


def test_a_fleet_that_rejects_requests_says_how_many(tmp_path: Path) -> None:
    # prompts up to 8000 tokens reach 4090s that hold 4096: the percentile SLO can hold while some requests
    # are never served, and the plan must say so rather than recommend the fleet silently
    data = small(ttft_ms=5000, max_gpus={"H100-PCIe": 0}).scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0].update(
        rate=2.0, prompt_tokens={"type": "lognormal", "mean": 1200, "sigma": 1.0, "min": 4, "max": 8000})
    data["traffic"]["classes"][0]["slo"]["tpot_ms"] = 200
    data["plan"]["stress_pct"] = 0
    result = plan_fleet(scenario_from_dict(data))
    best = result.recommended
    assert best is not None and best.candidate.count("1xH100-PCIe") == 0
    n, of = best.rejected["chat"]
    assert 0 < n < 0.1 * of and of == 2 * 800
    assert f"rejects {n:,} requests" in result.message()
    assert any(f"rejects {n:,} of {of:,} chat requests" in note for note in result.fleet_notes(best))
    doc = to_dict(result)
    assert doc["recommended"]["rejected"] == {"chat": n} and doc["recommended"]["notes"]


def test_a_class_without_requests_in_the_runs_is_unverified_not_failed() -> None:
    # a class of 1 in 300,000 requests gets none of 800: its SLOs cannot be judged, which is not a miss
    data = small(rate=5.0, ttft_ms=2000).scenario.model_dump(mode="json", exclude_none=True)
    rare = dict(data["traffic"]["classes"][0], name="rare", rate=5.0 / 300_000)
    data["traffic"]["classes"].append(rare)
    data["plan"]["stress_pct"] = 0
    result = plan_fleet(scenario_from_dict(data))
    best = result.recommended
    assert best is not None and best.feasible and best.unverified == ["rare"]
    assert "rare" not in best.attainment and "chat" in best.attainment
    assert any(note.startswith("not verified: rare had no requests") and "raise plan.requests" in note
               for note in result.fleet_notes(best))
    assert "classes unverified" in result.message()


def test_caps_limit_the_search() -> None:
    loaded = small(max_gpus={"H100-PCIe": 0})
    assert all(dict(v).get("1xH100-PCIe", 0) == 0 for v in enumerate_fleets(loaded))
    result = plan_fleet(loaded)
    if result.recommended is not None:
        assert result.recommended.candidate.count("1xH100-PCIe") == 0


def test_pareto_front_is_non_dominated() -> None:
    result = plan_fleet(small(rate=5.0, verify_top=2), objective="pareto")
    pts = [
        (
            v.economics["total"]["usd_per_hour"],
            v.economics["total"]["carbon_g_per_hour"] + v.economics["total"]["embodied_g_per_hour"],
        )
        for v in result.pareto
    ]
    assert pts
    for i, (c, g) in enumerate(pts):
        for j, (c2, g2) in enumerate(pts):
            assert i == j or not (c2 <= c and g2 <= g and (c2 < c or g2 < g))


def test_an_interrupted_search_resumes_from_its_state_file(tmp_path: Path) -> None:
    loaded, state = small(), tmp_path / "state.jsonl"
    seen = []

    def interrupt(msg: str, done: int, total: int) -> None:
        seen.append(msg)
        if sum(m.startswith("verifying") for m in seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plan_fleet(loaded, state=state, progress=interrupt)
    before = state.read_text().splitlines()
    assert before, "the runs finished before the interruption are on disk"
    resumed = plan_fleet(loaded, state=state)
    after = state.read_text().splitlines()
    assert after[: len(before)] == before
    # (the stress test's slowed runs sit beside them under their own scenario digest)
    keys = [(r["scenario"], r["key"], r["seed"]) for r in map(json.loads, after)]
    assert len(keys) == len(set(keys)), "no run is simulated twice"
    fresh = plan_fleet(loaded)  # no state file at all
    assert resumed.recommended is not None and fresh.recommended is not None
    assert resumed.recommended.candidate == fresh.recommended.candidate
    assert resumed.recommended.economics == fresh.recommended.economics


def test_a_line_cut_short_by_a_kill_costs_no_later_run(tmp_path: Path) -> None:
    from planner.verify import StateFile

    path = tmp_path / "state.jsonl"
    path.write_text('{"scenario": "d", "key": "a", "seed": 0}\n{"scenario": "d", "key": "b", "se')  # killed mid-write
    state = StateFile(path, "d")
    assert set(state.runs) == {("a", 0)}
    state.put({"key": "c", "seed": 1})  # had been appended to the cut line, and lost with it on the next resume
    state.put({"key": "c", "seed": 2})
    assert set(StateFile(path, "d").runs) == {("a", 0), ("c", 1), ("c", 2)}
    assert path.read_text().count("\n") == 4


def test_state_file_runs_are_not_reused_under_a_refitted_profile(tmp_path: Path) -> None:
    """The state file's key covers the profiles the configurations resolve to: rewriting a profile file
    (a refit) starts a new key, rewriting it unchanged keeps the old one."""
    import yaml

    from planner.verify import scenario_hash
    from sim.profiles import BUNDLED_DIR

    entry = next(e for e in yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())["profiles"]
                 if e["gpus"] == 1)
    prof = tmp_path / "prof.yaml"
    data = small().scenario.model_dump(mode="json", exclude_none=True)
    data["configs"] = [{**c, "profile": "prof.yaml"} if c["gpu"] == "H100-PCIe" else c for c in data["configs"]]

    def key(fields: dict[str, Any]) -> str:
        prof.write_text(yaml.safe_dump({"profiles": [{**entry, **fields}]}))
        return scenario_hash(scenario_from_dict(data, path=tmp_path / "s.yaml"), 800)

    first = key({})
    assert key({}) == first
    assert key({"mem_eff": 0.5}) != first
    assert scenario_hash(small(), 800) != first  # the bundled profile is another profile


def test_state_file_runs_are_not_reused_when_the_simulated_memory_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An uncalibrated GPU's KV cache is sized from the memory its driver reports (scenarios.catalog
    DRIVER_MEMORY_GB), which its profile (roofline defaults) does not hold: the key covers it too."""
    import scenarios.catalog
    from planner.verify import scenario_hash

    data = small().scenario.model_dump(mode="json", exclude_none=True)
    data["configs"] = [*data["configs"], {"gpu": "L40S"}]
    first = scenario_hash(scenario_from_dict(data), 800)
    assert scenario_hash(scenario_from_dict(data), 800) == first
    monkeypatch.setitem(scenarios.catalog.DRIVER_MEMORY_GB, "L40S", 45.0)
    assert scenario_hash(scenario_from_dict(data), 800) != first


def test_class_affinity_candidates_hold_a_pool_their_map_names() -> None:
    """On a fleet with none of the pools its map names, or only those, class affinity routes like the
    plain policy: only the plain policy's candidate is kept for such fleets (the planner used to
    recommend 'class_affinity' for a fleet of 4090s alone)."""
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["routing"] = {"type": "class_affinity", "affinity": {"chat": ["h100"]}}
    data["plan"] = {"max_total_replicas": 3, "seeds": 1, "requests": 400,
                    "routing": ["least_outstanding", "class_affinity"]}
    result = plan_fleet(scenario_from_dict(data))
    cands = [e.candidate for e in result.estimates.values()]
    affine = [c for c in cands if c.routing == "class_affinity"]
    assert affine and all(c.count("1xH100-PCIe") > 0 and c.count("1xRTX-4090") > 0 for c in affine)
    assert any(c.count("1xH100-PCIe") == 0 for c in cands if c.routing == "least_outstanding")
    # the only policy allowed: every fleet stays a candidate under it
    data["plan"]["routing"] = ["class_affinity"]
    only = plan_fleet(scenario_from_dict(data))
    assert any(e.candidate.count("1xH100-PCIe") == 0 for e in only.estimates.values())
    # ... and the plan says where the map routes nothing differently
    idle = {k for k in only.estimates if k in only.affinity_idle}
    mixed = {e.candidate.key for e in only.estimates.values()
             if e.candidate.count("1xH100-PCIe") > 0 and e.candidate.count("1xRTX-4090") > 0}
    assert idle and idle == set(only.estimates) - mixed
    for v in only.verified:
        note = only.routing_note(v)
        assert (note is not None) == (v.candidate.key in idle)
        assert to_dict(only)["recommended"] is None or "routing_note" in to_dict(only)["recommended"]
    if only.recommended is not None and only.recommended.candidate.key in idle:
        assert "routed over the whole fleet" in (only.routing_note(only.recommended) or "")


def test_a_search_space_too_large_to_enumerate_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "MAX_COMBINATIONS", 100)  # two configurations of up to 20 replicas: 441
    loaded = small(max_total_replicas=20)
    n = len(loaded.scenario.configs)
    with pytest.raises(FleetPlannerError, match=rf"plan: [\d,]+ replica-count combinations of {n} configurations"):
        enumerate_fleets(loaded)
    # and a state path that is a folder is named before the search
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small().scenario.model_dump(mode="json", exclude_none=True)))
    assert planner_main(["plan", str(path), "--state", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--state {tmp_path}: is a folder; name the state file (.jsonl)" in err and err.count("\n") == 1


def test_a_class_varying_over_the_day_is_planned_for_its_peak() -> None:
    # the runs cover a few thousand requests from t = 0: with the default peak at 14:00 that is the night's
    # trough, and the plan had sized the fleet for a fraction of the afternoon's load
    data = small(rate=10.0).scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0]["arrival"] = {"type": "diurnal", "amplitude": 0.8}
    loaded = scenario_from_dict(data)
    peak, notes = peak_traffic(loaded)
    assert peak.scenario.traffic.classes[0].rate == pytest.approx(18.0)
    assert peak.scenario.traffic.classes[0].arrival.type == "poisson"
    assert notes == ["class chat is sized for its peak rate, 18 req/s (diurnal: 10 x (1 + 0.8))"]
    result = plan_fleet(loaded)
    assert result.offered_rps == pytest.approx(18.0, rel=0.1) and result.peaks == notes
    # shares of total_rate keep their proportions when one class becomes an absolute peak rate
    data["traffic"] = {"total_rate": 12.0, "classes": [
        {**data["traffic"]["classes"][0], "rate": None, "share": 1.0},
        {**data["traffic"]["classes"][0], "name": "batch", "rate": None, "share": 2.0, "arrival": {"type": "poisson"}}]}
    data["traffic"]["classes"] = [{k: v for k, v in c.items() if v is not None} for c in data["traffic"]["classes"]]
    peak, _ = peak_traffic(scenario_from_dict(data))
    assert [c.rate for c in peak.scenario.traffic.classes] == pytest.approx([4.0 * 1.8, 8.0])


def test_a_configuration_serving_none_of_the_mix_is_screened_out() -> None:
    # every prompt is over the RTX 4090's max_model_len: screening it had crashed on a zero capacity
    data = small(ttft_ms=5000).scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0].update(rate=1.0, prompt_tokens={"type": "fixed", "value": 5000},
                                         output_tokens={"type": "fixed", "value": 50})
    result = plan_fleet(scenario_from_dict(data))
    assert result.curves["1xRTX-4090"].capacity_rps == 0 and result.recommended is not None
    assert result.recommended.candidate.count("1xRTX-4090") == 0


def test_a_one_request_trace_is_planned_and_plan_json_is_strict(tmp_path: Path) -> None:
    # a trace whose requests arrive at once has no rate to scale (a ZeroDivisionError in screening); a class
    # without bounds has an unbounded margin, which JSON cannot hold as Infinity
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n0.0,100,50\n")
    data = small().scenario.model_dump(mode="json", exclude_none=True)
    data["traffic"]["classes"][0].update(arrival={"type": "trace", "path": str(tmp_path / "t.csv")},
                                         prompt_tokens={"type": "trace"}, output_tokens={"type": "trace"}, slo={})
    del data["traffic"]["classes"][0]["rate"]
    data["plan"]["stress_pct"] = 0
    out = tmp_path / "plan.json"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert planner_main(["plan", str(tmp_path / "s.yaml"), "--json", str(out), "--state", str(tmp_path / "st")]) == 0
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in plan.json"))
    assert doc["recommended"]["margin"] is None


def test_the_pareto_front_holds_each_point_once_and_the_recommendation() -> None:
    # a one-replica fleet is the same under every routing policy: the front had listed it once per policy
    result = plan_fleet(small(rate=2.0, ttft_ms=2000, routing=["least_outstanding", "round_robin"]),
                        objective="pareto")
    pts = [(v.economics["total"]["usd_per_hour"],
            v.economics["total"]["carbon_g_per_hour"] + v.economics["total"]["embodied_g_per_hour"])
           for v in result.pareto]
    assert len(pts) == len(set(pts)) and [c for c, _ in pts] == sorted(c for c, _ in pts)
    assert result.recommended is not None and result.recommended in result.pareto
    assert any(v.candidate.replicas() == 1 and v is not result.recommended
               and v.economics["total"]["usd_per_hour"] == pts[0][0] for v in result.verified if v.feasible)


def test_closest_is_the_fleet_nearest_the_bounds_when_none_meets_any() -> None:
    # every fleet serves 0% within a 1 ms TTFT, so margins tie; the closest is the one that overshoots least
    result = plan_fleet(small(ttft_ms=1.0))
    assert result.closest is not None
    least = min(v.overshoot for v in result.verified if v.margin == result.closest.margin)
    assert result.closest.overshoot == least and math.isfinite(least)


def test_owned_gpus_are_used_up_to_the_number_owned() -> None:
    # two RTX 4090s owned outright (electricity only), more of them rent at $50/h: the plan takes the two owned
    # ones where one H100 at $2/h had been cheapest; a third would rent, so none of the fleets uses more
    def plan(owned: int | None) -> Any:
        data = small().scenario.model_dump(mode="json", exclude_none=True)
        data["pricing"] = {"overrides": {"RTX-4090": 50.0}}
        if owned:
            data["pricing"]["owned"] = {"RTX-4090": {"purchase_usd": 0, "count": owned}}
        data["plan"]["stress_pct"] = 0
        return plan_fleet(scenario_from_dict(data))

    assert plan(None).recommended.candidate.fleet == "1xH100-PCIe:1"
    best = plan(2).recommended
    assert best.candidate.fleet == "1xRTX-4090:2" and best.economics["total"]["usd_per_hour"] < 0.5
    assert best.economics["pools"][0]["cost_basis"].startswith("owned: $0 over 3 y")


def test_a_fleet_whose_backlog_grows_is_not_feasible_though_a_short_run_meets_its_slos() -> None:
    """Two 4090s at 6 req/s of one-minute batch work meet the E2E bound over 800 requests, yet their queue
    grows by a fifth of the arrivals: the planner must not recommend them (it had)."""
    from test_sim_stability import batch_only

    data = batch_only(6.0, 1)
    data["plan"] = {"max_total_replicas": 4, "seeds": 2, "requests": 800, "stress_pct": 0}
    result = plan_fleet(scenario_from_dict(data))
    assert result.recommended is not None
    two = next(v for v in result.verified if v.candidate.fleet == "1xRTX-4090:2")
    assert two.margin >= 0 and two.growth is not None and two.growth > 0.1
    assert not two.feasible and not two.keeps_up
    assert two.worst.startswith("a steady state (the requests in the fleet grew by ")
    assert result.recommended.candidate.fleet == "1xRTX-4090:3" and result.recommended.keeps_up
    assert to_dict(result)["recommended"]["backlog_growth"] == pytest.approx(result.recommended.growth)


def test_runs_too_short_to_judge_whether_the_fleet_keeps_up_say_so() -> None:
    """With 100 requests of minute-long batch work no run is long enough to tell a filling fleet from a growing
    backlog: the recommendation says it was not judged (message, note, plan.json); with 800 it is judged."""
    from test_sim_stability import batch_only

    data = batch_only(6.0, 1)
    for requests, judged in ((100, False), (800, True)):
        data["plan"] = {"max_total_replicas": 4, "seeds": 2, "requests": requests, "stress_pct": 0}
        result = plan_fleet(scenario_from_dict(data))
        best = result.recommended
        assert best is not None
        assert (best.growth is not None) == judged and (best.growth_unjudged is None) == judged
        notes = to_dict(result)["recommended"]["notes"]
        assert any(n.startswith(f"not judged whether {best.candidate.fleet} keeps up") for n in notes) != judged
        assert ("runs too short to judge whether it keeps up" in result.message()) != judged
