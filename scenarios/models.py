"""Served models as the service-time model sees them, read from their Hugging Face ``config.json``.

A :class:`ModelSpec` holds what a step's time and a replica's memory depend on: the parameter count
and weight bytes, the FLOPs per token, the KV-cache bytes per token, hidden size and layer count.
Dense decoder-only transformers (multi-head or grouped-query attention, gated or plain MLP) and mixtures of
experts (Mixtral, Qwen2/Qwen3-MoE and DeepSeek spellings) are described; a mixture keeps all its
experts in memory but a token runs only the ``experts_per_token`` it is routed to, so a decode step
reads only the experts its batch touches (:class:`sim.service.StepTimeModel`).  Architectures whose
layers differ in kind (latent attention, state-space layers) are refused with the field that shows it.
The config keys beyond the plain sizes (experts, quantization, a tied LM head, a vision tower) are read by
:mod:`scenarios.hfconfig`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scenarios.errors import FleetPlannerError
from scenarios.hfconfig import (
    PLAIN_MLP_ARCHITECTURES,
    check_names,
    check_text_fields,
    language_config,
    matmul8,
    moe_fields,
    tied_embeddings,
    unmodelled_layers,
    vision_params,
    weight_bits,
)


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer as the service-time model sees it."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    dtype_bytes: int = 2
    """Bytes per weight and per KV element as served (2 for float16/bfloat16; see :func:`served_dtype_bytes`)."""
    gated_mlp: bool = True
    """A gated MLP (gate, up and down projections: Llama, Qwen, Mistral, Gemma, Phi-3); False: a plain one
    (up and down: GPT-NeoX, Phi-1/2, StarCoder2, Nemotron)."""
    qk_norm: bool = False
    """RMS norms on queries and keys (Qwen3): ``2 x head_dim`` weights per layer."""
    num_experts: int = 0
    """Routed experts per mixture-of-experts layer; 0: a dense model."""
    experts_per_token: int = 0
    """Routed experts each token is sent to (top-k)."""
    expert_intermediate_size: int = 0
    """Intermediate width of one expert's gated MLP."""
    shared_expert_intermediate_size: int = 0
    """Intermediate width of the always-active shared expert(s) of a layer (0: none)."""
    moe_layers: int = 0
    """Layers whose MLP is a mixture of experts; the others have a dense MLP of ``intermediate_size``."""
    weight_bits: float = 0.0
    """Bits per weight of quantized linear layers (attention projections, MLPs, experts), their scales
    included; embeddings, LM head, norms and routers stay at ``dtype_bytes``.  0: not quantized."""
    kv_dtype_bytes: int = 0
    """Bytes per KV-cache element where the server's ``--kv-cache-dtype`` is not ``auto`` (1 for ``fp8``);
    0: the served dtype's (:attr:`dtype_bytes`)."""
    matmul8: str = ""
    """``"fp8"`` or ``"int8"`` where the checkpoint quantizes the linear layers' activations too (W8A8), so
    that vLLM multiplies them on 8-bit tensor cores (where the GPU has them); ``""`` otherwise."""
    vision_params: int = 0
    """Weights beside the language model that vLLM loads but text requests never run (a multimodal
    model's vision tower and projector): they take memory, not step time."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for attr in (
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "vocab_size",
        ):
            value = getattr(self, attr)
            if not value >= 1:
                raise ValueError(f"{attr}(={value}) must be >= 1 for model {self.name!r}")
        if self.num_heads % self.num_kv_heads:  # grouped-query attention shares each KV head among whole groups
            raise ValueError(f"num_kv_heads(={self.num_kv_heads}) must divide num_heads(={self.num_heads}) for model "
                             f"{self.name!r}")
        if not self.vision_params >= 0:
            raise ValueError(f"vision_params(={self.vision_params}) must be >= 0 for model {self.name!r}")
        if self.kv_dtype_bytes not in (0, 1, 2, 4):
            raise ValueError(f"kv_dtype_bytes(={self.kv_dtype_bytes}) must be 0, 1, 2 or 4 for model {self.name!r}")
        if self.matmul8 not in ("", "fp8", "int8"):
            raise ValueError(f"matmul8(={self.matmul8!r}) must be '', 'fp8' or 'int8' for model {self.name!r}")
        if not 0 <= self.weight_bits <= 8 * self.dtype_bytes:
            raise ValueError(f"weight_bits(={self.weight_bits}) must be in 0..{8 * self.dtype_bytes} for model "
                             f"{self.name!r}")
        if self.num_experts:
            if not 1 <= self.experts_per_token <= self.num_experts:
                raise ValueError(
                    f"experts_per_token(={self.experts_per_token}) must be in 1..num_experts"
                    f"(={self.num_experts}) for model {self.name!r}"
                )
            if not self.expert_intermediate_size >= 1:
                raise ValueError(
                    f"expert_intermediate_size(={self.expert_intermediate_size}) must be >= 1 for model {self.name!r}"
                )
            if not 1 <= self.moe_layers <= self.num_layers:
                raise ValueError(
                    f"moe_layers(={self.moe_layers}) must be in 1..num_layers(={self.num_layers}) "
                    f"for model {self.name!r}"
                )

    @property
    def head_dim(self) -> int:
        return int(self.extra.get("head_dim") or self.hidden_size // self.num_heads)

    @property
    def _attention_linear_params(self) -> int:
        # q and o projections (heads x head_dim each way), k and v (kv heads x head_dim)
        return 2 * self.hidden_size * (self.num_heads + self.num_kv_heads) * self.head_dim

    @property
    def attention_params(self) -> int:
        """Weights of one layer outside its MLP: q/k/v/o projections (and biases), norms."""
        h, d = self.hidden_size, self.head_dim
        bias = (self.num_heads + 2 * self.num_kv_heads) * d if self.qkv_bias else 0
        return self._attention_linear_params + bias + 2 * h + (2 * d if self.qk_norm else 0)

    @property
    def _dense_mlp_params(self) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def layer_params(self) -> int:
        """Weights of one layer with a dense MLP."""
        return self.attention_params + self._dense_mlp_params

    @property
    def expert_params(self) -> int:
        """Weights of one routed expert."""
        return 3 * self.hidden_size * self.expert_intermediate_size

    def _moe_layer_params(self, experts: int) -> int:
        # a layer with ``experts`` routed experts, its router and its shared expert(s); the scalar gate
        # some shared experts carry (Qwen2-MoE: hidden_size weights a layer) is left out
        h = self.hidden_size
        return (self.attention_params + experts * self.expert_params + h * self.num_experts
                + 3 * h * self.shared_expert_intermediate_size)

    @property
    def routed_expert_params(self) -> int:
        """Weights of all routed experts (0 for a dense model): a decode step reads only the experts
        its tokens were routed to."""
        return self.moe_layers * self.num_experts * self.expert_params

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    def _all_layer_params(self, experts: int) -> int:
        # every layer's weights, counting ``experts`` routed experts in each mixture-of-experts layer
        layers = (self.num_layers - self.moe_layers) * self.layer_params
        if self.moe_layers:
            layers += self.moe_layers * self._moe_layer_params(experts)
        return layers

    @property
    def params(self) -> int:
        return self._all_layer_params(self.num_experts) + self.embedding_params + self.hidden_size

    def _linear_params(self, experts: int) -> int:
        # the layers' linear projections, counting ``experts`` routed experts in each mixture-of-experts layer
        dense = (self.num_layers - self.moe_layers) * self._dense_mlp_params
        shared = 3 * self.hidden_size * self.shared_expert_intermediate_size
        moe = self.moe_layers * (shared + experts * self.expert_params)
        return self.num_layers * self._attention_linear_params + dense + moe

    @property
    def linear_params(self) -> int:
        """Weights of the layers' linear projections (attention, MLPs, shared and routed experts): the
        ones a quantized checkpoint stores at ``weight_bits``."""
        return self._linear_params(self.num_experts)

    @property
    def _language_bytes(self) -> int:
        # the language model's weights, its linear layers at ``weight_bits`` where quantized
        if not self.weight_bits:
            return self.params * self.dtype_bytes
        linear = self.linear_params
        return int(linear * self.weight_bits / 8) + (self.params - linear) * self.dtype_bytes

    @property
    def weight_bytes(self) -> int:
        """Bytes of every weight vLLM loads: the language model (its linear layers at ``weight_bits``
        where quantized) and a vision tower (:attr:`vision_params`, 16-bit)."""
        return self._language_bytes + self.vision_params * self.dtype_bytes

    @property
    def step_weight_bytes(self) -> int:
        """Weight bytes a decode step streams: the language model's but the input embedding table, of
        which a step reads only its tokens' rows (a tied table is read whole as the LM head)."""
        table = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size * self.dtype_bytes
        return self._language_bytes - table

    @property
    def expert_miss(self) -> float:
        """Chance that a token leaves a given routed expert unused under uniform routing (1 - k/E; 0 for
        a dense model): a step of n tokens reads a fraction 1 - expert_miss**n of the routed experts."""
        return 1.0 - self.experts_per_token / self.num_experts if self.num_experts else 0.0

    @property
    def routed_expert_bytes(self) -> int:
        """Bytes of all routed experts (0 for a dense model)."""
        return int(self.routed_expert_params * (self.weight_bits or 8 * self.dtype_bytes) / 8)

    @property
    def flops_per_token(self) -> float:
        """Dense matmul FLOPs per token (2 × parameters that multiply, the LM head included; of a mixture
        of experts, the experts the token is routed to)."""
        return 2.0 * (self._all_layer_params(self.experts_per_token) + self.vocab_size * self.hidden_size)

    @property
    def linear_flops_per_token(self) -> float:
        """The share of :attr:`flops_per_token` in the layers' linear projections (the routed experts'
        included), which a W8A8 checkpoint (:attr:`matmul8`) multiplies in 8 bits; the LM head stays 16-bit."""
        return 2.0 * self._linear_params(self.experts_per_token)

    @property
    def mlp_activation_width(self) -> int:
        """Elements per token of the largest MLP intermediates (gate/up output plus activation output, or
        up output plus activation output of a plain MLP; of vLLM's fused MoE kernel, its caches for every
        routed expert of the token)."""
        width = (3 if self.gated_mlp else 2) * self.intermediate_size
        dense = width if self.moe_layers < self.num_layers else 0
        if not self.moe_layers:
            return dense
        moe = (
            self.experts_per_token * (3 * self.expert_intermediate_size + self.hidden_size)
            + 3 * self.shared_expert_intermediate_size
        )
        return max(dense, moe)

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_element_bytes

    @property
    def kv_element_bytes(self) -> int:
        """Bytes per KV-cache element: :attr:`kv_dtype_bytes` where set, else the served dtype's."""
        return self.kv_dtype_bytes or self.dtype_bytes

    def tp_error(self, tp: int) -> str | None:
        """Why vLLM refuses to shard this model over ``tp`` GPUs, with the sizes that work, or None: its
        attention heads must split evenly (``ModelConfig.verify_with_parallel_config``) and its KV heads
        must either split evenly or be replicated a whole number of times (``QKVParallelLinear``)."""
        why = self._shard_refusal(tp)
        return None if why is None else f"{why}; sizes it can use up to 16 GPUs: {', '.join(map(str, self.tp_sizes()))}"

    def _shard_refusal(self, tp: int) -> str | None:
        if self.num_heads % tp:
            return (f"{self.name}'s {self.num_heads} attention heads do not split over tensor-parallel "
                    f"size {tp} (vLLM requires them divisible by it)")
        kv = self.num_kv_heads
        if (kv % tp) if tp < kv else (tp % kv):
            return (f"{self.name}'s {kv} KV heads neither split over nor replicate onto tensor-parallel "
                    f"size {tp} (vLLM requires one to divide the other)")
        return None

    def tp_sizes(self, limit: int = 16) -> list[int]:
        """Tensor-parallel sizes up to ``limit`` that vLLM can shard this model over."""
        return [tp for tp in range(1, limit + 1) if self._shard_refusal(tp) is None]


