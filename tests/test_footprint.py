"""Energy and carbon: the seed paper's Table 3 from its own inputs, and the planner's costing path."""

from __future__ import annotations

import pytest
from conftest import make_scenario

from planner.costing import fleet_economics
from planner.footprint import embodied_g_per_gpu_hour, g_per_million_tokens, grid_intensity, tokens_per_kwh
from scenarios.catalog import GPUS
from scenarios.loader import scenario_from_dict
from sim.simulation import simulate

# seed 000, Table 2 (#13 and #6) throughputs; Table 3 assumes full TDP (700 W "H100 PCIe", 450 W per 4090)
H100_TPS, RTX2_TPS = 3011.13, 1250.59


def test_seed_000_table_3_from_its_own_inputs() -> None:
    assert tokens_per_kwh(H100_TPS, 700) / 1e6 == pytest.approx(15.4, rel=0.01)
    assert tokens_per_kwh(RTX2_TPS, 2 * 450) / 1e6 == pytest.approx(5.0, rel=0.01)
    assert g_per_million_tokens(H100_TPS, 700, 242) == pytest.approx(15.7, rel=0.01)
    assert g_per_million_tokens(RTX2_TPS, 900, 242) == pytest.approx(48.4, rel=0.01)
    # the paper's "~3.1x more energy-efficient per token"
    assert tokens_per_kwh(H100_TPS, 700) / tokens_per_kwh(RTX2_TPS, 900) == pytest.approx(3.1, abs=0.05)


def test_datasheet_power_is_the_default_and_the_paper_assumption_an_option() -> None:
    assert GPUS["H100-PCIe"].tdp_w == 350


def _economics(**sections: object):
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1, "name": "h100"}]}
    data.update(sections)
    loaded = scenario_from_dict(data)
    res = simulate(loaded, requests=600)
    return fleet_economics(res, loaded), res


def test_full_tdp_costing_matches_the_formula_at_simulated_throughput() -> None:
    econ, _ = _economics(
        power={"model": "full_tdp", "board_w": {"H100-PCIe": 700}},
        pricing={"pue": 1.0},
        carbon={"grid_g_per_kwh": 242, "already_owned": ["H100-PCIe"]},
    )
    pool = econ.pools[0]
    assert pool.power_w == 700
    assert pool.embodied_g_per_hour == 0
    assert pool.g_per_mtok == pytest.approx(g_per_million_tokens(pool.tokens_per_s, 700, 242), rel=1e-9)
    assert pool.usd_per_mtok == pytest.approx(2.0 / 3600 / pool.tokens_per_s * 1e6, rel=1e-9)


def test_linear_power_sits_between_idle_and_board_power() -> None:
    econ, res = _economics()
    pool = econ.pools[0]
    util = float(res.replicas["utilisation"].mean())
    assert 60 <= pool.power_w <= 350
    assert pool.power_w == pytest.approx(60 + (350 - 60) * util)
    assert pool.embodied_g_per_hour > 0


def test_grid_profile_and_embodied_amortisation() -> None:
    s = make_scenario().scenario
    assert grid_intensity(s, 100.0, 0, 1) == 100.0
    data = s.model_dump(mode="json", exclude_none=True)
    data["carbon"] = {"hourly_profile": [2.0] * 12 + [0.0] * 12, "lifetime_years": 4}
    s2 = scenario_from_dict(data).scenario
    assert grid_intensity(s2, 100.0, 0, 1) == 200.0
    assert grid_intensity(s2, 100.0, 13, 1) == 0.0
    assert grid_intensity(s2, 100.0, 0, 24) == 100.0
    g, basis = embodied_g_per_gpu_hour(s2, "A100")
    assert g == pytest.approx(318_000 / (4 * 8760)) and "Chien" in basis


