"""Built-in catalogues: GPUs (from vendor datasheets) and served models (from their config.json).

A :class:`GpuSpec` carries the roofline facts a service-time model needs (memory, bandwidth, dense
FP16 tensor throughput, board power, interconnect) plus a default rental price.  Figures come from
``shared/reference/hardware.md`` (vendor datasheets; prices from the seed papers, USD per GPU-hour,
alternative providers, May 2025 unless noted).

The model catalogue holds :class:`~scenarios.models.ModelSpec` entries built from the config fields
of the models in ``shared/reference/models.md``, of the seed paper's other benchmark models
(DeepSeek-R1-Distill-Qwen-7B and -Llama-8B, with the Llama-70B distill), of widely served dense models
(Llama-3.1-8B/70B-Instruct, Qwen2.5-7B-Instruct, Mistral-7B-Instruct-v0.3, gemma-2-9b-it) and of two widely
served mixtures of experts (Mixtral-8x7B-Instruct, Qwen3-30B-A3B), all from their public Hugging Face
config.json files; any other model enters through its own config.json
(:func:`scenarios.models.load_model_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scenarios.models import ModelSpec, model_from_config

#: most memory per GPU (and memory kept out of its KV cache) a scenario or profile may state, GB: beyond any
#: GPU or CPU host, and far below what would overflow the KV-cache sizing
MAX_MEMORY_GB = 1e5


@dataclass(frozen=True)
class GpuSpec:
    """One GPU type as the roofline sees it."""

    name: str
    memory_gb: float
    """On-board memory, GB.  The catalogue's entries give the datasheet's figure, which counts binary
    gigabytes; their KV caches are sized from :data:`DRIVER_MEMORY_GB` instead.  A GPU described in a
    scenario or a ``--hardware`` file is sized from this figure, read as 10^9 bytes (as CUDA reports it)."""
    mem_bw_gbps: float
    """Peak memory bandwidth, GB/s."""
    fp16_tflops: float
    """Dense FP16/BF16 tensor throughput, TFLOP/s."""
    tdp_w: float
    """Board power (datasheet TDP), W."""
    idle_w: float
    """Typical idle board power, W."""
    link_gbps: float
    """Effective GPU-to-GPU bandwidth per direction for all-reduce, GB/s."""
    p2p: bool
    """Whether GPUs talk peer-to-peer (NVLink / PCIe P2P); without it traffic bounces through host memory."""
    price_per_hour: float
    """Default rental price, USD per GPU-hour."""
    source: str = ""
    fp8_tflops: float = 0.0
    """Dense FP8 tensor throughput (FP32 accumulate, as vLLM's CUTLASS kernels use it), TFLOP/s; 0: no FP8
    tensor cores (before Ada / Hopper), where vLLM runs an FP8 checkpoint weight-only (Marlin, 16-bit math)."""
    int8_tops: float = 0.0
    """Dense INT8 tensor throughput, TOP/s; 0: not stated (8-bit activations then count at FP16 speed)."""

    def __post_init__(self) -> None:
        for attr in ("memory_gb", "mem_bw_gbps", "fp16_tflops", "tdp_w", "link_gbps"):
            value = getattr(self, attr)
            if not value > 0:
                raise ValueError(f"{attr}(={value}) must be > 0 for GPU {self.name!r}")
        for attr in ("fp8_tflops", "int8_tops"):
            value = getattr(self, attr)
            if not value >= 0:
                raise ValueError(f"{attr}(={value}) must be >= 0 for GPU {self.name!r}")

    def matmul_tflops(self, matmul8: str) -> float:
        """Peak dense throughput (TFLOP/s) of the linear layers of a checkpoint whose ``matmul8`` is
        ``"fp8"`` or ``"int8"`` (weights and activations in 8 bits, :attr:`ModelSpec.matmul8`) where this
        GPU has such tensor cores; otherwise (and for ``""``) its FP16/BF16 figure."""
        peak = {"fp8": self.fp8_tflops, "int8": self.int8_tops}.get(matmul8, 0.0)
        return max(peak, self.fp16_tflops)


_DS = "vendor datasheet via shared/reference/hardware.md"
#: FP8 / INT8 dense figures: NVIDIA's H100, L40S, A100 datasheets and the Ada (RTX 4090), Ampere (RTX 3090) and
#: Blackwell (RTX 5090) architecture whitepapers; GeForce FP8 with FP32 accumulate runs at half the FP16-accumulate rate
GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        GpuSpec("H100-PCIe", 80, 2000, 756, 350, 60, 64, True, 2.00, _DS + "; price seed 000 Table 1",
                fp8_tflops=1513, int8_tops=1513),
        GpuSpec("H100-SXM", 80, 3350, 989, 700, 70, 450, True, 2.50, _DS + "; price seed 000 Table 1",
                fp8_tflops=1979, int8_tops=1979),
        GpuSpec("H200", 141, 4800, 989, 700, 70, 450, True, 3.50, _DS + "; price estimate",
                fp8_tflops=1979, int8_tops=1979),
        GpuSpec("A100", 80, 2040, 312, 400, 50, 300, True, 1.39, _DS + " (SXM); price seed 001 RunPod",
                int8_tops=624),
        GpuSpec("A100-PCIe", 80, 1940, 312, 300, 40, 32, True, 1.39, _DS + "; price seed 001 RunPod",
                int8_tops=624),
        GpuSpec("L40S", 48, 864, 362, 350, 35, 32, True, 0.86, _DS + "; price seed 001 CoreWeave /8",
                fp8_tflops=733, int8_tops=733),
        GpuSpec("RTX-4090", 24, 1008, 165, 450, 20, 25, False, 0.25, _DS + "; price seed 000 Table 1",
                fp8_tflops=330, int8_tops=661),
        GpuSpec("RTX-3090", 24, 936, 71, 350, 20, 25, False, 0.20, _DS + "; price estimate", int8_tops=284),
        GpuSpec("RTX-5090", 32, 1790, 210, 575, 25, 50, False, 0.60, _DS + "; price estimate",
                fp8_tflops=419, int8_tops=838),
    )
}

#: memory per GPU as CUDA reports it (``total_gpu_memory`` in vLLM's log), GB = 10^9 bytes.  The datasheets'
#: figures (:attr:`GpuSpec.memory_gb`) count binary gigabytes (a "24 GB" RTX 4090 has 24 GiB = 25.8 GB), less
#: what the driver keeps: vLLM sizes its KV cache from this one, and so do profiles without a fitted
#: ``memory_gb`` (:func:`sim.service.profile_gpu`), for the catalogue's own GPU specs.  Read on real boards
#: (``torch.cuda.mem_get_info``, tests/test_gpu_host.py, 2026-11, driver 580): H100 80GB HBM3 85.02, H200
#: 150.11; the H100 PCIe's and RTX 4090's are what their fitted profiles hold; the others are unchecked
DRIVER_MEMORY_GB = {"H100-PCIe": 85.0, "H100-SXM": 85.0, "A100": 85.1, "A100-PCIe": 85.1, "L40S": 47.7,
                    "RTX-4090": 25.4, "RTX-3090": 25.4, "RTX-5090": 33.7, "H200": 150.0}


def _compact(name: str) -> str:
    """A GPU name's letters and digits, upper case, without the vendor and brand prefixes and the 80 GB
    memory size (the only size of the catalogue's 80 GB parts)."""
    s = "".join(ch for ch in name.upper() if ch.isalnum())
    for prefix in ("NVIDIA", "GEFORCE"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return s.replace("80GB", "")


#: compacted names -> catalogue keys: the keys themselves, then board names as NVML (hence vLLM's result
#: files) writes them where they differ: the H100 SXM5 board reports "H100 80GB HBM3", the A100s their
#: form factor
_GPU_NAMES = {"H100": "H100-SXM", "H100SXM5": "H100-SXM", "H100HBM3": "H100-SXM", "A100SXM": "A100",
              "A100SXM4": "A100", **{_compact(key): key for key in GPUS}}


def normalise_gpu_name(name: str) -> str:
    """Map names as tools write them (``NVIDIA-GeForce-RTX-4090``, ``NVIDIA H100 PCIe``,
    ``NVIDIAGeForceRTX4090``, ``NVIDIA H100 80GB HBM3``) to catalogue keys; others come back unchanged.
    Names are compared compacted (:func:`_compact`)."""
    return _GPU_NAMES.get(_compact(name), name)


def find_gpu(name: str, known: Mapping[str, GpuSpec]) -> GpuSpec | None:
    """The spec of ``known`` (the catalogue, maybe with a hardware file's entries) that ``name`` denotes:
    by its key, by its catalogue key (:func:`normalise_gpu_name`), or by its compacted name, so that the
    ``NVIDIA L4`` of a result file finds a hardware file's ``L4``."""
    spec = known.get(name) or known.get(normalise_gpu_name(name))
    if spec is None:
        compact = _compact(name)
        spec = next((v for k, v in known.items() if _compact(k) == compact), None)
    return spec


def _m(name: str, arch: str, h: int, i: int, n: int, a: int, kv: int, v: int, pos: int) -> ModelSpec:
    return model_from_config(
        {
            "_name_or_path": name,
            "architectures": [arch],
            "hidden_size": h,
            "intermediate_size": i,
            "num_hidden_layers": n,
            "num_attention_heads": a,
            "num_key_value_heads": kv,
            "vocab_size": v,
            "max_position_embeddings": pos,
            "tie_word_embeddings": False,
        }
    )


#: models of shared/reference/models.md, then the seed paper's other benchmark models (from their
#: published config.json) and two mixtures of experts, keyed by HF id; short names (the part after '/') work too
MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        _m("meta-llama/Meta-Llama-3-8B-Instruct", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192),
        _m("meta-llama/Meta-Llama-3-70B-Instruct", "LlamaForCausalLM", 8192, 28672, 80, 64, 8, 128256, 8192),
        _m(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "Qwen2ForCausalLM",
            1536,
            8960,
            28,
            12,
            2,
            151936,
            131072,
        ),
        _m(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
            "Qwen2ForCausalLM",
            5120,
            13824,
            48,
            40,
            8,
            152064,
            131072,
        ),
        _m(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "Qwen2ForCausalLM",
            5120,
            27648,
            64,
            40,
            8,
            152064,
            131072,
        ),
        _m("Qwen/QwQ-32B-Preview", "Qwen2ForCausalLM", 5120, 27648, 64, 40, 8, 152064, 32768),
        _m("microsoft/phi-4", "Phi3ForCausalLM", 5120, 17920, 40, 40, 10, 100352, 16384),
        _m("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "Qwen2ForCausalLM", 3584, 18944, 28, 28, 4, 152064, 131072),
        _m("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 131072),
        _m("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "LlamaForCausalLM", 8192, 28672, 80, 64, 8, 128256, 131072),
        _m("meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 131072),
        _m("meta-llama/Llama-3.1-70B-Instruct", "LlamaForCausalLM", 8192, 28672, 80, 64, 8, 128256, 131072),
        _m("Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM", 3584, 18944, 28, 28, 4, 152064, 32768),
        _m("mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM", 4096, 14336, 32, 32, 8, 32768, 32768),
        model_from_config(
            {
                # one embedding table shared with the LM head (Gemma's default); half the layers attend over a
                # 4096-token sliding window, served with a full-length cache as vLLM 0.8's V1 engine does
                "_name_or_path": "google/gemma-2-9b-it",
                "architectures": ["Gemma2ForCausalLM"],
                "model_type": "gemma2",
                "hidden_size": 3584,
                "intermediate_size": 14336,
                "num_hidden_layers": 42,
                "num_attention_heads": 16,
                "num_key_value_heads": 8,
                "head_dim": 256,
                "vocab_size": 256000,
                "max_position_embeddings": 8192,
                "sliding_window": 4096,
            }
        ),
        model_from_config(
            {
                "_name_or_path": "mistralai/Mixtral-8x7B-Instruct-v0.1",
                "architectures": ["MixtralForCausalLM"],
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "vocab_size": 32000,
                "max_position_embeddings": 32768,
                "num_local_experts": 8,
                "num_experts_per_tok": 2,
            }
        ),
        model_from_config(
            {
                "_name_or_path": "Qwen/Qwen3-30B-A3B",
                "architectures": ["Qwen3MoeForCausalLM"],
                "hidden_size": 2048,
                "intermediate_size": 6144,
                "num_hidden_layers": 48,
                "num_attention_heads": 32,
                "num_key_value_heads": 4,
                "head_dim": 128,
                "vocab_size": 151936,
                "max_position_embeddings": 40960,
                "attention_bias": False,
                "num_experts": 128,
                "num_experts_per_tok": 8,
                "moe_intermediate_size": 768,
                "decoder_sparse_step": 1,
                "mlp_only_layers": [],
            }
        ),
    )
}


def find_model(name: str) -> ModelSpec | None:
    """Look a model up by HF id or by its short name (case-insensitive)."""
    if name in MODELS:
        return MODELS[name]
    low = name.lower()
    for key, spec in MODELS.items():
        if key.lower() == low or key.split("/")[-1].lower() == low.split("/")[-1]:
            return spec
    return None
