"""Inputs of ``planner simulate`` / ``plan`` (and friends) that used to be taken silently or named badly:
``--fleet`` naming a configuration, its class-affinity routing, a broken profile seen through simulate and
plan, empty path options, a window without requests, a trace shorter than the count, price-list keys, and a
GPU both owned and quoted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cli import main
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import parse_fleet_spec, scenario_from_dict
from scenarios.prices import gpu_cost

#: one region per configuration name, each with its pool's grid intensity (README's "Regions")
REGIONS: dict[str, Any] = {
    "name": "regions",
    "model": "Meta-Llama-3-8B-Instruct",
    "configs": [
        {"gpu": "H100-PCIe", "name": "h-de", "max_num_seqs": 64},
        {"gpu": "RTX-4090", "gpus": 2, "name": "r-se", "max_model_len": 4096, "max_num_seqs": 32},
        {"gpu": "RTX-4090", "gpus": 2, "name": "r-pl", "max_model_len": 4096},
    ],
    "traffic": {"classes": [{"name": "chat", "rate": 4.0, "slo": {"ttft_ms": 500}},
                            {"name": "batch", "rate": 1.0, "slo": {"e2e_ms": 60000}}]},
    "fleet": {"pools": [
        {"config": "h-de", "count": 1, "name": "de", "grid_g_per_kwh": 350},
        {"config": "r-se", "count": 1, "name": "se", "grid_g_per_kwh": 40},
        {"config": "r-pl", "count": 0, "name": "pl", "grid_g_per_kwh": 700},
    ]},
    "routing": {"type": "class_affinity", "affinity": {"chat": ["de"], "batch": ["se", "pl"]}},
    "simulation": {"requests": 40, "seed": 1},
}


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def regions(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(REGIONS)
    data.update(copy.deepcopy(changes))
    return data


# ------------------------------------------------------------------------------------------ --fleet
def test_fleet_selects_a_configuration_by_name_keeping_its_settings() -> None:
    base = scenario_from_dict(regions()).scenario
    s = parse_fleet_spec("r-se:2, h-de", base)
    assert [(p.config, p.count, p.grid_g_per_kwh) for p in s.fleet.pools] == [("r-se", 2, 40.0), ("h-de", 1, 350.0)]
    assert s.config_by_key()["r-se"].max_num_seqs == 32 and s.config_by_key()["r-se"].max_model_len == 4096
    assert len(s.configs) == 3  # no new configuration was added for a named one


def test_fleet_with_a_configuration_name_simulates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.yaml", regions())
    code, _, err = run(["simulate", path, "--fleet", "r-se:1", "--requests", "20", "--quiet"], capsys)
    assert code == 0, err


def test_fleet_unknown_item_lists_the_scenarios_configurations() -> None:
    base = scenario_from_dict(regions()).scenario
    with pytest.raises(FleetPlannerError) as info:
        parse_fleet_spec("r-xx:1", base)
    message = str(info.value)
    assert message.startswith("--fleet: cannot read 'r-xx:1'; expected GPUSxGPU:COUNT or CONFIG:COUNT")
    assert "(h-de, r-se, r-pl)" in message and "\n" not in message


def test_fleet_listing_a_configuration_twice_is_refused() -> None:
    base = scenario_from_dict(regions()).scenario
    with pytest.raises(FleetPlannerError, match=r"^--fleet: 'r-se:2': configuration r-se is listed twice$"):
        parse_fleet_spec("r-se:1,r-se:2", base)


def test_fleet_new_hardware_the_scenario_names_gets_a_note() -> None:
    base = scenario_from_dict(regions()).scenario
    notes: list[str] = []
    s = parse_fleet_spec("2xRTX-4090:1", base, notes)
    assert s.config_by_key()["2xRTX-4090"].max_num_seqs == 256
    assert any(n.startswith("--fleet 2xRTX-4090: a new configuration with default engine settings") and
               "r-se, r-pl" in n for n in notes), notes


# ------------------------------------------------------------------------------- class affinity
def test_fleet_keeps_class_affinity_that_still_names_its_pools() -> None:
    base = scenario_from_dict(regions()).scenario
    notes: list[str] = []
    s = parse_fleet_spec("h-de:1,r-se:2", base, notes)
    assert s.routing.type == "class_affinity"
    # the map's pool names (de, se) follow their configurations, which name --fleet's pools; pl is gone
    assert s.routing.affinity == {"chat": ["h-de"], "batch": ["r-se"]}
    assert [n for n in notes if "class_affinity kept" in n and "batch (pl)" in n], notes


def test_fleet_that_affinity_cannot_route_switches_with_a_note(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.yaml", regions())
    code, _, err = run(["simulate", path, "--fleet", "2xRTX-4090:1", "--requests", "20", "--quiet"], capsys)
    assert code == 0, err
    assert "note: --fleet: routing switched from class_affinity to least_outstanding" in err


# ------------------------------------------------------------------- a broken profile, named as check does
def test_simulate_and_plan_name_a_broken_profile_like_check(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("profiles: 3\n")
    data = regions(routing={"type": "least_outstanding"})
    data["configs"][1]["profile"] = "bad.yaml"
    path = write(tmp_path, "r.yaml", data)
    line = f"{path}: configs[1].profile: {tmp_path / 'bad.yaml'}: profiles: expected a list of profile entries"
    code, out, _ = run(["check", path], capsys)
    assert code == 2 and line in out.splitlines()
    code, _, err = run(["simulate", path, "--requests", "20", "--quiet"], capsys)
    assert (code, err) == (2, f"error: {line}\n")
    code, _, err = run(["plan", path, "--state", str(tmp_path / "s.jsonl")], capsys)
    assert (code, err) == (2, f"error: {line}\n")


# ------------------------------------------------------------------------------- empty path options
#: a plan that takes well under a second, for options refused only where the plan would otherwise run
TINY_PLAN = {"plan": {"max_total_replicas": 1, "seeds": 1, "requests": 100, "stress_pct": 0},
             "routing": {"type": "least_outstanding"}}


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["simulate", "{s}", "--requests", "20", "--quiet", "--json", ""], "--json"),
        (["simulate", "{s}", "--requests", "20", "--quiet", "--csv", ""], "--csv"),
        (["plan", "{s}", "--state", "{d}/s.jsonl", "--report", ""], "--report"),
        (["plan", "{s}", "--state", "{d}/s.jsonl", "--json", ""], "--json"),
        (["plan", "{s}", "--state", ""], "--state"),
        (["validate", "{d}/none.json", "--json", ""], "--json"),
        (["validate", "{d}/none.json", "--hardware", ""], "--hardware"),
        (["validate", "{d}/none.json", "--profile", ""], "--profile"),
        (["tui", "--data-dir", ""], "--data-dir"),
    ],
)
def test_empty_path_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, argv: list[str], flag: str) -> None:
    import tui.app

    class NoApp:  # the real app would take over the terminal
        return_code = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def run(self) -> None:
            pass

    monkeypatch.setattr(tui.app, "FleetPlannerApp", NoApp)
    scenario = write(tmp_path, "r.yaml", regions(**TINY_PLAN))
    monkeypatch.chdir(tmp_path)
    code, _, err = run([a.format(s=scenario, d=tmp_path) for a in argv], capsys)
    assert code == 2
    assert err.startswith(f"error: {flag}: empty path; expected ") and err.count("\n") == 1, err


def test_an_empty_scenario_name_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["check", ""], capsys)
    assert (code, out) == (2, "'': empty file name; expected a scenario .yaml file\n")
    code, _, err = run(["simulate", ""], capsys)
    assert (code, err) == (2, "error: '': empty file name; expected a scenario .yaml file\n")


# ----------------------------------------------------------------------------- how many requests
def test_a_window_without_requests_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.yaml", regions())
    code, out, err = run(["simulate", path, "--duration", "1e-9", "--quiet"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: --duration(=1e-09): no request arrives within 1e-09 s") and err.count("\n") == 1
    assert "give a longer --duration, e.g. --duration 20 for about 100 requests at 5 req/s" in err
    data = regions(simulation={"duration_s": 1e-9})
    path = write(tmp_path, "d.yaml", data)
    code, _, err = run(["simulate", path, "--quiet"], capsys)
    assert code == 2 and err.startswith(f"error: {path}: simulation.duration_s(=1e-09): no request arrives")


def _trace_scenario(tmp_path: Path, rows: int) -> str:
    lines = ["timestamp,prompt_tokens,output_tokens", *(f"{i * 0.5},{100 + i},{20 + i}" for i in range(rows))]
    (tmp_path / "trace.csv").write_text("\n".join(lines) + "\n")
    data = regions(
        traffic={"classes": [{"name": "replay", "arrival": {"type": "trace", "path": "trace.csv"},
                              "prompt_tokens": {"type": "trace"}, "output_tokens": {"type": "trace"},
                              "slo": {"ttft_ms": 2000}}]},
        **TINY_PLAN,
    )
    return write(tmp_path, "t.yaml", data)


def test_a_trace_shorter_than_the_count_gets_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _trace_scenario(tmp_path, 30)
    code, _, err = run(["simulate", path, "--requests", "100", "--quiet"], capsys)
    assert code == 0, err
    assert ("note: the run has 30 requests, not the 100 asked for (--requests): a trace is not looped; "
            "traffic.classes[0] (replay) replays trace.csv, which has only 30\n") in err
    code, _, err = run(["simulate", path, "--requests", "30", "--quiet"], capsys)
    assert code == 0 and "note" not in err  # enough rows: nothing to say
    code, _, err = run(["plan", path, "--state", str(tmp_path / "s.jsonl"), "--max-verifications", "1"], capsys)
    assert "note: each run has at most 30 requests, not the 100 asked for" in err, err


# ------------------------------------------------------------------------------------------ prices
@pytest.mark.parametrize(
    ("content", "where", "known"),
    [
        ("prices:\n  H100-PCIe: {on_demand: 1.8, spot_price: 1.0}\n", "prices.H100-PCIe.spot_price",
         "on_demand, spot, note"),
        ("sourc: our broker\nprices:\n  H100-PCIe: {on_demand: 1.8}\n", "sourc", "source, date, prices"),
    ],
)
def test_a_price_list_refuses_unknown_keys(tmp_path: Path, content: str, where: str, known: str) -> None:
    f = tmp_path / "quotes.yaml"
    f.write_text(content)
    data = regions(pricing={"catalogue": str(f)})
    with pytest.raises(FleetPlannerError) as info:
        gpu_cost(scenario_from_dict(data).scenario, "H100-PCIe", tmp_path)
    assert str(info.value) == (f"pricing.catalogue: {f}: {where}: unknown key (not part of a price list; check the "
                               f"spelling); known: {known}")


def test_a_gpu_owned_without_a_count_and_quoted_is_refused() -> None:
    data = regions(pricing={"overrides": {"RTX-4090": 0.3, "H100-PCIe": 2.0},
                            "owned": {"RTX-4090": {"purchase_usd": 1600}}})
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, "p.yaml")
    assert info.value.problems == [
        "p.yaml: pricing.overrides.RTX-4090: RTX-4090 is also in pricing.owned, which covers every RTX-4090 (no "
        "count): the quote would never be used; give owned a count (GPUs beyond it rent at the quote) or remove "
        "one of them"
    ]
    data["pricing"]["owned"]["RTX-4090"]["count"] = 4  # the quote prices the GPUs beyond the four owned
    scenario_from_dict(data, "p.yaml")
