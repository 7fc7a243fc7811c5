"""Prices and owned-hardware arithmetic, checked against the seeds' worked examples."""

from __future__ import annotations

import pytest
from conftest import make_scenario

from planner.pricing import CATALOGUES, break_even_hours, fleet_costs, gpu_cost, owned_hourly
from scenarios.errors import FleetPlannerError
from scenarios.loader import scenario_from_dict


def test_seed_002_roi_break_even() -> None:
    # A100: $10,000, 250 W at $0.16/kWh, rented at $1.65/h -> ~6,211 h (~259 days)
    a100 = break_even_hours(10_000, 1.65, 0.25 * 0.16)
    assert a100 == pytest.approx(6211, abs=1)
    assert a100 / 24 == pytest.approx(259, abs=1)
    # 2 x RTX 4090: $3,500, 2 x 300 W -> ~2,252 h (~94 days)
    rtx = break_even_hours(2 * 1750, 1.65, 2 * 0.3 * 0.16)
    assert rtx == pytest.approx(2252, abs=1)
    assert rtx / 24 == pytest.approx(94, abs=1)
    # the 4090 rent that breaks even as fast as the A100: ~$0.66/h
    assert 3500 / a100 + 2 * 0.3 * 0.16 == pytest.approx(0.66, abs=0.005)


def test_seed_001_amortisation_and_cost_per_token() -> None:
    assert owned_hourly(1600, 3) == pytest.approx(0.061, abs=0.0005)  # 26,280 hours
    assert owned_hourly(3600, 3) == pytest.approx(0.137, abs=0.0005)
    # cloud H100 at $2.69/h serving 600 tok/s -> $1.24 per million tokens
    assert pytest.approx(1.24, abs=0.01) == 2.69 / 3600 * 1e6 / 600
    # 4 x 4090 self-hosted: $0.55 + $0.80 per hour at 2,400 tok/s -> $0.156 per million
    assert (4 * owned_hourly(3600, 3) + 0.80) / 3600 * 1e6 / 2400 == pytest.approx(0.156, abs=0.001)


def test_break_even_refuses_a_loss() -> None:
    with pytest.raises(ValueError, match="must exceed running cost"):
        break_even_hours(1000, 0.1, 0.2)


def test_catalogues_have_sources_and_dates() -> None:
    for cat in CATALOGUES.values():
        assert cat.source and cat.date
    assert CATALOGUES["alternative-2025-05"].prices["RTX-4090"].on_demand == 0.25
    assert CATALOGUES["alternative-2025-05"].prices["H100-PCIe"].on_demand == 2.00


def _scenario(pricing: dict) -> object:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["pricing"] = pricing
    return scenario_from_dict(data).scenario


def test_gpu_cost_precedence_owned_then_quote_then_catalogue(tmp_path) -> None:
    s = _scenario(
        {
            "catalogue": "hyperscaler-2025-05",
            "overrides": {"RTX-4090": 0.4},
            "owned": {"A100": {"purchase_usd": 8760 * 3, "lifetime_years": 3, "overhead_usd_per_hour": 0.5}},
        }
    )
    assert gpu_cost(s, "H100-PCIe", tmp_path).usd_per_hour == 9.0
    assert gpu_cost(s, "RTX-4090", tmp_path).usd_per_hour == 0.4
    owned = gpu_cost(s, "A100", tmp_path)
    assert owned.owned and owned.usd_per_hour == pytest.approx(1.5)


def test_owned_gpus_up_to_their_count_then_rent(tmp_path) -> None:
    # 3 RTX 4090s owned at $1/h each; the fleet's first three are owned (pool by pool), the rest rent at $0.4
    s = _scenario({"overrides": {"RTX-4090": 0.4}, "owned": {"RTX-4090": {"purchase_usd": 8760 * 3, "count": 3}}})
    first, h100, second = fleet_costs(s, tmp_path, [("RTX-4090", 2), ("H100-PCIe", 1), ("RTX-4090", 4)])
    assert (first.usd_per_hour, first.owned_gpus) == (pytest.approx(2.0), 2) and first.basis.startswith("owned: ")
    assert h100.owned_gpus == 0 and h100.usd_per_hour == gpu_cost(s, "H100-PCIe", tmp_path).usd_per_hour
    assert (second.usd_per_hour, second.owned_gpus) == (pytest.approx(1.0 + 3 * 0.4), 1)
    assert second.basis == "1 owned: $26,280 over 3 y + $0.0/h; 3 rented: scenario quote"
    unlimited = _scenario({"owned": {"RTX-4090": {"purchase_usd": 8760 * 3}}})
    assert fleet_costs(unlimited, tmp_path, [("RTX-4090", 6)])[0].owned_gpus == 6


