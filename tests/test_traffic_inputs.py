"""Traffic inputs the workload generator must refuse with one clear line, or must survive cheaply.

Each test pins a problem found by fuzzing scenario files: bad trace token counts, weights whose sum
overflows, a lognormal sigma that overflows, degenerate gamma burstiness, piecewise steps that are too
far, too fast or all idle, and a rate given beside a trace.  (tests/test_traffic.py holds the behaviour
for valid inputs.)
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import sim.traffic
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import LoadedScenario, load_scenario
from sim.lengths import sample_lengths
from sim.traffic import Workload, generate_workload


def scenario(tmp_path: Path, classes: list[dict[str, Any]], **traffic: Any) -> LoadedScenario:
    data = {
        "model": "phi-4",
        "configs": [{"gpu": "H100-PCIe"}],
        "traffic": {"classes": classes, **traffic},
        "fleet": {"pools": [{"config": "1xH100-PCIe"}]},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    return load_scenario(tmp_path / "s.yaml")


def problems(tmp_path: Path, classes: list[dict[str, Any]], **traffic: Any) -> list[str]:
    """The problem lines of a scenario that must not load, with the file's path cut to ``s.yaml``."""
    with pytest.raises(ScenarioError) as info:
        scenario(tmp_path, classes, **traffic)
    return [p.replace(str(tmp_path / "s.yaml"), "s.yaml") for p in info.value.problems]


def gen(ls: LoadedScenario, seed: int = 0, **kw: Any) -> Workload:
    return generate_workload(ls, np.random.default_rng(seed), **kw)


def replay(path: str) -> dict[str, Any]:
    return {
        "name": "replay",
        "arrival": {"type": "trace", "path": path},
        "prompt_tokens": {"type": "trace"},
        "output_tokens": {"type": "trace"},
    }


def piecewise(rate: float, *steps: tuple[float, float], **arrival: Any) -> dict[str, Any]:
    spec = [{"start_s": s, "factor": f} for s, f in steps]
    return {"name": "c", "rate": rate, "arrival": {"type": "piecewise", "steps": spec, **arrival}}


# ------------------------------------------------------------------------------ trace token counts
@pytest.mark.parametrize("value", ["-3", "0", "0.3", "2.5", "true", "-0.0"])
def test_csv_token_counts_must_be_whole_numbers_of_at_least_one(tmp_path: Path, value: str) -> None:
    (tmp_path / "t.csv").write_text(f"timestamp,prompt_tokens,output_tokens\n0,10,5\n1,7,{value}\n")
    with pytest.raises(ScenarioError) as info:
        gen(scenario(tmp_path, [replay("t.csv")]), requests=2)
    assert info.value.problems == [
        f"{tmp_path / 's.yaml'}: traffic.classes[0].arrival.path: t.csv line 3: output_tokens value {value!r} "
        "is not a token count (a whole number >= 1)"
    ]


@pytest.mark.parametrize("value", [True, False, 0, -4, 0.3, 1.5])
def test_jsonl_token_counts_refuse_booleans_fractions_and_non_positive(tmp_path: Path, value: Any) -> None:
    rows = [{"timestamp": 0, "prompt_tokens": 3, "output_tokens": 4}, {"timestamp": 1, "prompt_tokens": value}]
    rows[1]["output_tokens"] = 2
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ScenarioError) as info:
        gen(scenario(tmp_path, [replay("t.jsonl")]), requests=2)
    assert info.value.problems == [
        f"{tmp_path / 's.yaml'}: traffic.classes[0].arrival.path: t.jsonl line 2: prompt_tokens value {value!r} "
        "is not a token count (a whole number >= 1)"
    ]


