"""Shared test helpers: small scenarios built in code, and the location of ../shared."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from scenarios.loader import LoadedScenario, scenario_from_dict

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MEASUREMENTS = SHARED / "measurements" / "vllm-bench-0.8.5"


def make_scenario(**overrides: Any) -> LoadedScenario:
    """A small valid scenario (8B model, one H100 and two 4090 replicas), with top-level overrides."""
    data: dict[str, Any] = {
        "name": "test",
        "model": "Meta-Llama-3-8B-Instruct",
        "configs": [{"gpu": "H100-PCIe"}, {"gpu": "RTX-4090", "max_model_len": 4096}],
        "traffic": {
            "classes": [
                {
                    "name": "chat",
                    "rate": 4.0,
                    "prompt_tokens": {"type": "lognormal", "mean": 200, "sigma": 0.8, "min": 4, "max": 1024},
                    "output_tokens": {"type": "lognormal", "mean": 150, "sigma": 0.8, "min": 4, "max": 1024},
                    "slo": {"ttft_ms": 500, "tpot_ms": 60, "percentile": 90},
                }
            ]
        },
        "fleet": {
            "pools": [
                {"config": "1xH100-PCIe", "count": 1, "name": "h100"},
                {"config": "1xRTX-4090", "count": 2, "name": "rtx"},
            ]
        },
        "simulation": {"requests": 2000, "seed": 3},
    }
    data.update(overrides)
    return scenario_from_dict(data, "test.yaml")


@pytest.fixture
def shared_measurements() -> Path:
    if not MEASUREMENTS.is_dir():
        pytest.skip(
            f"needs the published vLLM measurements at {MEASUREMENTS} (../shared beside the checkout)"
        )
    return MEASUREMENTS


def run_arrivals(env: Any, arrive: Callable[[int], None], times: Sequence[float]) -> None:
    """Call ``arrive(rid)`` at ``times[rid]`` for every request (times ascending) and run ``env`` to the end."""

    def source() -> Any:
        for rid in range(len(times)):
            dt = times[rid] - env.now
            if dt > 0:
                yield env.timeout(dt)
            arrive(rid)

    env.process(source())
    env.run()


def vllm_result(**over: Any) -> dict[str, Any]:
    """A vLLM benchmark result record (phi-4 on one H100-PCIe, 60 requests at 4 req/s), with fields replaced."""
    base: dict[str, Any] = {
        "date": "20250610-140834", "backend": "vllm", "model_id": "microsoft/phi-4", "num_prompts": 60,
        "gpu_name": "NVIDIA-H100-PCIe", "gpu_count": "1", "request_rate": 4.0, "burstiness": 1.0,
        "max_concurrency": None, "duration": 16.0, "completed": 60, "total_input_tokens": 12000,
        "total_output_tokens": 9000, "request_throughput": 3.7, "output_throughput": 560.0,
        "total_token_throughput": 1300.0, "mean_ttft_ms": 40.0, "median_ttft_ms": 38.0, "p90_ttft_ms": 50.0,
        "p99_ttft_ms": 60.0, "median_tpot_ms": 19.0, "p90_tpot_ms": 20.0, "mean_tpot_ms": 19.2,
        "median_itl_ms": 19.0, "p99_itl_ms": 25.0,
    }
    base.update(over)
    return base