def test_a_fleet_pays_electricity_for_its_owned_gpus_only(tmp_path) -> None:
    from planner.costing import fleet_economics
    from sim.simulation import simulate

    def rtx_pool(owned: dict) -> dict:
        data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
        data["pricing"] = {"overrides": {"RTX-4090": 0.4} if owned else {}, "electricity_usd_per_kwh": 1.0,
                           "pue": 1.5, "owned": {"RTX-4090": {"purchase_usd": 8760 * 3, **owned}}}
        loaded = scenario_from_dict(data)
        return next(p for p in fleet_economics(simulate(loaded, requests=200), loaded).pools if p.name == "rtx")

    one, both = rtx_pool({"count": 1}), rtx_pool({})
    assert one.gpus == 2 and one.power_w == both.power_w  # the same fleet and simulation, priced two ways
    assert both.usd_per_hour == pytest.approx(2 * 1.0 + one.kwh_per_hour * 1.5 * 1.0)
    assert one.usd_per_hour == pytest.approx(1.0 + 0.4 + one.kwh_per_hour / 2 * 1.5 * 1.0)


def test_missing_price_is_a_clear_error(tmp_path) -> None:
    s = _scenario({"catalogue": "alternative-2025-05", "kind": "spot"})
    with pytest.raises(FleetPlannerError, match=r"no spot price for H100-PCIe; give one in pricing\.overrides"):
        gpu_cost(s, "H100-PCIe", tmp_path)
    s = _scenario({"catalogue": "nope"})
    with pytest.raises(FleetPlannerError, match="unknown price catalogue 'nope'; built in: default"):
        gpu_cost(s, "H100-PCIe", tmp_path)


def test_price_file_catalogue(tmp_path) -> None:
    f = tmp_path / "quotes.yaml"
    f.write_text("source: our broker\ndate: 2026-11\nprices:\n  H100-PCIe: {on_demand: 1.8, spot: 1.1}\n")
    s = _scenario({"catalogue": str(f), "kind": "spot"})
    cost = gpu_cost(s, "H100-PCIe", tmp_path)
    assert cost.usd_per_hour == 1.1 and "our broker" in cost.basis


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe\x00bad", "not UTF-8 text (byte 0)"),
        (b"prices:\n  H100-PCIe: {on_demand: cheap}\n", "prices.H100-PCIe.on_demand: expected USD per GPU-hour "
                                                         "(a number >= 0), got 'cheap'"),
        (b"prices:\n  H100-PCIe: {on_demand: 1.0, spot: -1}\n", "prices.H100-PCIe.spot: expected USD per GPU-hour"),
        (b"prices:\n  H100-PCIe: [1]\n", "prices.H100-PCIe: expected a mapping with prices:"),
        (b"", "expected a mapping with prices: {GPU: {on_demand: USD, spot: USD}}"),
        (b"prices: {H100-PCIe: [1\n", "line 2, column 1: invalid YAML: "),
    ],
)
def test_a_bad_price_file_is_named_with_the_field(tmp_path, content: bytes, needle: str) -> None:
    f = tmp_path / "quotes.yaml"
    f.write_bytes(content)
    with pytest.raises(FleetPlannerError) as err:
        gpu_cost(_scenario({"catalogue": str(f)}), "H100-PCIe", tmp_path)
    assert str(err.value).startswith(f"pricing.catalogue: {f}: ") and needle in str(err.value)


def test_planner_check_names_a_pricing_problem_once_as_pricing(tmp_path) -> None:
    from sim.fleet import check_fits

    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["pricing"] = {"catalogue": str(tmp_path / "quotes.yaml")}
    (tmp_path / "quotes.yaml").write_text("prices: 3\n")
    loaded = scenario_from_dict(data)
    problems = check_fits(loaded)
    assert len(problems) == 1 and ": pricing.catalogue: " in problems[0] and ".profile" not in problems[0], problems
