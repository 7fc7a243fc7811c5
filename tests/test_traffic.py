"""Workload generation: arrival processes, length distributions, merging and determinism."""

from __future__ import annotations

import json
import math
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.errors import ScenarioError
from scenarios.loader import LoadedScenario, load_scenario, scenario_from_dict
from scenarios.traffic import Arrival, LengthDist, LognormalLength
from sim.lengths import LENGTHS, lognormal_mu, sample_lengths
from sim.traffic import ARRIVALS, Workload, generate_workload


def loaded(classes: list[dict[str, Any]], tmp_path: Path | None = None, **extra: Any) -> LoadedScenario:
    data = {
        "model": "phi-4",
        "configs": [{"gpu": "H100-PCIe"}],
        "traffic": {"classes": classes},
        "fleet": {"pools": [{"config": "1xH100-PCIe"}]},
        **extra,
    }
    if tmp_path is None:
        return scenario_from_dict(data)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_scenario(path)


def gen(ls: LoadedScenario, seed: int = 0, **kw: Any) -> Workload:
    return generate_workload(ls, np.random.default_rng(seed), **kw)


def one(seed: int = 0, **cls: Any) -> Workload:
    """A one-class workload of 100,000 requests."""
    kw = {"requests": 100_000}
    return gen(loaded([{"name": "c", "rate": 20.0, **cls}]), seed, **kw)


def cv2(x: np.ndarray) -> float:
    gaps = np.diff(x)
    return float(gaps.var() / gaps.mean() ** 2)


def test_registries_cover_the_schema() -> None:
    def tags(union: Any) -> list[str]:
        return [m.model_fields["type"].default for m in typing.get_args(typing.get_args(union)[0])]

    assert ARRIVALS.names() == tags(Arrival)
    assert LENGTHS.names() == tags(LengthDist)


# --------------------------------------------------------------------------------------- arrivals
@pytest.mark.parametrize(
    "arrival", [{"type": "poisson"}, {"type": "gamma", "burstiness": 0.3}, {"type": "gamma", "burstiness": 5}]
)
def test_mean_rate(arrival: dict[str, Any]) -> None:
    w = one(arrival=arrival)
    assert len(w) == 100_000
    assert len(w) / w.arrival[-1] == pytest.approx(20.0, rel=0.03)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_cv2(burstiness: float) -> None:
    w = one(arrival={"type": "gamma", "burstiness": burstiness})
    assert cv2(w.arrival) == pytest.approx(1.0 / burstiness, rel=0.08)


def test_poisson_cv2_is_one() -> None:
    assert cv2(one().arrival) == pytest.approx(1.0, rel=0.05)


def test_diurnal_counts_follow_the_profile() -> None:
    rate, amp, period, peak = 50.0, 0.8, 100.0, 25.0
    arrival = {"type": "diurnal", "amplitude": amp, "period_s": period, "peak_s": peak}
    w = gen(loaded([{"name": "c", "rate": rate, "arrival": arrival}]), duration_s=20 * period)
    bins = 10
    counts = np.bincount((w.arrival % period / (period / bins)).astype(int), minlength=bins)
    edges = np.linspace(0, period, bins + 1)
    w_ = 2 * math.pi / period
    integral = rate * (np.diff(edges) + amp / w_ * np.diff(np.sin(w_ * (edges - peak))))
    expected = 20 * integral
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1)
    assert counts.argmax() == 2  # the peak at 25 s lies in bin [20, 30)
    assert len(w) == pytest.approx(rate * 20 * period, rel=0.03)


def test_piecewise_periodic_counts_proportional_to_factor() -> None:
    steps = [(0, 1.0), (10, 3.0), (30, 0.0), (40, 2.0)]
    arrival = {"type": "piecewise", "period_s": 50, "steps": [{"start_s": s, "factor": f} for s, f in steps]}
    w = gen(loaded([{"name": "c", "rate": 10.0, "arrival": arrival}]), duration_s=5000)
    phase = w.arrival % 50
    widths = {0: 10, 10: 20, 30: 10, 40: 10}
    for (start, factor), end in zip(steps, [10, 30, 40, 50], strict=True):
        n = int(np.count_nonzero((phase >= start) & (phase < end)))
        expected = 10.0 * factor * widths[start] * 100
        assert abs(n - expected) <= 5 * math.sqrt(expected), (start, n, expected)
    assert not np.any((phase >= 30) & (phase < 40))


def test_piecewise_without_period_that_ends_yields_fewer_requests() -> None:
    arrival = {"type": "piecewise", "steps": [{"start_s": 0, "factor": 1}, {"start_s": 100, "factor": 0}]}
    w = gen(loaded([{"name": "c", "rate": 5.0, "arrival": arrival}]), requests=10_000)
    assert 350 < len(w) < 650
    assert w.arrival[-1] < 100