#: config keys every language model must state (as integers)
#: vLLM's ``--dtype`` spellings -> bytes per element
SERVED_DTYPES = {"half": 2, "float16": 2, "bfloat16": 2, "float": 4, "float32": 4}
#: vLLM's ``--kv-cache-dtype`` spellings -> bytes per element (``auto``: the served dtype's)
KV_CACHE_DTYPES = {"auto": 0, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
#: vLLM ``--quantization`` methods that quantize a 16-bit checkpoint as it loads (FP8: weights per tensor,
#: activations per token at run time, so W8A8 on GPUs with FP8 tensor cores)
ONLINE_QUANTIZATION = ("fp8",)


def served_dtype_bytes(dtype: str = "auto", source: str = "config.json") -> int:
    """Bytes per weight as vLLM serves a checkpoint under ``--dtype dtype``, whatever its config's
    ``torch_dtype``: vLLM's ``auto`` (its default) serves float16 and bfloat16 checkpoints as they are
    and a float32 one (or one whose config names no dtype) in float16, 2 bytes either way; an explicit
    ``--dtype`` wins (``float32``: 4)."""
    d = dtype.lower()
    if d == "auto":
        return 2
    if d not in SERVED_DTYPES:
        raise FleetPlannerError(f"{source}: dtype {dtype!r} is not one vLLM serves; "
                                f"expected auto or one of {', '.join(SERVED_DTYPES)}")
    return SERVED_DTYPES[d]


def model_from_config(config: dict[str, Any], name: str = "model", source: str = "config.json",
                      dtype: str = "auto") -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face config.json dictionary: a decoder-only transformer
    with (grouped-query) attention and gated (or, by architecture, plain) MLPs, dense or a mixture of
    experts, served under vLLM's
    ``--dtype dtype`` (:func:`served_dtype_bytes`)."""
    cfg = language_config(config, source)
    unmodelled = unmodelled_layers(cfg, source)
    if unmodelled:
        key, what = unmodelled
        raise FleetPlannerError(
            f"{source}: {key}: {what} are not modelled; supported: decoder-only "
            f"transformers with multi-head or grouped-query attention, dense or "
            f"mixture-of-experts MLPs"
        )
    check_text_fields(cfg, source, "text_config." if "text_config" in config else "")
    if "text_config" in config:
        check_names(config, source)  # a multimodal config's own names, beside its text_config's
    archs = cfg.get("architectures") or []
    qwen2 = any("Qwen2" in a for a in archs) or str(cfg.get("model_type", "")).startswith("qwen2")
    qkv_bias = bool(cfg.get("attention_bias", qwen2))
    try:
        return ModelSpec(
            name=str(cfg.get("_name_or_path") or name),
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=cfg["num_attention_heads"],
            num_kv_heads=int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
            vocab_size=cfg["vocab_size"],
            max_position_embeddings=int(cfg.get("max_position_embeddings") or 4096),
            tie_word_embeddings=tied_embeddings(config, cfg, source),
            qkv_bias=qkv_bias,
            dtype_bytes=served_dtype_bytes(dtype, source),
            qk_norm=any(a.startswith("Qwen3") for a in archs),
            gated_mlp=not PLAIN_MLP_ARCHITECTURES.intersection(archs),
            # a multimodal checkpoint states its quantization beside, not inside, its text_config
            weight_bits=weight_bits(cfg if "quantization_config" in cfg else config, source),
            matmul8=matmul8(cfg if "quantization_config" in cfg else config, source),
            vision_params=vision_params(config, cfg["hidden_size"], source),
            **moe_fields(cfg, source),
            extra={"head_dim": cfg.get("head_dim"), "architectures": archs},
        )
    except ValueError as exc:  # sizes that contradict each other (more KV heads than heads ...)
        raise FleetPlannerError(f"{source}: {exc}") from None


def served_as(model: ModelSpec, quantization: str | None = None, kv_cache_dtype: str = "auto") -> ModelSpec:
    """``model`` as a vLLM server started with ``--quantization`` and ``--kv-cache-dtype`` serves it: ``fp8``
    quantizes a 16-bit checkpoint's linear layers as it loads (FP8 weights and activations; a checkpoint
    quantized already keeps its own), an FP8 KV cache takes one byte per element.  ValueError names the
    choices of a value it does not model."""
    if quantization and not model.weight_bits:
        if quantization not in ONLINE_QUANTIZATION:
            raise ValueError(f"--quantization {quantization!r}: only {', '.join(ONLINE_QUANTIZATION)} (quantized as "
                             "the model loads) is modelled; give a quantized checkpoint's config.json instead")
        model = replace(model, weight_bits=8.0, matmul8="fp8")
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"--kv-cache-dtype {kv_cache_dtype!r}: expected one of {', '.join(KV_CACHE_DTYPES)}")
    if KV_CACHE_DTYPES[kv_cache_dtype]:
        model = replace(model, kv_dtype_bytes=KV_CACHE_DTYPES[kv_cache_dtype])
    return model


def load_model_config(path: str | Path, dtype: str = "auto") -> ModelSpec:
    """Read a config.json file (or a model directory holding one), served under vLLM's ``--dtype dtype``."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))  # a leading byte-order mark is no part of the JSON
    except FileNotFoundError:
        raise FleetPlannerError(f"{p}: file not found (expected a Hugging Face config.json)") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON, or an int's digits
        raise FleetPlannerError(f"{p}: cannot read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FleetPlannerError(f"{p}: expected a JSON object")
    # named by its folder (that of the working directory for a bare file name), else by the file
    name = p.parent.name or p.resolve().parent.name or p.stem
    return model_from_config(data, name=name, source=str(p), dtype=dtype)
