"""Fields of a Hugging Face ``config.json`` beyond the plain sizes, read as transformers reads them.

A config names its architecture's variations in several spellings: mixtures of experts (Mixtral,
Qwen2/Qwen3-MoE and DeepSeek keys), quantized checkpoints (``quantization_config`` of AWQ, GPTQ, FP8,
compressed-tensors, bitsandbytes), plain rather than gated MLPs (by architecture), a tied LM head (a key
that saved files drop where it equals the config class's default, so the default comes from the
``model_type``), a multimodal model's vision tower (memory only), and layer kinds this project does
not model (latent attention, linear attention, state-space layers).
Each reader returns plain values for :func:`scenarios.models.model_from_config`; a bad value raises
:class:`~scenarios.errors.FleetPlannerError` naming the file and the key.
"""

from __future__ import annotations

import math
from typing import Any

from scenarios.errors import FleetPlannerError

#: largest size a config.json may state (2**31 - 1, a 32-bit count): far beyond any model, and it keeps a
#: typo's 1e30 layers from a loop over them or a parameter count past floating point
MAX_SIZE = 2**31 - 1


def int_field(cfg: dict[str, Any], source: str, *keys: str) -> int:
    """The first of ``keys`` the config sets (0 where none is set), which must be an integer."""
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FleetPlannerError(f"{source}: {key}: expected a non-negative integer, got {value!r:.60}")
        if value > MAX_SIZE:
            raise FleetPlannerError(f"{source}: {key}: expected an integer up to {MAX_SIZE}, got {value!r:.60}")
        return value
    return 0


def _positive_field(cfg: dict[str, Any], source: str, key: str, default: int) -> int:
    # an optional size or period that, where set, must be >= 1 (``default`` where the config leaves it out)
    return default if cfg.get(key) is None else positive_int(cfg[key], f"{source}: {key}")


def _moe_layer_count(n: int, step: int, first: int, freq: int, dense: set[int]) -> int:
    """Layers ``i < n`` with experts: ``(i + 1) % step == 0``, ``i >= first``, ``(i - first) % freq == 0`` and
    ``i`` not in ``dense``; counted in closed form (the two periods meet every ``lcm(step, freq)`` layers)."""
    g = math.gcd(step, freq)
    target = (-1 - first) % step  # first + freq * k = -1 (mod step)
    count = 0
    if target % g == 0:
        m = step // g
        k = (target // g) * pow(freq // g, -1, m) % m
        count = len(range(first + freq * k, n, freq * m))
    return count - sum(1 for i in dense if first <= i < n and (i - first) % freq == 0 and (i + 1) % step == 0)


def moe_fields(cfg: dict[str, Any], source: str) -> dict[str, int]:
    """Mixture-of-experts fields of a config.json in the spellings of Mixtral (``num_local_experts``,
    experts of ``intermediate_size``), Qwen2/Qwen3-MoE (``num_experts``, ``moe_intermediate_size``,
    ``shared_expert_intermediate_size``, ``decoder_sparse_step``, ``mlp_only_layers``) and DeepSeek
    (``n_routed_experts``, ``n_shared_experts``, ``first_k_dense_replace``, ``moe_layer_freq``)."""
    experts = int_field(cfg, source, "num_local_experts", "num_experts", "n_routed_experts")
    if experts <= 1:
        return {}
    top_k = int_field(cfg, source, "num_experts_per_tok", "experts_per_token", "moe_topk")
    if not 1 <= top_k <= experts:
        key = next((k for k in ("num_experts_per_tok", "experts_per_token", "moe_topk") if k in cfg),
                   "num_experts_per_tok")
        raise FleetPlannerError(f"{source}: {key}: expected 1..{experts} (the number of experts), got {cfg.get(key)!r}")
    width = _positive_field(cfg, source, "moe_intermediate_size", cfg["intermediate_size"])
    shared = (
        int_field(cfg, source, "shared_expert_intermediate_size")
        or int_field(cfg, source, "n_shared_experts") * width
    )
    n = cfg["num_hidden_layers"]
    dense_only = [] if cfg.get("mlp_only_layers") is None else cfg["mlp_only_layers"]
    if not (isinstance(dense_only, list)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in dense_only)):
        raise FleetPlannerError(f"{source}: mlp_only_layers: expected a list of layer indices (integers >= 0), "
                                f"got {dense_only!r:.60}")
    step = _positive_field(cfg, source, "decoder_sparse_step", 1)
    first = int_field(cfg, source, "first_k_dense_replace")
    freq = _positive_field(cfg, source, "moe_layer_freq", 1)
    layers = _moe_layer_count(n, step, first, freq, set(dense_only))
    if layers == 0:
        raise FleetPlannerError(
            f"{source}: num_experts={experts} but no layer holds experts "
            f"(mlp_only_layers / decoder_sparse_step / first_k_dense_replace)"
        )
    return {
        "num_experts": experts,
        "experts_per_token": top_k,
        "expert_intermediate_size": width,
        "shared_expert_intermediate_size": shared,
        "moe_layers": layers,
    }