def test_the_scenarios_grid_intensity_applies_to_pools_without_their_own() -> None:
    # carbon.grid_g_per_kwh had been shadowed by a pool default of 242 everywhere
    econ, res = _economics(carbon={"grid_g_per_kwh": 50}, pricing={"pue": 1.0})
    assert econ.pools[0].carbon_g_per_hour == pytest.approx(econ.pools[0].kwh_per_hour * 50)
    assert res.pools[0].grid_g_per_kwh == 50  # what carbon-aware routing ranks pools by
    own, _ = _economics(carbon={"grid_g_per_kwh": 50}, fleet={"pools": [
        {"config": "1xH100-PCIe", "count": 1, "name": "h100", "grid_g_per_kwh": 30}]})
    assert own.pools[0].carbon_basis.startswith("30 g/kWh")


def test_an_hourly_profile_is_charged_at_the_days_mean() -> None:
    # a standing fleet runs around the clock: not the few simulated minutes at start_hour (here a zero hour)
    econ, _ = _economics(carbon={"grid_g_per_kwh": 240, "hourly_profile": [0.0] + [1.0] * 23}, pricing={"pue": 1.0})
    pool = econ.pools[0]
    assert pool.carbon_g_per_hour == pytest.approx(pool.kwh_per_hour * 230)
    assert pool.carbon_basis.startswith("230 g/kWh (day mean)")