def test_requests_duration_and_both() -> None:
    ls = loaded(
        [
            {"name": "a", "rate": 3.0},
            {"name": "b", "rate": 7.0, "arrival": {"type": "gamma", "burstiness": 0.2}},
        ]
    )
    assert len(gen(ls, requests=1234)) == 1234
    w = gen(ls, duration_s=50.0)
    assert w.arrival.max() < 50.0
    assert len(w) == pytest.approx(500, rel=0.3)
    assert len(gen(ls, requests=10, duration_s=1000.0)) == 10
    assert gen(ls, requests=100_000, duration_s=20.0).arrival.max() < 20.0


def test_simulation_section_is_the_default() -> None:
    ls = loaded([{"name": "a", "rate": 3.0}], simulation={"requests": 321})
    assert len(gen(ls)) == 321
    ls = loaded([{"name": "a", "rate": 3.0}], simulation={"duration_s": 30})
    assert gen(ls).arrival.max() < 30
    assert len(gen(loaded([{"name": "a", "rate": 3.0}]))) == 10_000


def test_classes_merge_stably_in_proportion_to_rate() -> None:
    ls = loaded([{"name": "a", "rate": 1.0}, {"name": "b", "rate": 3.0}])
    w = gen(ls, requests=40_000)
    assert w.class_names == ("a", "b")
    assert w.cls.dtype == np.int32
    assert w.class_counts()["b"] / len(w) == pytest.approx(0.75, abs=0.01)
    assert np.all(np.diff(w.arrival) >= 0)


def test_bad_arguments() -> None:
    ls = loaded([{"name": "a", "rate": 3.0}])
    with pytest.raises(ValueError, match=r"requests\(=0\) must be >= 1"):
        gen(ls, requests=0)
    with pytest.raises(ValueError, match=r"duration_s\(=-1.0\) must be > 0"):
        gen(ls, duration_s=-1.0)


# ----------------------------------------------------------------------------------------- traces
TRACE_CSV = "timestamp,prompt_tokens,output_tokens\n103.0,40,4\n100.0,10,1\n100.5,20,2\n101.25,30,3\n"


def trace_class(path: str, **arrival: Any) -> dict[str, Any]:
    return {
        "name": "replay",
        "arrival": {"type": "trace", "path": path, **arrival},
        "prompt_tokens": {"type": "trace"},
        "output_tokens": {"type": "trace"},
    }


def test_trace_replay_is_exact(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TRACE_CSV)
    w = gen(loaded([trace_class("t.csv", time_scale=2.0)], tmp_path), requests=100)
    assert len(w) == 4  # a trace is not looped: fewer than asked
    np.testing.assert_array_equal(w.arrival, [0.0, 1.0, 2.5, 6.0])
    np.testing.assert_array_equal(w.prompt, [10, 20, 30, 40])
    np.testing.assert_array_equal(w.output, [1, 2, 3, 4])
    w = gen(loaded([trace_class("t.csv", time_scale=2.0)], tmp_path), duration_s=2.5)
    np.testing.assert_array_equal(w.arrival, [0.0, 1.0])