def test_integral_token_counts_are_kept_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n0,12.0,1\n1,1e3,2.00\n2, 7 ,3\n")
    w = gen(scenario(tmp_path, [replay("t.csv")]), requests=3)
    np.testing.assert_array_equal(w.prompt, [12, 1000, 7])
    np.testing.assert_array_equal(w.output, [1, 2, 3])
    rows = [{"timestamp": 0, "prompt_tokens": 5.0, "output_tokens": 9}]
    (tmp_path / "t.jsonl").write_text(json.dumps(rows[0]) + "\n")
    w = gen(scenario(tmp_path, [replay("t.jsonl")]), requests=1)
    assert (w.prompt.tolist(), w.output.tolist()) == ([5], [9])


def test_an_integer_beyond_any_float_is_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "prompt_tokens": 1' + "0" * 400 + ', "output_tokens": 1}\n')
    with pytest.raises(ScenarioError, match=r"t.jsonl line 1: prompt_tokens value 10+ is out of range "
                                            r"\(at most 10,000,000\)$"):
        gen(scenario(tmp_path, [replay("t.jsonl")]), requests=1)


# ------------------------------------------------------------------------------- empirical weights
def test_empirical_weights_whose_sum_overflows_draw_like_equal_weights(tmp_path: Path) -> None:
    def draws(weights: list[float]) -> np.ndarray:
        dist = {"type": "empirical", "edges": [1, 2, 3], "weights": weights}
        cls = scenario(tmp_path, [{"name": "c", "rate": 1.0, "prompt_tokens": dist}]).scenario.traffic.classes[0]
        return sample_lengths(cls.prompt_tokens, np.random.default_rng(3), 20_000)

    huge = draws([1e308, 1e308])
    np.testing.assert_array_equal(huge, draws([1.0, 1.0]))
    assert np.mean(huge == 1) == pytest.approx(0.5, abs=0.02)
    assert np.mean(draws([1e308, 5e307]) == 1) == pytest.approx(2 / 3, abs=0.02)


# -------------------------------------------------------------------------------- lognormal sigma
def test_a_lognormal_sigma_beyond_its_ceiling_is_refused(tmp_path: Path) -> None:
    # sigma 1e308 had passed `planner check` and drawn NaN lengths that `planner simulate` crashed on
    dist: dict[str, Any] = {"type": "lognormal", "mean": 300, "sigma": 1e308, "min": 8, "max": 2048}
    assert problems(tmp_path, [{"name": "c", "rate": 1.0, "prompt_tokens": dist}]) == [
        "s.yaml: traffic.classes[0].prompt_tokens.sigma: Input should be less than or equal to 5 (got 1e+308)"
    ]
    dist["sigma"] = 5.0  # the ceiling itself draws lengths within the bounds
    lengths = gen(scenario(tmp_path, [{"name": "c", "rate": 1.0, "prompt_tokens": dist}]), requests=200).prompt
    assert lengths.min() >= 8 and lengths.max() <= 2048


# ------------------------------------------------------------------------------- gamma burstiness
def test_gamma_burstiness_below_its_floor_is_refused(tmp_path: Path) -> None:
    cls: dict[str, Any] = {"name": "c", "rate": 4.0, "arrival": {"type": "gamma", "burstiness": 1e-300}}
    assert problems(tmp_path, [cls]) == [
        "s.yaml: traffic.classes[0].arrival.burstiness: must be >= 0.001: below that a gamma process is "
        "degenerate (nearly every gap 0, a rare few enormous) (got 1e-300)"
    ]
    cls["arrival"]["burstiness"] = 1e-3  # the floor itself is fine
    assert len(gen(scenario(tmp_path, [cls]), requests=500)) == 500


# --------------------------------------------------------------------------------- piecewise steps
def test_a_step_starting_beyond_max_seconds_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, [piecewise(4.0, (0, 0), (1e12, 1))]) == [
        "s.yaml: traffic.classes[0].arrival.steps[1].start_s: Input should be less than or equal to 1000000000 "
        "(got 1000000000000.0)"
    ]
    assert problems(tmp_path, [piecewise(4.0, (0, 1), period_s=1e10)]) == [
        "s.yaml: traffic.classes[0].arrival.period_s: Input should be less than or equal to 1000000000 "
        "(got 10000000000.0)"
    ]