#: quantization methods whose weight width the config states, and where
QUANT_METHODS = ("awq", "gptq", "fp8", "fbgemm_fp8", "compressed-tensors", "bitsandbytes")


def weight_bits(cfg: dict[str, Any], source: str) -> float:
    """Bits per quantized linear weight, scales included (16-bit scales, one per ``group_size`` weights: a
    positive integer, or -1 for one per channel), from ``quantization_config``; 0 where the checkpoint is not
    quantized."""
    q = cfg.get("quantization_config")
    if not q:
        return 0.0
    if not isinstance(q, dict):
        raise FleetPlannerError(f"{source}: quantization_config: expected an object, got {q!r}")
    method = str(q.get("quant_method", "")).lower()
    where = "quantization_config"
    group = q.get("group_size")
    bits: object
    if method in ("fp8", "fbgemm_fp8"):
        bits = 8
    elif method == "bitsandbytes":
        for key in ("load_in_4bit", "load_in_8bit"):
            if q.get(key) is not None and not isinstance(q[key], bool):
                raise FleetPlannerError(f"{source}: quantization_config.{key}: expected true or false, got "
                                        f"{q[key]!r:.60}")
        bits = 4 if q.get("load_in_4bit") else 8 if q.get("load_in_8bit") else None
    elif method == "compressed-tensors":
        weights = [g["weights"] for g in _tensor_groups(q)]
        bits = weights[0].get("num_bits") if weights else None
        group = weights[0].get("group_size") if weights else None
        where = "quantization_config.config_groups.*.weights.num_bits"
    elif method in ("awq", "gptq"):
        bits = q.get("bits", q.get("w_bit"))
        where = "quantization_config.bits"
    else:
        raise FleetPlannerError(f"{source}: quantization_config.quant_method: unknown method {method!r}; "
                                f"known: {', '.join(QUANT_METHODS)}")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise FleetPlannerError(f"{source}: {where}: expected the weight bit width (1-16) for quant_method "
                                f"{method!r}, got {bits!r}")
    scales, known = 0.0, group is None or (type(group) is int and group == -1)  # one scale per channel: ~nothing
    if isinstance(group, int) and not isinstance(group, bool) and group >= 1:
        scales, known = 16 / group, True
    if not known or bits + scales > 16:
        where = where.rsplit(".", 1)[0] + ".group_size"
        raise FleetPlannerError(f"{source}: {where}: expected the weights that share one 16-bit scale, a whole "
                                f"number enough that {bits}-bit weights with their scales take at most 16 bits "
                                f"(-1: one scale per channel), got {group!r:.60}")
    return bits + scales


