"""Command-line overrides for runs whose files do not say: the hardware (``--gpu``, ``--gpus``) and the
server's settings (``--engine KEY=VALUE``).

A result file of ``vllm bench serve`` records the client's side only; the server's limits (how many
sequences a step may hold, its token budget, memory share, CUDA graphs) shape every prediction, so the
commands that replay runs (``calibrate fit``, ``planner validate``) take them as options, checked here.
A calibration bundle records its own (its server's command line), and those win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from calibrate.importer import ImportFailed
from calibrate.resultfields import GPU_RANGE, gpus_in_range
from scenarios.models import KV_CACHE_DTYPES, ONLINE_QUANTIZATION, SERVED_DTYPES


def hardware_overrides(gpu: str | None, gpus: int | None) -> dict[str, Any]:
    """``load_runs`` overrides from the ``--gpu NAME`` / ``--gpus N`` options of the commands."""
    out: dict[str, Any] = {}
    if gpu is not None and not gpu.strip():
        raise ImportFailed("--gpu: empty name; expected a GPU name as NVML writes it ('NVIDIA H100 PCIe') or as "
                           "the catalogue or --hardware names it")
    if gpu:
        out["gpu_name"] = gpu
    if gpus is not None:
        if not gpus_in_range(gpus):  # as a file's gpu_count must be
            raise ImportFailed(f"--gpus(={gpus}) must be {GPU_RANGE}")
        out["gpu_count"] = gpus
    return out


#: server settings ``--engine KEY=VALUE`` may state for files that do not record them, with their type
ENGINE_KEYS: dict[str, type] = {"max_num_seqs": int, "max_num_batched_tokens": int, "max_model_len": int,
                                "gpu_memory_utilization": float, "kv_cache_tokens": int, "block_size": int,
                                "dtype": str, "cuda_graph_max_tokens": int, "quantization": str,
                                "kv_cache_dtype": str}
#: the settings that take a word, with the words vLLM accepts
ENGINE_CHOICES: dict[str, tuple[str, ...]] = {"dtype": ("auto", *SERVED_DTYPES), "quantization": ONLINE_QUANTIZATION,
                                              "kv_cache_dtype": tuple(KV_CACHE_DTYPES)}
#: smallest value of an integer setting where it is not 1 (0 CUDA-graph tokens: a server started with --enforce-eager;
#: a context of 16 tokens, as a scenario's max_model_len)
ENGINE_MINIMUM: dict[str, int] = {"cuda_graph_max_tokens": 0, "max_model_len": 16}
#: the ``--engine`` option's help, shared by the commands that replay runs
ENGINE_HELP = (f"server setting of runs whose files do not record it (repeatable): {', '.join(ENGINE_KEYS)}; "
               "default: vLLM 0.8.5's for the GPU (calibrate bundles record their own)")


def engine_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--engine KEY=VALUE`` options (the server settings of runs whose files do not say)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in ENGINE_KEYS:
            raise ImportFailed(f"--engine {item}: expected KEY=VALUE with KEY one of {', '.join(sorted(ENGINE_KEYS))}")
        kind = ENGINE_KEYS[key]
        if key in ENGINE_CHOICES:  # the server's --dtype, --quantization, --kv-cache-dtype
            word, choices = text.strip().lower(), ENGINE_CHOICES[key]
            if word not in choices:
                hint = (" (vLLM's quantization at load time; a quantized checkpoint's config.json says its own)"
                        if key == "quantization" else "")
                raise ImportFailed(f"--engine {item}: {key} must be one of {', '.join(choices)}{hint}")
            out[key] = word
            continue
        try:
            value = kind(text.strip())
        except ValueError:
            expected = "a number" if kind is float else "an integer"
            raise ImportFailed(f"--engine {item}: {key} must be {expected}") from None
        if key == "gpu_memory_utilization" and not 0 < value <= 1:
            raise ImportFailed(f"--engine {item}: gpu_memory_utilization must be in (0, 1]")
        lowest = ENGINE_MINIMUM.get(key, 1)
        if kind is int and value < lowest:
            raise ImportFailed(f"--engine {item}: {key} must be >= {lowest}")
        out[key] = value
    return out


#: most replay seeds ``--seeds`` may ask for (each replays every run once more)
MAX_SEEDS = 64


def check_seed_options(seeds: int, client_seed: int | None) -> None:
    """``--seeds`` (replays averaged per run) and ``--client-seed`` (the vLLM client's ``--seed``)."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise ImportFailed(f"--seeds(={seeds}) must be in 1..{MAX_SEEDS}")
    if client_seed is not None and not 0 <= client_seed < 2**32:
        raise ImportFailed(f"--client-seed(={client_seed}) must be in 0..2**32-1 (as vLLM's --seed)")
