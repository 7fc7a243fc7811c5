"""Prediction bands (:mod:`calibrate.bands`): a profile moved along its fit's uncertainty axes, the range
that leaves each prediction, and ``planner validate --band``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_validate_cli import result, write

from calibrate.bands import Axis, band, inside, moved, parse_axes, profile_axes
from calibrate.fit import FitPoint
from calibrate.fitplan import resolve_points
from calibrate.importer import load_runs
from planner.cli import main
from sim.profiles import BUNDLED_DIR, bundled_profiles

H100 = bundled_profiles()[("H100-PCIe", 1)]


def _point(tmp_path: Path, **over: Any) -> FitPoint:
    (point,) = resolve_points(load_runs([write(tmp_path, "phi.json", result(**over))]))
    return point


def test_a_move_is_made_in_the_fitted_space_and_stops_at_the_bounds() -> None:
    up = moved(H100, {"compute_eff": math.log(1.2), "frontend_s": -math.log(2.0)}, 1.0)
    assert up.compute_eff == pytest.approx(min(H100.compute_eff * 1.2, 1.0))
    assert up.frontend_s == pytest.approx(H100.frontend_s / 2)
    down = moved(H100, {"compute_eff": math.log(1.2)}, -1.0)
    assert down.compute_eff == pytest.approx(H100.compute_eff / 1.2)
    assert moved(H100, {"compute_eff": 5.0}, 1.0).compute_eff == 1.0  # its upper bound
    assert moved(H100, {"comm_eff": 1.0, "no_such_field": 1.0}, 1.0) == H100  # no link terms at tp=1


def test_the_band_brackets_the_prediction_and_widens_with_the_uncertainty(tmp_path: Path) -> None:
    point = _point(tmp_path, request_rate=8.0, total_input_tokens=60000)  # prefill-heavy: compute matters
    from calibrate.replay import replay

    center = replay(point.run, point.model, point.gpu, H100, seeds=(0,)).metrics
    narrow = band(point, H100, [Axis({"compute_eff": 0.05})], center, seeds=(0,))
    wide = band(point, H100, [Axis({"compute_eff": 0.4})], center, seeds=(0,))
    for k in ("median_ttft_ms", "p90_ttft_ms"):
        assert narrow[k][0] <= center[k] <= narrow[k][1]
        assert wide[k][0] < narrow[k][0] and wide[k][1] > narrow[k][1]
        # asymmetric: a slower prefill lengthens TTFT more than a faster one shortens it
        assert wide[k][1] - center[k] > center[k] - wide[k][0]
    # an axis the run does not feel (link terms of a single GPU) leaves the prediction itself
    unfelt = band(point, H100, [Axis({"comm_latency_s": 1.0})], center, seeds=(0,))
    assert unfelt == {k: [v, v] for k, v in center.items()}
    # an axis the runs allow no way up: the band's top is the prediction; half way down, a narrower bottom
    cut = band(point, H100, [Axis({"compute_eff": -0.4}, (0.5, 0.0))], center, seeds=(0,))
    for k in ("median_ttft_ms", "p90_ttft_ms"):
        assert cut[k][1] == center[k] and wide[k][0] < cut[k][0] < center[k]


def test_profile_axes_come_from_the_fit_record(tmp_path: Path) -> None:
    # every bundled fitted profile records its axes; a configuration without an entry has none
    axes = profile_axes("H100-PCIe", 1)
    assert axes and all(isinstance(v, float) for v in axes[0].moves.values())
    assert all(0.0 <= r <= 1.0 for a in axes for r in a.reach)
    assert profile_axes("RTX-4090", 3) == [] and profile_axes("L40S", 1) == []
    entry = yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())["profiles"][0]
    entry["fit"]["axes"] = [{"moves": {"compute_eff": 0.3}, "reach": [1.0, 0.25]}, {"moves": {"mem_eff": 0.1}}]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"profiles": [entry]}))
    mine = [Axis({"compute_eff": 0.3}, (1.0, 0.25)), Axis({"mem_eff": 0.1}, (1.0, 1.0))]
    assert profile_axes("H100-PCIe", 1, str(path)) == mine
    assert profile_axes("H100-PCIe", 1, "mine.yaml", tmp_path) == mine


def test_validate_band_reports_the_range_and_whether_the_measured_value_is_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())["profiles"][0]
    entry["fit"]["axes"] = [{"moves": {"compute_eff": 0.3, "frontend_s": 0.2}, "reach": [1.0, 1.0]},
                            {"moves": {"mem_eff": 0.1}, "reach": [1.0, 1.0]}]
    # an entry written by hand (no fit record) has no axes
    plain = {k: v for k, v in entry.items() if k not in ("fit", "residuals")} | {"gpu": "L40S", "memory_gb": 47.7}
    prof = tmp_path / "mine.yaml"
    prof.write_text(yaml.safe_dump({"profiles": [entry, plain]}))
    runs = write(tmp_path, "runs.jsonl", result(), result(request_rate=1.0, gpu_name="NVIDIA L40S"))
    assert main(["validate", runs, "--profile", str(prof), "--band", "--seeds", "1", "--json",
                 str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    recs = json.loads((tmp_path / "v.json").read_text())
    h100, l40s = recs
    for k, (lo, hi) in h100["band"].items():
        assert lo < h100["predicted"][k] < hi or (lo == h100["predicted"][k] == hi), k
    assert inside(h100, "median_ttft_ms") == (h100["band"]["median_ttft_ms"][0] <= 38.0
                                              <= h100["band"]["median_ttft_ms"][1])
    assert l40s["band"] is None and inside(l40s, "median_ttft_ms") is None
    assert "measured inside the band: req/s" in out and "no band for 1xNVIDIA L40S" in out
    # without --band the records keep exactly the documented keys
    main(["validate", runs, "--profile", str(prof), "--seeds", "1", "--json", str(tmp_path / "plain.json")])
    assert all("band" not in r for r in json.loads((tmp_path / "plain.json").read_text()))


def test_a_model_the_calibration_never_showed_gets_a_band_that_says_so(shared_measurements: Path) -> None:
    """Fitted on the 1.5B alone, the RTX 4090 box's prefill compute is barely pinned (the 8B's saturation
    hangs on it) and the host's launch cost is pinned firmly.  The 8B's TTFT band must be wide where it leans
    on compute (32 req/s: long queues of prefills) and hold the measured median; a 1.5B run's stays narrow."""
    from calibrate.fitplan import FitOptions, fit_config
    from calibrate.validation import validate_points

    points = [p for p in resolve_points(load_runs([shared_measurements], client_seed=42))
              if p.run.hardware_key == ("RTX-4090", 1)]
    options = FitOptions(seeds=(0,), max_nfev=20, reserve_grid=())
    small = [p for p in points if "1.5B" in p.run.model_id]
    fit = fit_config(small, options)
    axes = parse_axes(fit.extra["axes"], "fit")
    big = sorted((p for p in points if "8B" in p.run.model_id and p.run.request_rate in (1.0, 32.0)),
                 key=lambda p: p.run.request_rate)
    test = [*big, small[0]]
    recs = validate_points(test, lambda run: fit.profile, seeds=(0,))
    widths = []
    for p, rec in zip(test, recs, strict=True):
        rec["band"] = band(p, fit.profile, axes, rec["predicted"], seeds=(0,))
        lo, hi = rec["band"]["median_ttft_ms"]
        widths.append((p.run.model_id, p.run.request_rate, hi / lo))
        if "8B" in p.run.model_id:
            assert inside(rec, "median_ttft_ms"), (rec["band"], rec["measured"])
    (_, _, slow), (_, _, busy), (_, _, own) = widths
    assert busy > 3.0 and busy > slow and own < 1.6, widths


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        ([{"moves": {"compute_eff": "abc"}}],
         "profiles[0].fit.axes[0].moves.compute_eff: expected a number, got 'abc'"),
        ("nonsense", "profiles[0].fit.axes: expected a list of axes, got 'nonsense'"),
        ([0.3], "profiles[0].fit.axes[0]: expected {moves: {parameter: move}, reach: [minus, plus]}, got 0.3"),
        ([{"moves": {}, "reach": [1.0, 2.0]}],
         "profiles[0].fit.axes[0].reach: expected [minus, plus], each between 0 and 1, got [1.0, 2.0]"),
    ],
)
def test_a_malformed_axes_record_is_a_one_line_error_before_any_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], axes: object, expected: str
) -> None:
    entry = yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())["profiles"][0]
    entry["fit"]["axes"] = axes
    prof = tmp_path / "bad.yaml"
    prof.write_text(yaml.safe_dump({"profiles": [entry]}))
    runs = write(tmp_path, "runs.json", result())
    assert main(["validate", runs, "--profile", str(prof), "--band", "--seeds", "1"]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"error: {prof}: {expected}" and "replaying" not in out
    from calibrate.cli import main as calibrate_main

    assert calibrate_main(["show", str(prof)]) == 2
    assert capsys.readouterr().err.strip().endswith(expected.replace("profiles[0]", "1xH100-PCIe"))


def test_calibrate_show_names_the_longest_axis_as_factors_with_its_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from calibrate.cli import main as calibrate_main

    entry = yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())["profiles"][0]
    entry["fit"]["axes"] = [{"moves": {"per_layer_s": 25.0, "step_overhead_s": math.log(0.5)}, "reach": [1.0, 0.25]},
                            {"moves": {"mem_eff": 0.05}, "reach": [1.0, 1.0]}]
    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump({"profiles": [entry]}))
    assert calibrate_main(["show", str(prof), "--no-residuals"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("2 uncertainty axes (`planner validate --band` replays along them); the longest moves together (and "
            "the other way): per_layer_s ×>1000, step_overhead_s ×0.5; the runs allow 25% of it this way, 100% "
            "the other") in out


def test_fold_band_rows_count_the_measured_values_inside_and_the_widths() -> None:
    from calibrate.fidelity import band_markdown, band_rows

    def rec(check: str, measured: float, low: float, high: float | None) -> dict[str, Any]:
        return {"check": check, "measured": {"median_tpot_ms": measured}, "band": {"median_tpot_ms": [low, high]}}

    records = [rec("lomo 1xRTX-4090 -8B", 30.0, 20.0, 40.0), rec("lomo 1xRTX-4090 -8B", 50.0, 20.0, 40.0),
               rec("lomo 1xRTX-4090 -8B", 10.0, 5.0, None), {"check": "lomo 1xH100-PCIe -phi-4", "band": None}]
    (row,) = band_rows(records, metrics=("median_tpot_ms",))
    assert row["check"] == "lomo 1xRTX-4090 -8B" and row["runs"] == 3
    assert row["median_tpot_ms"] == (2, 3, 2.0)  # an unbounded top counts as inside, and in no width
    assert "| lomo 1xRTX-4090 -8B | 3 | 2/3 in, 2.00× |" in band_markdown([row], metrics=("median_tpot_ms",))