def matmul8(cfg: dict[str, Any], source: str = "config.json") -> str:
    """``"fp8"`` or ``"int8"`` where ``quantization_config`` (checked by :func:`weight_bits`) quantizes the
    linear layers' activations as well as their weights to 8 bits, so that vLLM multiplies on 8-bit tensor
    cores: its ``fp8`` and ``fbgemm_fp8`` methods always do (on GPUs with FP8; others fall back to
    weight-only), compressed-tensors where a group's ``input_activations`` are 8-bit like its weights;
    ``""`` for weight-only methods (AWQ, GPTQ, bitsandbytes) and unquantized checkpoints."""
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        return ""
    method = str(q.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8"):
        return "fp8"
    for group in _tensor_groups(q) if method == "compressed-tensors" else ():
        w, a = group["weights"], group.get("input_activations")
        if isinstance(a, dict) and w.get("num_bits") == 8 == a.get("num_bits"):
            kind = w.get("type", "int")
            if not isinstance(kind, str) or kind.lower() not in ("int", "float"):
                raise FleetPlannerError(f"{source}: quantization_config.config_groups.*.weights.type: expected "
                                        f"'int' or 'float', got {kind!r:.60}")
            return "fp8" if kind.lower() == "float" else "int8"
    return ""


def _tensor_groups(q: dict[str, Any]) -> list[dict[str, Any]]:
    # a compressed-tensors quantization_config's config_groups that state their weights' scheme
    groups = q.get("config_groups")
    return [g for g in (groups.values() if isinstance(groups, dict) else ())
            if isinstance(g, dict) and isinstance(g.get("weights"), dict)]


#: architectures whose MLP is plain (up, activation, down) rather than gated
PLAIN_MLP_ARCHITECTURES = frozenset({
    "GPTNeoXForCausalLM", "PhiForCausalLM", "Starcoder2ForCausalLM", "NemotronForCausalLM", "PersimmonForCausalLM",
})

#: config keys of architectures whose layers this model does not describe, with what they are
UNMODELLED = {
    "kv_lora_rank": "multi-head latent attention (DeepSeek-V2/V3): its compressed KV cache and projections",
    "layers_block_type": "state-space (Mamba) layers: their recurrent state instead of a KV cache",
    "mamba_d_state": "state-space (Mamba) layers: their recurrent state instead of a KV cache",
    "ssm_cfg": "state-space (Mamba) layers: their recurrent state instead of a KV cache",
    "cross_attention_layers": "cross-attention layers on image features (Llama 3.2 Vision)",
}

#: entries of a config's ``layer_types`` that are attention over a KV cache (sliding windows are served
#: with a full-length cache, as vLLM's V1 engine of the measured runs did)
ATTENTION_LAYER_TYPES = frozenset({"full_attention", "sliding_attention", "attention"})

#: ``model_type`` values of language models whose layers this model does not describe (their telling keys
#: may be left out of a saved config, being class defaults)
UNMODELLED_TYPES = {
    "llama4_text": "Llama 4's layers (routed and shared experts, interleaved; chunked attention)",
    "mllama_text_model": "cross-attention layers on image features (Llama 3.2 Vision)",
}


def unmodelled_layers(cfg: dict[str, Any], source: str) -> tuple[str, str] | None:
    """The first key of a language config that shows layers this model does not describe, with what they
    are (:data:`UNMODELLED`, :data:`UNMODELLED_TYPES`, a ``layer_types`` entry other than attention)."""
    found = [(k, what) for k, what in UNMODELLED.items() if cfg.get(k) is not None]
    if str(cfg.get("model_type")) in UNMODELLED_TYPES:
        found.append(("model_type", UNMODELLED_TYPES[cfg["model_type"]]))
    kinds = cfg.get("layer_types")
    if kinds is not None and not isinstance(kinds, list):
        raise FleetPlannerError(f"{source}: layer_types: expected a list of layer kinds (one per layer), "
                                f"got {kinds!r:.60}")
    other = sorted({str(k) for k in kinds or ()} - ATTENTION_LAYER_TYPES)
    if other:
        found.append(("layer_types", f"layers of kind {', '.join(other)} (not attention over a KV cache)"))
    return found[0] if found else None


#: ``model_type`` values whose transformers config class ties the LM head to the input embedding unless
#: the config says otherwise (Gemma's files omit the key: saved configs drop a value equal to the default)
TIED_BY_DEFAULT = frozenset({
    "gemma", "gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "recurrent_gemma", "vaultgemma",
    "cohere", "cohere2", "starcoder2", "gpt_bigcode", "gpt2", "gpt_neo", "opt", "falcon", "jetmoe", "minicpm3",
    "smollm3", "ernie4_5", "ernie4_5_moe", "lfm2", "xglm",
})


def tied_embeddings(config: dict[str, Any], cfg: dict[str, Any], source: str) -> bool:
    """Whether the LM head shares the input embedding table: the (text) config's
    ``tie_word_embeddings``, else its config class's default for ``model_type`` (:data:`TIED_BY_DEFAULT`)."""
    value = cfg.get("tie_word_embeddings")
    if value is None:
        model_type = cfg.get("model_type") or config.get("model_type")
        return model_type in TIED_BY_DEFAULT
    if not isinstance(value, bool):
        raise FleetPlannerError(f"{source}: tie_word_embeddings: expected true or false, got {value!r}")
    return value


#: size fields of the config classes that serve as a multimodal model's ``text_config``, where they have
#: class defaults (transformers' values): a saved nested config leaves out every value equal to its class's
#: default, so Gemma 3's text_config may name neither its heads nor its vocabulary
TEXT_CONFIG_DEFAULTS: dict[str, dict[str, int]] = {
    "llama": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 2048},
    "mistral": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 131072},
    "qwen2": {"hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 32, "vocab_size": 151936, "max_position_embeddings": 32768},
    "gemma2": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
               "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192},
    "gemma3_text": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
                    "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 262208,
                    "max_position_embeddings": 131072},
}


