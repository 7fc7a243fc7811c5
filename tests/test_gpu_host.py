"""``calibrate run``'s GPU-host paths against a real NVIDIA GPU, without fakes.

NVML's inventory (names, memory, driver), the power sampler over a real load (energy counter against the
samples, load against idle), the visible-device lookup by UUID, the catalogue's figure for the memory CUDA
reports (the one vLLM sizes its KV cache from), and the server command ``calibrate run`` plans on the host.
Everything here needs a GPU that NVML sees, so CPU machines (CI) skip it; on a GPU host run
``python -m pytest tests/test_gpu_host.py``.  The load and the memory figure also need PyTorch with CUDA.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from calibrate import cli
from calibrate.commands.run import default_price
from calibrate.power import PowerSampler, gpu_inventory, nvml_indices
from calibrate.runner import orchestrate
from calibrate.server import default_engine_limits
from scenarios.catalog import DRIVER_MEMORY_GB, normalise_gpu_name

INVENTORY = gpu_inventory()
pytestmark = pytest.mark.skipif(
    INVENTORY["kind"] != "gpu",
    reason=f"needs an NVIDIA GPU that NVML sees ({INVENTORY.get('nvml') or 'NVML found no GPU'})")


def cuda_torch() -> Any:
    torch = pytest.importorskip("torch", reason="the GPU load and CUDA's memory figure need PyTorch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return torch


def test_nvml_names_every_gpu_with_its_memory_and_the_driver() -> None:
    assert INVENTORY["count"] == len(INVENTORY["names"]) == len(INVENTORY["memory_bytes"]) >= 1
    assert all(isinstance(name, str) and name.strip() for name in INVENTORY["names"])
    assert all(memory > 4e9 for memory in INVENTORY["memory_bytes"])
    assert re.fullmatch(r"\d+(\.\d+)+", INVENTORY["driver"])


def test_a_uuid_in_cuda_visible_devices_finds_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    uuids = INVENTORY["uuids"]
    assert len(uuids) == INVENTORY["count"] and all(re.fullmatch(r"GPU-[0-9a-f-]{36}", u) for u in uuids), uuids
    last = len(uuids) - 1
    assert nvml_indices([uuids[last]], uuids) == [last]
    assert nvml_indices([uuids[last][:16]], uuids) == [last]  # "GPU-" and 12 hex digits: unique on any real box
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", uuids[last])
    assert orchestrate.power_devices(1) == [last]


def test_the_sampler_reads_a_load_above_idle_and_its_energy_counter_agrees_with_its_samples() -> None:
    torch = cuda_torch()
    idle = PowerSampler(0.1, devices=[0])
    idle.start()
    time.sleep(2.0)
    idle.stop()
    idle_summary = idle.summary()
    idle.close()

    a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.float16)
    loaded = PowerSampler(0.1, devices=[0])
    loaded.start()
    end = time.monotonic() + 8.0
    while time.monotonic() < end:
        for _ in range(10):
            a @ a  # the products are the load
        torch.cuda.synchronize()
    loaded.stop()
    s = loaded.summary()
    loaded.close()

    assert idle_summary["available"] and s["available"], (idle_summary, s)
    assert s["samples"] >= 0.5 * s["duration_s"] / 0.1
    gpu = s["gpus"][0]
    assert gpu["index"] == 0
    assert s["mean_w"] > 1.5 * idle_summary["mean_w"], (idle_summary["mean_w"], s["mean_w"])
    # NVML's power reading is a running average; over 8 s the counter and the samples' mean agree well
    assert gpu["energy_j"] == pytest.approx(gpu["mean_w"] * s["duration_s"], rel=0.2), (gpu, s["duration_s"])
    if gpu["method"] == "counter":
        assert idle_summary["gpus"][0]["energy_j"] > 0


def test_the_catalogue_holds_the_memory_cuda_reports_for_this_gpu() -> None:
    """vLLM sizes its cache from ``torch.cuda.mem_get_info()``'s total; the catalogue's figure for a GPU
    with no fitted profile must be that number (in 10^9 bytes), not the datasheet's binary gigabytes."""
    torch = cuda_torch()
    name = torch.cuda.get_device_name(0)
    key = normalise_gpu_name(name)
    if key not in DRIVER_MEMORY_GB:
        pytest.skip(f"{name!r} is not a catalogue GPU: nothing to check")
    total_gb = torch.cuda.mem_get_info(0)[1] / 1e9
    assert total_gb == pytest.approx(DRIVER_MEMORY_GB[key], rel=0.01), (name, key, total_gb)


def test_calibrate_run_plans_the_server_for_this_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}')
    assert cli.main(["run", "--model", str(model), "--out", str(tmp_path / "bundle"), "--device", "cuda",
                     "--dry-run"]) == 0
    out = capsys.readouterr().out
    first = orchestrate.power_devices(1)[0]
    seqs, tokens = default_engine_limits("cuda", 1, INVENTORY["names"][first], INVENTORY["memory_bytes"][first])
    assert "FLASHINFER" in out
    assert f"--max-num-seqs {seqs}" in out and f"--max-num-batched-tokens {tokens}" in out
    assert "--no-enable-prefix-caching" in out
    price, source = default_price("cuda", INVENTORY["names"][first])
    assert f"1 GPU × ${price:g}/GPU-hour, {source}" in out