@pytest.mark.parametrize("start_s", [1e7, 1e9])
def test_a_long_idle_stretch_costs_what_the_requests_cost(tmp_path: Path, start_s: float) -> None:
    """The horizon doubles past the idle stretch; what is drawn follows the 500 requests, not the seconds."""
    ls = scenario(tmp_path, [piecewise(4.0, (0, 0), (start_s, 1))])
    tracemalloc.start()
    try:
        w = gen(ls, requests=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(w) == 500 and w.arrival[0] >= start_s
    assert len(w) / (w.arrival[-1] - start_s) == pytest.approx(4.0, rel=0.2)
    assert peak < 20e6  # bytes; drawing every arrival up to the doubled horizon took ~0.4 GB at 1e7 s


def test_rate_times_factor_is_capped(tmp_path: Path) -> None:
    assert problems(tmp_path, [piecewise(4.0, (0, 1e7))]) == [
        "s.yaml: traffic.classes[0]: arrival.steps[0].factor(=1e+07) x rate(=4) is 4e+07 requests/s; "
        "at most 1e+06 (lower the factor or the rate)"
    ]
    shared = piecewise(4.0, (0, 1), (10, 1e6))
    shared["share"] = shared.pop("rate")
    assert problems(tmp_path, [shared], total_rate=2.0) == [
        "s.yaml: traffic: class 'c': arrival.steps[1].factor(=1e+06) x share of total_rate(=2) is 2e+06 "
        "requests/s; at most 1e+06 (lower the factor or the rate)"
    ]
    assert len(gen(scenario(tmp_path, [piecewise(4.0, (0, 250_000))]), requests=300)) == 300  # exactly 1e6


@pytest.mark.parametrize("period_s", [None, 60.0])
def test_steps_that_are_all_idle_are_refused(tmp_path: Path, period_s: float | None) -> None:
    extra = {} if period_s is None else {"period_s": period_s}
    assert problems(tmp_path, [piecewise(4.0, (0, 0), (30, 0), **extra)]) == [
        "s.yaml: traffic.classes[0].arrival.steps: every step's factor is 0, so no requests would ever arrive; "
        "give one a factor > 0"
    ]


def test_steps_whose_rate_underflows_to_zero_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, [piecewise(1e-300, (0, 1e-300))]) == [
        "s.yaml: traffic.classes[0]: rate(=1e-300) x every arrival.steps factor is 0 requests/s, "
        "so no requests would ever arrive"
    ]


def test_duration_guard_counts_a_process_that_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A piecewise profile that stops still generates everything before it stops: the guard counts it."""
    monkeypatch.setattr(sim.traffic, "MAX_REQUESTS", 1000)
    ls = scenario(tmp_path, [piecewise(100.0, (0, 1), (1000, 0))])
    with pytest.raises(FleetPlannerError, match=r"duration_s\(=100.0\) would generate ~1e\+04 requests"):
        gen(ls, duration_s=100.0)
    assert len(gen(ls, duration_s=5.0)) == pytest.approx(500, abs=100)


# --------------------------------------------------------------------------------- trace and rate
@pytest.mark.parametrize(("field", "traffic"), [("rate", {}), ("share", {"total_rate": 10.0})])
def test_a_rate_beside_a_trace_is_refused(tmp_path: Path, field: str, traffic: dict[str, Any]) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n0,10,5\n1,7,3\n")
    assert problems(tmp_path, [{**replay("t.csv"), field: 4.0}], **traffic) == [
        f"s.yaml: traffic.classes[0]: {field}(=4) cannot be set with arrival type 'trace': the trace's times "
        "set the rate (speed it up or slow it down with arrival.time_scale)"
    ]