#: size fields every decoder-only config sets, and those it may leave out (defaults apply)
REQUIRED_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
OPTIONAL_SIZES = ("num_key_value_heads", "max_position_embeddings", "head_dim")


def positive_int(value: Any, where: str, what: str = "") -> int:
    """``value``, which must be a positive integer up to :data:`MAX_SIZE`; else an error naming ``where``
    (``file: field``) and ``what`` the number is."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FleetPlannerError(f"{where}: expected a positive integer{what}, got {value!r:.60}")
    if value > MAX_SIZE:
        raise FleetPlannerError(f"{where}: expected a positive integer up to {MAX_SIZE}{what}, got {value!r:.60}")
    return value


def check_text_fields(cfg: dict[str, Any], source: str, prefix: str = "") -> None:
    """Refuse a language config whose sizes are not positive integers, or whose ``architectures`` /
    ``model_type`` are not names, naming the key (``prefix``: ``text_config.`` for a multimodal one)."""
    missing = [key for key in REQUIRED_SIZES if key not in cfg]
    if missing:
        where = f"{prefix.rstrip('.')}: " if prefix else ""
        raise FleetPlannerError(f"{source}: {where}missing field(s) {', '.join(missing)}")
    for key in REQUIRED_SIZES + OPTIONAL_SIZES:
        if key in REQUIRED_SIZES or cfg.get(key) is not None:
            positive_int(cfg.get(key), f"{source}: {prefix}{key}")
    if cfg.get("head_dim") is None and cfg["hidden_size"] < cfg["num_attention_heads"]:
        raise FleetPlannerError(f"{source}: {prefix}hidden_size: {cfg['hidden_size']} is less than one per attention "
                                f"head ({prefix}num_attention_heads: {cfg['num_attention_heads']}) and no "
                                f"{prefix}head_dim is given: expected a head_dim of at least 1")
    if cfg.get("attention_bias") is not None and not isinstance(cfg["attention_bias"], bool):
        raise FleetPlannerError(f"{source}: {prefix}attention_bias: expected true or false, got "
                                f"{cfg['attention_bias']!r:.60}")
    check_names(cfg, source, prefix)


def check_names(cfg: dict[str, Any], source: str, prefix: str = "") -> None:
    """Refuse ``architectures`` that are not a list of class names, or a ``model_type`` that is no name."""
    archs = cfg.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise FleetPlannerError(f"{source}: {prefix}architectures: expected a list of class names, got {archs!r:.60}")
    if cfg.get("model_type") is not None and not isinstance(cfg["model_type"], str):
        raise FleetPlannerError(f"{source}: {prefix}model_type: expected a name, got {cfg['model_type']!r:.60}")


def language_config(config: dict[str, Any], source: str) -> dict[str, Any]:
    """The language model's fields: the config itself, or a multimodal config's ``text_config`` with the
    size fields its class defaults to (:data:`TEXT_CONFIG_DEFAULTS`) filled in where it leaves them out."""
    text = config.get("text_config")
    if text is None:
        return dict(config)
    if not isinstance(text, dict):
        raise FleetPlannerError(f"{source}: text_config: expected an object, got {text!r}")
    return {**TEXT_CONFIG_DEFAULTS.get(str(text.get("model_type")), {}), **text}


#: size fields of the CLIP and SigLIP vision config classes (transformers' defaults), for a saved
#: ``vision_config`` that leaves them out
VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "patch_size": 16}
_VISION_TYPES_WITH_DEFAULTS = ("clip_vision_model", "siglip_vision_model")


def _vision_int(v: dict[str, Any], source: str, key: str, default: int | None = None) -> int:
    value = v.get(key)
    value = default if value is None else value  # a size the config leaves out or sets to null: the default
    return positive_int(value, f"{source}: vision_config.{key}", " (a size of the vision tower)")


def vision_params(config: dict[str, Any], text_hidden: int, source: str) -> int:
    """Weights of a multimodal model's vision tower and projector (0 without a ``vision_config``): vLLM
    loads them beside the language model, so they take GPU memory, but text requests never run them.
    Counted from the tower's sizes in two spellings, ViT-style (CLIP, SigLIP: ``num_hidden_layers``,
    ``hidden_size``, ``intermediate_size``; LLaVA, Gemma 3, Mistral 3) and Qwen2-VL's (``depth``, with
    ``embed_dim`` and ``mlp_ratio``, or Qwen2.5-VL's gated ``intermediate_size``, and a patch merger);
    biases and norms are left out (well under 1 %)."""
    v = config.get("vision_config")
    if v is None:
        return 0
    if not isinstance(v, dict):
        raise FleetPlannerError(f"{source}: vision_config: expected an object, got {v!r}")
    if "depth" in v:  # Qwen2-VL / Qwen2.5-VL
        layers = _vision_int(v, source, "depth")
        h = _vision_int(v, source, "embed_dim" if "embed_dim" in v else "hidden_size")
        if "intermediate_size" in v:
            mlp = 3 * h * _vision_int(v, source, "intermediate_size")
        else:
            mlp = 2 * h * h * _vision_int(v, source, "mlp_ratio", 4)
        merged = h * _vision_int(v, source, "spatial_merge_size", 2) ** 2
        out = _vision_int(v, source, "out_hidden_size", text_hidden)
        patch = 3 * _vision_int(v, source, "temporal_patch_size", 2) * _vision_int(v, source, "patch_size", 14) ** 2
        return layers * (4 * h * h + mlp) + merged * merged + merged * out + patch * h
    defaults = VISION_DEFAULTS if v.get("model_type") in _VISION_TYPES_WITH_DEFAULTS else {}
    layers, h, i, p = (_vision_int(v, source, k, defaults.get(k))
                       for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "patch_size"))
    image = v.get("image_size")
    positions = (image // p) ** 2 if isinstance(image, int) and image >= p else 0
    # projector: one linear layer to the language model's width, or two (LLaVA's MLP with an activation)
    projector = h * text_hidden + (text_hidden * text_hidden if "projector_hidden_act" in config else 0)
    return layers * (4 * h * h + 2 * h * i) + (positions + 3 * p * p) * h + projector
