"""``calibrate fit``: recovers known parameters from simulator-made runs; robust to a wild point; CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from calibrate.cli import main
from calibrate.fit import FitPoint, Param, fit_profile, flag_outliers, residuals_of, settle_launch_cost
from calibrate.importer import MeasuredRun
from calibrate.replay import replay
from scenarios.catalog import GPUS, MODELS
from sim.profiles import read_profile_file
from sim.service import HardwareProfile

TRUE = HardwareProfile(gpu="H100-PCIe", mem_eff=0.72, compute_eff=0.5, attn_eff=0.6, step_overhead_s=0.0015,
                       per_seq_s=2e-5, per_layer_s=5e-5, frontend_s=0.009, memory_gb=85.0,
                       runtime_reserve_gb=0.5)
START = replace(TRUE, mem_eff=0.85, compute_eff=0.7, step_overhead_s=0.004, frontend_s=0.004)
FREE = [Param("mem_eff", 0.3, 1.0, 0.85), Param("compute_eff", 0.15, 1.0, 0.7),
        Param("step_overhead_s", 2e-4, 0.03, 0.004), Param("frontend_s", 5e-4, 0.05, 0.004)]
SEEDS = (0, 1)
MODEL_IDS = ("meta-llama/Meta-Llama-3-8B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "microsoft/phi-4")


def synthetic_runs(profile: HardwareProfile = TRUE) -> list[FitPoint]:
    """Runs 'measured' by the simulator itself under ``profile`` (100 prompts, three rates, three models)."""
    points = []
    for mid in MODEL_IDS:
        for rate in (2.0, 8.0, 24.0):
            run = MeasuredRun(
                file=f"synthetic/{mid.split('/')[-1]}.jsonl", where=f"synthetic/{mid}@{rate}", model_id=mid,
                gpu_name="NVIDIA-H100-PCIe", gpu="H100-PCIe", gpu_count=1, request_rate=rate, burstiness=1.0,
                num_prompts=100, completed=100, duration=1.0, total_input_tokens=30_000,
                total_output_tokens=18_000, metrics={}, prefix_caching="off", session=f"{mid}@{rate}",
                client_seed=7,
            )
            point = FitPoint(run, MODELS[mid], GPUS["H100-PCIe"])
            measured = replay(run, point.model, point.gpu, profile, seeds=SEEDS).metrics
            run = replace(run, metrics=measured, duration=100 / measured["request_throughput"])
            points.append(replace(point, run=run))
    return points


@pytest.fixture(scope="module")
def clean_points() -> list[FitPoint]:
    return synthetic_runs()


@pytest.fixture(scope="module")
def clean_fit(clean_points: list[FitPoint]) -> Any:
    return fit_profile(clean_points, START, params=FREE, seeds=SEEDS, max_nfev=40, multi_start=False)


def test_fit_recovers_known_parameters(clean_fit: Any) -> None:
    got = clean_fit.profile
    assert got.mem_eff == pytest.approx(TRUE.mem_eff, rel=0.03)
    assert got.compute_eff == pytest.approx(TRUE.compute_eff, rel=0.10)
    assert got.step_overhead_s == pytest.approx(TRUE.step_overhead_s, rel=0.25)
    assert got.frontend_s == pytest.approx(TRUE.frontend_s, rel=0.15)
    assert clean_fit.outliers == []
    assert clean_fit.mape("median_tpot_ms") < 2.0 and clean_fit.mape("request_throughput") < 2.0


def test_fit_reports_how_firmly_the_runs_pin_each_parameter(clean_points: list[FitPoint], clean_fit: Any) -> None:
    """Every parameter the runs exercise has a small spread set by the data; one they cannot see (an
    all-reduce efficiency on one GPU) is left to its prior, with the prior's spread."""
    spread = clean_fit.extra["spread"]
    assert set(spread) == {p.name for p in FREE}
    for name, v in spread.items():
        assert v["data_share"] > 0.9 and 0 < v["pm_pct"] < 15 and "at_bound" not in v, (name, v)
    # and a bound the truth (frontend 9 ms) lies beyond is named: there the local spread means nothing
    blind = [Param("mem_eff", 0.3, 1.0, 0.85), Param("comm_eff", 0.02, 1.0, 0.5, prior_weight=0.1),
             Param("frontend_s", 5e-4, 0.004, 0.002)]
    res = fit_profile(clean_points[:3], TRUE, params=blind, seeds=(0,), max_nfev=12, multi_start=False,
                      outlier_pass=False)
    got = res.extra["spread"]
    assert got["comm_eff"]["data_share"] == pytest.approx(0.0, abs=0.01) and got["mem_eff"]["data_share"] > 0.9
    assert got["comm_eff"]["pm_pct"] > 5 * got["mem_eff"]["pm_pct"]
    assert got["frontend_s"].get("at_bound") and not got["mem_eff"].get("at_bound"), got