def test_trace_jsonl_with_dates_and_other_column_names(tmp_path: Path) -> None:
    rows = [
        {"t": "2024-01-01T00:00:01", "in": 7, "out": 70},
        {"t": "2024-01-01T00:00:00.5", "in": 5, "out": 50},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    cls = trace_class("t.jsonl", time_column="t", prompt_column="in", output_column="out")
    w = gen(loaded([cls], tmp_path), requests=2)
    np.testing.assert_allclose(w.arrival, [0.0, 0.5])
    np.testing.assert_array_equal(w.prompt, [5, 7])
    np.testing.assert_array_equal(w.output, [50, 70])


def test_trace_arrivals_with_sampled_lengths_and_a_second_class(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp\n0\n1\n2\n")
    replay = {
        "name": "replay",
        "arrival": {"type": "trace", "path": "t.csv"},
        "prompt_tokens": {"value": 9, "type": "fixed"},
    }
    w = gen(loaded([replay, {"name": "live", "rate": 10.0}], tmp_path), requests=500)
    assert len(w) == 500
    assert w.class_counts()["replay"] == 3
    assert np.all(w.prompt[w.cls == 0] == 9)


def test_ties_keep_file_order_within_a_class_and_class_order_across(tmp_path: Path) -> None:
    times = (np.arange(1000) * 7) % 20  # 20 distinct times, 50 rows each, interleaved in the file
    rows = "".join(f"{t},{i + 1},1\n" for i, t in enumerate(times))
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n" + rows)
    first, second = trace_class("t.csv"), trace_class("t.csv")
    second["name"] = "again"
    w = gen(loaded([first, second], tmp_path), requests=2000)
    np.testing.assert_array_equal(w.cls, np.tile(np.repeat([0, 1], 50), 20))
    file_order = np.argsort(times, kind="stable") + 1
    np.testing.assert_array_equal(w.prompt[w.cls == 0], file_order)
    np.testing.assert_array_equal(w.prompt[w.cls == 1], file_order)


def test_trace_problems_name_the_arrival_path(tmp_path: Path) -> None:
    source = tmp_path / "s.yaml"
    with pytest.raises(ScenarioError) as info:
        gen(loaded([trace_class("missing.csv")], tmp_path))
    assert info.value.problems == [
        f"{source}: traffic.classes[0].arrival.path: trace file not found: {tmp_path / 'missing.csv'}"
    ]
    (tmp_path / "t.csv").write_text("time,prompt_tokens\n1,2\n")
    with pytest.raises(ScenarioError) as info:
        gen(loaded([trace_class("t.csv")], tmp_path))
    assert info.value.problems == [
        f"{source}: traffic.classes[0].arrival.path: t.csv has no column 'timestamp' (arrival.time_column); "
        "columns: time, prompt_tokens"
    ]
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n1,2,3\nsoon,2,3\n")
    with pytest.raises(ScenarioError, match=r"t.csv line 3: timestamp value 'soon' is not a number"):
        gen(loaded([trace_class("t.csv")], tmp_path))


# ---------------------------------------------------------------------------------------- lengths
def lengths(dist: dict[str, Any], n: int = 100_000, seed: int = 0) -> np.ndarray:
    cls = loaded([{"name": "c", "rate": 1.0, "prompt_tokens": dist}]).scenario.traffic.classes[0]
    return sample_lengths(cls.prompt_tokens, np.random.default_rng(seed), n)


def test_lognormal_mean_matches_target_with_wide_bounds() -> None:
    x = lengths({"type": "lognormal", "mean": 200, "sigma": 0.8, "min": 1, "max": 1_000_000})
    assert x.dtype == np.int64
    assert x.mean() == pytest.approx(200, rel=0.02)
    assert np.median(x) == pytest.approx(math.exp(lognormal_mu(200, 0.8)), rel=0.03)


def test_lognormal_tight_bounds_resample_inside() -> None:
    x = lengths({"type": "lognormal", "mean": 200, "sigma": 1.5, "min": 100, "max": 300})
    assert x.min() >= 100 and x.max() <= 300
    assert np.mean((x == 100) | (x == 300)) < 0.02  # redrawn, not piled up on the bounds by clipping
    y = lengths({"type": "lognormal", "mean": 5, "sigma": 0.1, "min": 1000, "max": 1001}, n=100)
    assert set(np.unique(y)) <= {1000, 1001}  # hopeless bounds: clipped after the redraw cap


def test_empirical_histogram_frequencies() -> None:
    x = lengths({"type": "empirical", "edges": [1, 10, 100, 1000], "weights": [1, 2, 1]})
    freq = np.bincount(np.searchsorted([10, 100], x, side="right"), minlength=3) / x.size
    np.testing.assert_allclose(freq, [0.25, 0.5, 0.25], atol=0.01)
    assert x.min() >= 1 and x.max() <= 999
    assert x[x < 10].mean() == pytest.approx(5.0, rel=0.02)  # uniform in [1, 10)


def test_fixed_and_prefix_cache() -> None:
    w = one(prompt_tokens={"type": "fixed", "value": 5000}, prefix_cache_hit=0.9999)
    assert np.all(w.prompt == 5000)
    assert np.all(w.cached == 4999)
    w = one(prefix_cache_hit=0.3)
    np.testing.assert_array_equal(w.cached, np.floor(w.prompt * 0.3).astype(np.int64))


def test_lognormal_mu_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"mean\(=0\) must be > 0"):
        lognormal_mu(0, 1.0)
    assert lognormal_mu(math.e, 0.0 + 1.0) == pytest.approx(0.5)
    assert LognormalLength(mean=10).sigma == 1.0


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_same_workload_different_seed_differs() -> None:
    ls = loaded(
        [
            {"name": "a", "rate": 2.0},
            {"name": "b", "rate": 1.0, "arrival": {"type": "diurnal", "period_s": 60}},
        ]
    )
    a, b, c = gen(ls, 7, requests=5000), gen(ls, 7, requests=5000), gen(ls, 8, requests=5000)
    for field in ("arrival", "cls", "prompt", "output", "cached"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.arrival, c.arrival)
    assert not np.array_equal(a.prompt, c.prompt)


def test_identical_classes_get_independent_draws() -> None:
    w = gen(loaded([{"name": "a", "rate": 2.0}, {"name": "b", "rate": 2.0}]), requests=2000)
    a, b = w.arrival[w.cls == 0], w.arrival[w.cls == 1]
    assert not np.array_equal(a[:100], b[:100])
    assert not np.array_equal(w.prompt[w.cls == 0][:100], w.prompt[w.cls == 1][:100])


def test_adding_a_class_leaves_the_others_draws_unchanged() -> None:
    alone = gen(loaded([{"name": "a", "rate": 2.0}]), 3, duration_s=500)
    both = gen(loaded([{"name": "z", "rate": 5.0}, {"name": "a", "rate": 2.0}]), 3, duration_s=500)
    mask = both.cls == 1
    np.testing.assert_array_equal(alone.arrival, both.arrival[mask])
    np.testing.assert_array_equal(alone.prompt, both.prompt[mask])


def test_global_numpy_seed_is_not_used() -> None:
    ls = loaded([{"name": "a", "rate": 2.0}])
    np.random.seed(1)
    a = gen(ls, requests=100)
    np.random.seed(2)
    b = gen(ls, requests=100)
    np.testing.assert_array_equal(a.arrival, b.arrival)


def test_a_million_requests_in_well_under_a_second() -> None:
    ls = loaded(
        [
            {"name": "a", "rate": 10.0},
            {
                "name": "b",
                "rate": 5.0,
                "arrival": {"type": "gamma", "burstiness": 0.5},
                "prefix_cache_hit": 0.5,
            },
            {"name": "c", "rate": 2.0, "arrival": {"type": "diurnal", "period_s": 600}},
        ]
    )
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        w = gen(ls, requests=1_000_000)
        best = min(best, time.perf_counter() - start)
    assert len(w) == 1_000_000
    assert best < 1.0


# ------------------------------------------------------------------------------------- properties
arrivals = st.one_of(
    st.just({"type": "poisson"}),
    st.builds(lambda b: {"type": "gamma", "burstiness": b}, st.floats(0.05, 20)),
    st.builds(
        lambda a, p: {"type": "diurnal", "amplitude": a, "period_s": p, "peak_s": p / 3},
        st.floats(0, 1),
        st.floats(1, 1000),
    ),
    st.builds(
        lambda f: {
            "type": "piecewise",
            "period_s": 30,
            "steps": [{"start_s": 0, "factor": f}, {"start_s": 10, "factor": 1}],
        },
        st.floats(0, 5),
    ),
)


@st.composite
def lognormals(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(1, 2000))
    hi = draw(st.integers(lo, lo + 5000))
    return {
        "type": "lognormal",
        "mean": draw(st.floats(1, 5000)),
        "sigma": draw(st.floats(0.05, 3)),
        "min": lo,
        "max": hi,
    }


@settings(max_examples=60, deadline=None)
@given(
    arrival=arrivals,
    prompt=lognormals(),
    output=lognormals(),
    rate=st.floats(0.01, 1000),
    hit=st.floats(0, 0.999),
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**32),
)
def test_workload_invariants(
    arrival: dict[str, Any],
    prompt: dict[str, Any],
    output: dict[str, Any],
    rate: float,
    hit: float,
    n: int,
    seed: int,
) -> None:
    cls = {"name": "c", "rate": rate, "arrival": arrival, "prompt_tokens": prompt, "output_tokens": output}
    w = gen(loaded([cls, {"name": "d", "rate": 1.0}]), seed, requests=n)
    assert len(w) == n
    assert w.arrival.dtype == np.float64 and np.all(np.diff(w.arrival) >= 0) and w.arrival[0] >= 0
    mine = w.cls == 0
    assert np.all((w.prompt[mine] >= prompt["min"]) & (w.prompt[mine] <= prompt["max"]))
    assert np.all((w.output[mine] >= output["min"]) & (w.output[mine] <= output["max"]))
    assert np.all((w.cached >= 0) & (w.cached < w.prompt))
    assert np.all(w.prompt >= 1) and np.all(w.output >= 1)


def test_trace_values_beyond_any_request_or_clock_are_named(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n0,10,10\n1,1e30,10\n")
    with pytest.raises(ScenarioError, match=r"t.csv line 3: prompt_tokens value '1e30' is out of range "
                                            r"\(at most 10,000,000\)"):
        gen(loaded([trace_class("t.csv")], tmp_path))
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n0,10,10\n1e308,10,10\n")
    with pytest.raises(ScenarioError, match=r"t.csv line 3: timestamp value '1e308' is out of range"):
        gen(loaded([trace_class("t.csv")], tmp_path))