def test_simulate_reports_the_plans_power_pue_and_prices(tmp_path) -> None:
    # planner simulate's per-pool energy, carbon and cost had used datasheet power without PUE or electricity
    import json

    import yaml

    from planner.cli import main as planner_main

    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1, "name": "h100"}]}
    data["power"] = {"model": "full_tdp", "board_w": {"H100-PCIe": 700}}
    data["pricing"] = {"pue": 1.5, "electricity_usd_per_kwh": 0.5,
                       "owned": {"H100-PCIe": {"purchase_usd": 30000}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    assert planner_main(["simulate", str(path), "--requests", "300", "--json", str(tmp_path / "s.json"),
                         "--quiet"]) == 0
    pool = json.loads((tmp_path / "s.json").read_text())["pools"][0]
    hours = pool["gpu_hours"]
    assert pool["power_w"] == 700 and pool["energy_kwh"] == pytest.approx(0.7 * hours)
    assert pool["carbon_g"] == pytest.approx(0.7 * hours * 1.5 * 242)
    amortised = 30000 / (3 * 8760)
    assert pool["cost_usd"] == pytest.approx((amortised + 0.7 * 1.5 * 0.5) * hours)
    assert pool["embodied_g"] > 0


def _bundle_with_power(root, points: list[tuple[float, float, float | None]]) -> None:
    """A calibration bundle whose points are (rate, request throughput, total W over 2 GPUs or None)."""
    from calibrate.bundle import BundleWriter

    w = BundleWriter(root, {"model": "test", "tp": 2})
    for i, (rate, thr, watts) in enumerate(points):
        power = (
            {"available": True, "method": "counter", "energy_j": 1.0, "mean_w": watts, "max_w": watts,
             "samples": 10, "duration_s": 60.0, "gpus": [{"mean_w": watts / 2}, {"mean_w": watts / 2}]}
            if watts is not None else {"available": False, "reason": "no NVML"}
        )
        w.add_point({"index": i, "rate": rate, "seed": i, "power": power, "metrics": {},
                     "result": {"completed": 100, "duration": 60.0, "request_throughput": thr}})
    w.update(status="complete")


def test_power_from_a_calibration_bundle(tmp_path) -> None:
    from planner.measured import power_from_bundle

    # per GPU: 100 W + 50 W per req/s; the idle intercept is 100 W, the busiest point draws 300 W
    _bundle_with_power(tmp_path / "b", [(1, 1.0, 300.0), (2, 2.0, 400.0), (8, 4.0, 600.0), (16, 3.9, None)])
    got = power_from_bundle(tmp_path / "b")
    assert got is not None
    assert got.idle_w == pytest.approx(100.0) and got.busy_w == pytest.approx(300.0)
    assert "3 load point(s)" in got.source
    _bundle_with_power(tmp_path / "none", [(1, 1.0, None)])
    assert power_from_bundle(tmp_path / "none") is None


def _measured_economics(tmp_path, power: dict | None):
    import yaml

    from sim.profiles import BUNDLED_DIR

    _bundle_with_power(tmp_path / "bundle", [(1, 1.0, 300.0), (4, 4.0, 600.0)])
    entry = next(e for e in yaml.safe_load((BUNDLED_DIR / "rtx-4090.yaml").read_text())["profiles"]
                 if e["gpus"] == 2)
    entry = {**entry, "fit": {"bundles": ["bundle"]}}
    (tmp_path / "prof.yaml").write_text(yaml.safe_dump({"profiles": [entry]}))
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    data["configs"] = [{"gpu": "RTX-4090", "gpus": 2, "max_model_len": 4096, "profile": "prof.yaml"}]
    data["fleet"] = {"pools": [{"config": "2xRTX-4090", "count": 1}]}
    data.pop("power", None)
    if power is not None:
        data["power"] = power
    loaded = scenario_from_dict(data, path=tmp_path / "s.yaml")
    res = simulate(loaded, requests=300)
    return fleet_economics(res, loaded).pools[0], float(res.replicas["utilisation"].mean())


def test_measured_power_is_used_when_present_and_shown(tmp_path) -> None:
    pool, util = _measured_economics(tmp_path, None)  # power.model not set: measured where present
    assert pool.power_basis.startswith("measured: 100-300 W by utilisation (calibration bundle bundle")
    assert pool.power_w == pytest.approx(2 * (100 + 200 * util))
    pool, util = _measured_economics(tmp_path / "m", {"model": "measured"})
    assert pool.power_basis.startswith("measured:")
    pool, util = _measured_economics(tmp_path / "l", {"model": "linear"})  # explicit choice wins
    assert pool.power_basis.startswith("modelled: linear 20-450 W")
    assert pool.power_w == pytest.approx(2 * (20 + 430 * util))


def test_no_measurement_falls_back_to_the_model_and_says_so() -> None:
    econ, _ = _economics(power={"model": "measured"})
    basis = econ.pools[0].power_basis
    assert basis == "modelled: linear 60-350 W by utilisation (no calibration power measurement found)"


def test_step_time_basis_names_the_profile_and_warns_outside_its_fit(tmp_path) -> None:
    import yaml

    def economics(weights: list[float] | None):
        entry = {"gpu": "H100-PCIe", "gpus": 1, "memory_gb": 85.0, "source": "calibrate fit: test"}
        if weights is not None:
            entry["fitted_weights_gb"] = weights
        (tmp_path / "prof.yaml").write_text(yaml.safe_dump({"profiles": [entry]}))
        data = make_scenario().scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        data["configs"] = [{"gpu": "H100-PCIe", "profile": "prof.yaml"}]
        data["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1}]}
        loaded = scenario_from_dict(data, path=tmp_path / "s.yaml")
        return fleet_economics(simulate(loaded, requests=100), loaded).pools[0].service_basis

    assert economics(None) == "calibrate fit: test"
    assert economics([10.0, 20.0]) == "calibrate fit: test"  # the 8B's 16 GB lies inside
    basis = economics([40.0, 65.0])
    assert basis.startswith("calibrate fit: test; note: meta-llama/Meta-Llama-3-8B-Instruct holds 16.1 GB")
    assert "host" in basis
    # a configuration that serves the model FP8 says so; the basis follows the model as it is served
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    data["configs"] = [{"gpu": "H100-PCIe", "quantization": "fp8"}]
    data["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1}]}
    loaded = scenario_from_dict(data, path=tmp_path / "s.yaml")
    fp8 = fleet_economics(simulate(loaded, requests=100), loaded).pools[0].service_basis
    assert "quantized weights (8 bits" in fp8 and "multiply in FP8" in fp8


def test_an_edited_measured_power_is_read_again(tmp_path) -> None:
    """measured_power is cached, but per state of the profile file: an edited fit.power (a TUI session, a
    state file's key) is not served stale (it had been, for the life of the process)."""
    import os

    import yaml

    from planner.measured import measured_power
    from scenarios.schema import ServingConfig

    f = tmp_path / "prof.yaml"

    def write(busy: float, stamp: int) -> None:
        entry = {"gpu": "H100-PCIe", "gpus": 1, "memory_gb": 85.0, "source": "test",
                 "fit": {"power": {"idle_w": 60.0, "busy_w": busy, "source": "test"}}}
        f.write_text(yaml.safe_dump({"profiles": [entry]}))
        os.utime(f, ns=(stamp, stamp))

    cfg = ServingConfig(gpu="H100-PCIe", profile="prof.yaml")
    write(300.0, 10**18)
    first = measured_power(cfg, tmp_path)
    assert first is not None and first.busy_w == 300.0
    write(250.0, 10**18 + 10**9)
    again = measured_power(cfg, tmp_path)
    assert again is not None and again.busy_w == 250.0


def test_already_owned_gpus_by_count_are_charged_no_embodied_carbon_the_rest_are() -> None:
    """carbon.already_owned as GPU -> count: a fleet's first COUNT GPUs of the type carry no new embodied carbon,
    pool by pool; the others are charged.  (A list of names had been the only form: owning two 4090s waived
    the embodied carbon of every 4090 a plan might add.)  Screening's guess charges the same GPUs."""
    from planner.screen import ConfigCurve
    from planner.search import estimate
    from planner.variants import Candidate
    from scenarios.errors import ScenarioError

    per_gpu, _ = embodied_g_per_gpu_hour(make_scenario().scenario, "RTX-4090")
    pools = [{"config": "1xH100-PCIe", "count": 1, "name": "h100"}, {"config": "1xRTX-4090", "count": 3, "name": "rtx"}]
    for owned, charged in (({"RTX-4090": 2}, 1), ({"RTX-4090": 5}, 0), ({"RTX-4090": 0}, 3), (["RTX-4090"], 0),
                           ({"H100-PCIe": 1}, 3)):
        econ, _ = _economics(fleet={"pools": pools}, carbon={"already_owned": owned})
        h100, rtx = econ.pools
        assert rtx.embodied_g_per_hour == pytest.approx(per_gpu * charged), owned
        assert (h100.embodied_g_per_hour == 0) == ("H100-PCIe" in owned), owned
        if charged == 1:
            assert rtx.carbon_basis.endswith("for 1 of 3 GPUs (2 already owned)")
        data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
        data.update(fleet={"pools": pools}, carbon={"already_owned": owned})
        loaded = scenario_from_dict(data)
        cand = Candidate((("1xH100-PCIe", 1), ("1xRTX-4090", 3)), "least_outstanding")
        curves = {name: ConfigCurve(name, 10.0, 10.0) for name, _ in cand.counts}
        guess = estimate(loaded, cand, curves, 0.0, util=0.0).carbon_g_per_hour
        none_owned = estimate(scenario_from_dict({**data, "carbon": {}}), cand, curves, 0.0, util=0.0)
        h100_waived = embodied_g_per_gpu_hour(loaded.scenario, "H100-PCIe")[0] if "H100-PCIe" in owned else 0.0
        assert none_owned.carbon_g_per_hour - guess == pytest.approx(per_gpu * (3 - charged) + h100_waived)
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    for bad, where in (({"RTX-4090": -1}, "carbon.already_owned"), ({"H10": 1}, "carbon.already_owned.H10")):
        data["carbon"] = {"already_owned": bad}
        with pytest.raises(ScenarioError, match=where.replace(".", r"\.")):
            scenario_from_dict(data, "s.yaml")