def test_fit_is_robust_to_a_wild_point(clean_points: list[FitPoint], clean_fit: Any) -> None:
    wild = list(clean_points)
    i = 4
    bad = dict(wild[i].run.metrics)
    for k in ("median_ttft_ms", "p90_ttft_ms", "mean_ttft_ms"):
        bad[k] *= 8.0
    bad["request_throughput"] *= 0.5
    bad["median_tpot_ms"] *= 1.6
    wild[i] = replace(wild[i], run=replace(wild[i].run, metrics=bad, where="synthetic/wild"))
    res = fit_profile(wild, START, params=FREE, seeds=SEEDS, max_nfev=40, multi_start=False)
    assert res.outliers == ["synthetic/wild"]
    assert [r.outlier for r in res.residuals].count(True) == 1 and res.residuals[i].outlier
    for name in ("mem_eff", "compute_eff", "frontend_s"):
        assert getattr(res.profile, name) == pytest.approx(getattr(clean_fit.profile, name), rel=0.05), name
    # the residual table reports the wild point's misfit
    assert res.residuals[i].log_ratio["median_ttft_ms"] < -1.5


def test_fit_recovers_a_spread_request_path_latency() -> None:
    """TTFT spread wider than the engine's (a tensor-parallel box's request path) is told apart from a
    slower one: the fit recovers the latency's median and its spread from median and p90 TTFT."""
    truth = replace(TRUE, frontend_s=0.03, frontend_spread=0.8)
    points = synthetic_runs(truth)
    free = [Param("frontend_s", 5e-4, 0.25, 0.01), Param("frontend_spread", 0.02, 2.0, 0.3)]
    res = fit_profile(points, replace(truth, frontend_s=0.01, frontend_spread=0.3), params=free, seeds=SEEDS,
                      max_nfev=30, multi_start=False, outlier_pass=False)
    assert res.profile.frontend_s == pytest.approx(0.03, rel=0.1)
    assert res.profile.frontend_spread == pytest.approx(0.8, rel=0.1)


def test_outlier_flagging_caps_the_share() -> None:
    runs = synthetic_runs()[:9]
    res = residuals_of(runs, [None] * len(runs), {"median_tpot_ms": 1.0})  # every replay "failed"
    assert len(flag_outliers(res)) <= 1


def vllm_result(run: MeasuredRun) -> dict[str, Any]:
    return {"date": "20250101-000000", "backend": "vllm", "model_id": run.model_id, "num_prompts": run.num_prompts,
            "gpu_name": run.gpu_name, "gpu_count": str(run.gpu_count), "request_rate": run.request_rate,
            "burstiness": 1.0, "max_concurrency": None, "duration": run.duration, "completed": run.completed,
            "total_input_tokens": run.total_input_tokens, "total_output_tokens": run.total_output_tokens,
            **run.metrics}


def test_cli_fit_writes_profile_with_residuals_and_resumes(
    tmp_path: Path, clean_points: list[FitPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for mid in MODEL_IDS[:2]:
        path = tmp_path / f"{mid.split('/')[-1]}.jsonl"
        path.write_text("\n".join(json.dumps(vllm_result(p.run)) for p in clean_points if p.run.model_id == mid))
        files.append(str(path))
    out = tmp_path / "prof.yaml"
    code = main(["fit", *files, "-o", str(out), "--seeds", "1", "--max-evals", "6", "--client-seed", "7"])
    assert code == 0, capsys.readouterr().err
    (prof,) = read_profile_file(out)
    assert (prof.gpu, prof.gpus) == ("H100-PCIe", 1) and prof.source.startswith("calibrate fit")
    entry = yaml.safe_load(out.read_text())["profiles"][0]
    assert entry["fit"]["runs"] == 6 and len(entry["residuals"]) == 6
    assert set(entry["fit"]["spread"]) == set(entry["fit"]["fitted"])
    assert all({"pm_pct", "data_share"} <= set(v) for v in entry["fit"]["spread"].values())
    assert set(entry["fit"]["file_names"]) == {Path(f).name for f in files}
    assert entry["fit"]["engine"]["max_num_batched_tokens"] == 8192  # vLLM 0.8.5 default on an H100
    assert all(math.isfinite(r["median_tpot_ms"]) for r in entry["residuals"])
    weights = sorted(MODELS[m].weight_bytes / 1e9 for m in MODEL_IDS[:2])
    assert entry["fitted_weights_gb"] == [round(weights[0], 2), round(weights[-1], 2)]
    before = out.read_text()
    assert main(["fit", *files, "-o", str(out), "--resume"]) == 0
    assert out.read_text() == before  # nothing left to fit
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "mem_eff" in shown and "residuals" in shown and "Meta-Llama-3-8B-Instruct" in shown
    assert "models' weights per GPU" in shown and "±1σ" in shown
    # the record names a server's CUDA graph limit where it is not vLLM's default
    assert "cuda_graph_max_tokens" not in entry["fit"]["engine"]
    eager = tmp_path / "eager.yaml"
    assert main(["fit", *files, "-o", str(eager), "--seeds", "1", "--max-evals", "6", "--client-seed", "7",
                 "--engine", "cuda_graph_max_tokens=0"]) == 0
    assert yaml.safe_load(eager.read_text())["profiles"][0]["fit"]["engine"]["cuda_graph_max_tokens"] == 0


def test_cli_fit_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**vllm_result(_one_run()), "model_id": "acme/unknown-7b"}))
    assert main(["fit", str(path), "-o", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "acme/unknown-7b" in err and "--model-config" in err and str(path) in err and err.count("\n") == 1
    assert main(["show", str(tmp_path / "nope.yaml")]) == 2
    assert "no such profile file" in capsys.readouterr().err
    # lengths the run's dataset cannot have (2000-token prompts in a file named ShareGPT): named before fitting
    long = tmp_path / "long_sharegpt_.json"
    long.write_text(json.dumps({**vllm_result(_one_run()), "model_id": "meta-llama/Meta-Llama-3-8B-Instruct",
                                "total_input_tokens": 20_000, "total_output_tokens": 1280}))
    assert main(["fit", str(long), "-o", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert str(long) in err and "not a ShareGPT run" in err and err.count("\n") == 1
    assert not (tmp_path / "p.yaml").exists()


def _one_run() -> MeasuredRun:
    return MeasuredRun(file="x", where="x", model_id="m", gpu_name="NVIDIA-H100-PCIe", gpu="H100-PCIe", gpu_count=1,
                       request_rate=1.0, burstiness=1.0, num_prompts=10, completed=10, duration=10.0,
                       total_input_tokens=1000, total_output_tokens=1000, metrics={"median_tpot_ms": 10.0})


def test_an_unpinned_launch_cost_goes_back_to_its_prior() -> None:
    """A host launch cost no run's step shows (every model GPU-bound) is not identified: the fit keeps
    the prior (e.g. a TP fit its parent's value) instead of wherever the optimiser left it."""
    spec = [Param("per_layer_s", 1e-6, 1e-3, 8e-5)]
    run = _one_run()
    big = [FitPoint(replace(run, model_id=m), MODELS[m], GPUS["H100-PCIe"])
           for m in ("microsoft/phi-4", "meta-llama/Meta-Llama-3-8B-Instruct")]
    wandered = replace(TRUE, per_layer_s=3.2e-4)  # 32 layers x 0.32 ms < the 8B's 9 ms of weights
    settled, names = settle_launch_cost(big, wandered, spec)
    assert settled.per_layer_s == 8e-5 and names == ["per_layer_s"]
    # a launch-bound model pins it: kept
    small = [*big, FitPoint(run, MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"], GPUS["H100-PCIe"])]
    assert settle_launch_cost(small, wandered, spec) == (wandered, [])
    # a prior that would itself be launch-bound changes the fit: kept as fitted
    assert settle_launch_cost(big, wandered, [Param("per_layer_s", 1e-6, 1e-3, 9e-4)]) == (wandered, [])


def test_an_unpinned_eager_factor_goes_back_to_its_prior() -> None:
    """Steps beyond CUDA graphs (> 512 tokens) show the host's kernel-by-kernel cost only where it
    outlasts their GPU work: never for big models, so there the fit keeps the prior."""
    spec = [Param("eager_factor", 1.0, 20.0, 3.0)]
    run = _one_run()
    big = [FitPoint(replace(run, model_id=m), MODELS[m], GPUS["H100-PCIe"])
           for m in ("microsoft/phi-4", "meta-llama/Meta-Llama-3-8B-Instruct")]
    wandered = replace(TRUE, per_layer_s=1e-4, eager_factor=6.0)  # 8B: 19 ms of launches < 22 ms of compute
    settled, names = settle_launch_cost(big, wandered, spec)
    assert settled.eager_factor == 3.0 and names == ["eager_factor"]
    small = [*big, FitPoint(run, MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"], GPUS["H100-PCIe"])]
    assert settle_launch_cost(small, wandered, spec) == (wandered, [])  # the 1.5B's big steps show it
    # a server without CUDA graphs (--enforce-eager) launches even the 8B's decode steps kernel by kernel
    eager = [replace(p, run=replace(p.run, engine={"cuda_graph_max_tokens": 0})) for p in big]
    assert settle_launch_cost(eager, wandered, spec) == (wandered, [])


def test_hand_edited_fit_records_are_named_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = yaml.safe_load((Path(__file__).parent.parent / "sim" / "profiles" / "h100-pcie.yaml").read_text())
    cases = (
        (("fit",), "abc", "profiles[0].fit: expected a mapping (the record calibrate fit writes), got 'abc'"),
        (("fit", "models"), [1, 2], "profiles[0].fit.models: expected a list of names, got [1, 2]"),
        (("fit", "spread", "mem_eff"), {"pm_pct": 5, "data_share": "x"}, "profiles[0].fit.spread.mem_eff: expected"),
        (("residuals",), {"a": 1}, "profiles[0].residuals: expected a list of mappings (one per run)"),
        (("residuals", 0, "rate"), "fast", "profiles[0].residuals[0].rate: expected a number, got 'fast'"),
    )
    for keys, value, needle in cases:
        data = json.loads(json.dumps(good))
        target = data["profiles"][0]
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(data))
        for argv in (["show", str(path)], ["fit", "nothing.json", "-o", str(path), "--resume"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert needle in err and str(path) in err and "Traceback" not in err, (argv, err)
    path.write_bytes(b"profiles:\n- gpu: \xff\n")
    assert main(["show", str(path)]) == 2
    assert "cannot read profile file: not UTF-8 text (byte 17)" in capsys.readouterr().err
    path.write_text("profiles:\n- {gpu: H100-PCIe\n")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read profile file: line 3, column 1: invalid YAML: " in err and err.count("\n") == 1, err
