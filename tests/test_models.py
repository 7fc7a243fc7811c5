"""Served models from their config.json: dense and mixture-of-experts parameter counts, the spellings of
the MoE fields, and architectures refused with the field that shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scenarios.catalog import MODELS, find_model
from scenarios.errors import FleetPlannerError
from scenarios.models import load_model_config, model_from_config

MIXTRAL = MODELS["mistralai/Mixtral-8x7B-Instruct-v0.1"]
QWEN3_MOE = MODELS["Qwen/Qwen3-30B-A3B"]

#: DeepSeek-MoE-16B's config.json fields (DeepSeek spelling: a dense first layer, shared experts)
DEEPSEEK_MOE_16B = {
    "architectures": ["DeepseekForCausalLM"], "hidden_size": 2048, "intermediate_size": 10944,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 102400,
    "max_position_embeddings": 4096, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
    "moe_intermediate_size": 1408, "first_k_dense_replace": 1, "moe_layer_freq": 1,
}
#: Qwen1.5-MoE-A2.7B's config.json fields (Qwen2-MoE spelling: one shared expert of its own width)
QWEN2_MOE = {
    "architectures": ["Qwen2MoeForCausalLM"], "hidden_size": 2048, "intermediate_size": 5632,
    "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
    "max_position_embeddings": 8192, "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1, "mlp_only_layers": [],
}


def test_mixtral_total_and_active_parameters() -> None:
    # the safetensors total of Mixtral-8x7B (46,702,792,704; "46.7B, 12.9B active" on its model card)
    assert MIXTRAL.params == 46_702_792_704
    assert (MIXTRAL.moe_layers, MIXTRAL.num_experts, MIXTRAL.experts_per_token) == (32, 8, 2)
    active = MIXTRAL.flops_per_token / 2 + MIXTRAL.vocab_size * MIXTRAL.hidden_size  # + input embedding
    assert active / 1e9 == pytest.approx(12.9, abs=0.05)


def test_qwen3_moe_total_and_active_parameters() -> None:
    # model card: 30.5B in total, 3.3B activated (its figures cut to one decimal); q/k norms count (Qwen3)
    assert QWEN3_MOE.params / 1e9 == pytest.approx(30.5, abs=0.05)
    active = QWEN3_MOE.flops_per_token / 2 + QWEN3_MOE.vocab_size * QWEN3_MOE.hidden_size
    assert 3.3 <= active / 1e9 < 3.4
    assert QWEN3_MOE.qk_norm and QWEN3_MOE.head_dim == 128


def test_deepseek_spelling_dense_first_layer_and_shared_experts() -> None:
    m = model_from_config(DEEPSEEK_MOE_16B)
    assert m.moe_layers == 27  # first_k_dense_replace = 1
    assert m.shared_expert_intermediate_size == 2 * 1408
    assert m.params / 1e9 == pytest.approx(16.4, abs=0.05)  # model card: 16.4B


def test_qwen2_moe_spelling_and_layers_without_experts() -> None:
    m = model_from_config(QWEN2_MOE)
    assert (m.moe_layers, m.expert_intermediate_size, m.shared_expert_intermediate_size) == (24, 1408, 5632)
    assert m.params / 1e9 == pytest.approx(14.3, abs=0.05)  # model card: 14.3B, 2.7B activated
    sparse = model_from_config({**QWEN2_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [1]})
    assert sparse.moe_layers == 11  # layers 1, 3, ..., 23 minus layer 1
    assert sparse.params < m.params


def test_a_dense_model_is_unchanged_by_the_moe_fields() -> None:
    dense = MODELS["meta-llama/Meta-Llama-3-8B-Instruct"]
    assert dense.num_experts == 0 and dense.routed_expert_params == 0
    assert dense.params == dense.num_layers * dense.layer_params + dense.embedding_params + dense.hidden_size
    one_expert = model_from_config({**QWEN2_MOE, "num_experts": 1, "num_experts_per_tok": 1})
    assert one_expert.num_experts == 0  # a single "expert" is a dense MLP


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"num_experts_per_tok": 0}, "num_experts_per_tok: expected 1..60"),
        ({"num_experts_per_tok": 61}, "num_experts_per_tok: expected 1..60"),
        ({"num_experts": "many"}, "num_experts: expected a non-negative integer, got 'many'"),
        ({"mlp_only_layers": 3}, "mlp_only_layers: expected a list of layer indices"),
        ({"mlp_only_layers": list(range(24))}, "no layer holds experts"),
    ],
)
def test_bad_moe_fields_are_named(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(FleetPlannerError, match=r"^cfg\.json: ") as err:
        model_from_config({**QWEN2_MOE, **patch}, source="cfg.json")
    assert expected in str(err.value)


def test_a_bad_top_k_is_named_in_the_configs_own_spelling() -> None:
    cfg = {k: v for k, v in QWEN2_MOE.items() if k != "num_experts_per_tok"}
    with pytest.raises(FleetPlannerError) as err:
        model_from_config({**cfg, "moe_topk": 0}, source="cfg.json")
    assert str(err.value) == "cfg.json: moe_topk: expected 1..60 (the number of experts), got 0"


@pytest.mark.parametrize(
    ("key", "what"),
    [("kv_lora_rank", "multi-head latent attention"), ("layers_block_type", "state-space"),
     ("mamba_d_state", "state-space")],
)
def test_unmodelled_architectures_are_refused_naming_the_field(tmp_path: Path, key: str, what: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**DEEPSEEK_MOE_16B, key: 16}))
    with pytest.raises(FleetPlannerError) as err:
        load_model_config(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and what in message and "not modelled" in message


LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
    "torch_dtype": "float16",
}


@pytest.mark.parametrize(
    ("quant", "bits"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, 4.125),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, 4.125),
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, 8),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, 8),
        ({"quant_method": "compressed-tensors",
          "config_groups": {"group_0": {"weights": {"num_bits": 4, "group_size": 128}, "targets": ["Linear"]}}},
         4.125),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, 4),
    ],
)
def test_quantized_weights_shrink_the_linear_layers_only(quant: dict[str, object], bits: float) -> None:
    dense = model_from_config(LLAMA3_8B)
    m = model_from_config({**LLAMA3_8B, "quantization_config": quant})
    assert m.weight_bits == bits and m.params == dense.params
    rest = dense.params - dense.linear_params  # embeddings, LM head, norms stay 16-bit
    assert m.weight_bytes == int(dense.linear_params * bits / 8) + rest * 2
    assert m.kv_bytes_per_token == dense.kv_bytes_per_token and m.flops_per_token == dense.flops_per_token


def test_quantized_checkpoint_sizes_match_published_ones() -> None:
    # Llama-3-8B-Instruct checkpoints: AWQ 4-bit g128 ~5.7 GB, FP8 ~9.1 GB (their safetensors files)
    awq = model_from_config({**LLAMA3_8B, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}})
    fp8 = model_from_config({**LLAMA3_8B, "quantization_config": {"quant_method": "fp8"}})
    assert awq.weight_bytes / 1e9 == pytest.approx(5.7, abs=0.05)
    assert fp8.weight_bytes / 1e9 == pytest.approx(9.1, abs=0.05)


def _ct(weights: dict[str, object], acts: dict[str, object] | None) -> dict[str, object]:
    # a compressed-tensors quantization_config of one group (llm-compressor's layout)
    group = {"weights": weights, "input_activations": acts, "targets": ["Linear"]}
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": group}}


@pytest.mark.parametrize(
    ("quant", "kind"),
    [
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8"),
        ({"quant_method": "fp8", "activation_scheme": "static"}, "fp8"),
        ({"quant_method": "fbgemm_fp8"}, "fp8"),
        (_ct({"num_bits": 8, "type": "float"}, {"num_bits": 8, "type": "float", "dynamic": True}), "fp8"),
        (_ct({"num_bits": 8, "type": "int"}, {"num_bits": 8, "type": "int", "dynamic": True}), "int8"),
        (_ct({"num_bits": 8, "type": "float"}, None), ""),  # W8A16: weight-only
        (_ct({"num_bits": 4, "type": "int", "group_size": 128}, None), ""),
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, ""),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, ""),
    ],
)
def test_w8a8_checkpoints_are_told_from_weight_only_ones(quant: dict[str, object], kind: str) -> None:
    m = model_from_config({**LLAMA3_8B, "quantization_config": quant})
    assert m.matmul8 == kind
    assert model_from_config(LLAMA3_8B).matmul8 == ""


def test_linear_flops_leave_out_the_lm_head_and_count_routed_experts_only() -> None:
    dense = model_from_config(LLAMA3_8B)
    # the LM head and the norms' 2 x hidden weights a layer
    assert dense.flops_per_token - dense.linear_flops_per_token == 2.0 * (128256 * 4096 + 32 * 2 * 4096)
    moe = MODELS["mistralai/Mixtral-8x7B-Instruct-v0.1"]
    attn = 2 * 4096 * (32 + 8) * 128
    assert moe.linear_flops_per_token == 2.0 * 32 * (attn + 2 * 3 * 4096 * 14336)


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ({"quant_method": "hqq"}, "quantization_config.quant_method: unknown method 'hqq'; known: awq, gptq"),
        ({"quant_method": "awq"}, "quantization_config.bits: expected the weight bit width (1-16)"),
        ({"quant_method": "compressed-tensors", "config_groups": {}},
         "quantization_config.config_groups.*.weights.num_bits: expected"),
        ("int4", "quantization_config: expected an object, got 'int4'"),
        (_ct({"num_bits": 8, "type": "fp8"}, {"num_bits": 8, "type": "float"}),
         "quantization_config.config_groups.*.weights.type: expected 'int' or 'float', got 'fp8'"),
    ],
)
def test_bad_quantization_config_is_named(quant: object, expected: str) -> None:
    with pytest.raises(FleetPlannerError, match=r"^q\.json: ") as err:
        model_from_config({**LLAMA3_8B, "quantization_config": quant}, source="q.json")
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"num_attention_heads": 0}, "num_attention_heads: expected a positive integer, got 0"),
        ({"num_hidden_layers": -4}, "num_hidden_layers: expected a positive integer, got -4"),
        ({"hidden_size": 4096.0}, "hidden_size: expected a positive integer, got 4096.0"),
        ({"num_key_value_heads": "x"}, "num_key_value_heads: expected a positive integer, got 'x'"),
        ({"max_position_embeddings": [1]}, "max_position_embeddings: expected a positive integer, got [1]"),
        ({"head_dim": -128}, "head_dim: expected a positive integer, got -128"),
        ({"architectures": 5}, "architectures: expected a list of class names, got 5"),
        ({"model_type": ["llama"]}, "model_type: expected a name, got ['llama']"),
        ({"num_key_value_heads": 64}, "num_kv_heads(=64) must divide num_heads(=32)"),
    ],
)
def test_bad_sizes_are_named_with_their_key(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(FleetPlannerError, match=r"^c\.json: ") as err:
        model_from_config({**LLAMA3_8B, **change}, source="c.json")
    assert expected in str(err.value)


def test_served_dtype_follows_vllm_auto_unless_the_server_said_otherwise(tmp_path: Path) -> None:
    # vLLM's --dtype auto serves a float32 checkpoint (or one whose config names no dtype) in float16
    f32 = {**LLAMA3_8B, "torch_dtype": "float32"}
    no_dtype = {k: v for k, v in LLAMA3_8B.items() if k != "torch_dtype"}
    for cfg in (f32, no_dtype, {**LLAMA3_8B, "torch_dtype": "bfloat16"}):
        assert model_from_config(cfg).dtype_bytes == 2
    served32 = model_from_config(f32, dtype="float32")
    assert served32.dtype_bytes == 4 and served32.weight_bytes == 2 * model_from_config(f32).weight_bytes
    assert served32.kv_bytes_per_token == 2 * model_from_config(f32).kv_bytes_per_token
    assert model_from_config(f32, dtype="half").dtype_bytes == 2
    (tmp_path / "config.json").write_text(json.dumps(f32))
    assert load_model_config(tmp_path, dtype="float").dtype_bytes == 4
    with pytest.raises(FleetPlannerError, match=r"config.json: dtype 'fp64' is not one vLLM serves; expected auto"):
        model_from_config(f32, dtype="fp64")


#: microsoft/phi-2's config.json fields (a plain MLP: up and down projections, no gate)
PHI_2 = {
    "architectures": ["PhiForCausalLM"], "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 32,
    "num_attention_heads": 32, "vocab_size": 51200, "max_position_embeddings": 2048, "torch_dtype": "float16",
}


def test_plain_mlp_architectures_count_two_projections() -> None:
    # phi-2: 2,779,683,840 parameters in its safetensors files (biases, which this model leaves out, are 0.03 %)
    phi2 = model_from_config(PHI_2)
    assert not phi2.gated_mlp and phi2.params == pytest.approx(2_779_683_840, rel=1e-3)
    gated = model_from_config({**PHI_2, "architectures": ["Phi3ForCausalLM"]})
    assert gated.gated_mlp and gated.params - phi2.params == 32 * 2560 * 10240
    assert phi2.mlp_activation_width == 2 * 10240 and gated.mlp_activation_width == 3 * 10240
    assert phi2.linear_params == 32 * (4 * 2560 * 2560 + 2 * 2560 * 10240)
    # pythia-1.4b (GPT-NeoX): 1,414,647,808 parameters
    pythia = model_from_config({"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 2048,
                                "intermediate_size": 8192, "num_hidden_layers": 24, "num_attention_heads": 16,
                                "vocab_size": 50304, "max_position_embeddings": 2048})
    assert pythia.params == pytest.approx(1_414_647_808, rel=1e-3)


#: Gemma-2-9B's config.json as published: no tie_word_embeddings key (saved configs drop a value equal to
#: the config class's default, which for Gemma is a tied LM head)
GEMMA_2_9B = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "head_dim": 256, "hidden_size": 3584,
    "intermediate_size": 14336, "max_position_embeddings": 8192, "num_attention_heads": 16,
    "num_hidden_layers": 42, "num_key_value_heads": 8, "sliding_window": 4096, "torch_dtype": "float32",
    "vocab_size": 256000,
}


def test_a_missing_tie_key_takes_the_config_class_default() -> None:
    gemma = model_from_config(GEMMA_2_9B)
    assert gemma.tie_word_embeddings
    assert gemma.params / 1e9 == pytest.approx(9.24, abs=0.005)  # model card: 9.24B (one 256000 x 3584 table)
    untied = model_from_config({**GEMMA_2_9B, "tie_word_embeddings": False})
    assert untied.params - gemma.params == 256000 * 3584
    # a multimodal config: the text config's own model_type decides (Gemma 3: tied; Mistral 3's text model: not)
    gemma3 = model_from_config({"model_type": "gemma3", "text_config": {**GEMMA_2_9B, "model_type": "gemma3_text"}})
    assert gemma3.tie_word_embeddings
    assert not model_from_config({**GEMMA_2_9B, "model_type": "llama"}).tie_word_embeddings
    assert not model_from_config({"model_type": "mistral3", "tie_word_embeddings": True,
                                  "text_config": {**GEMMA_2_9B, "model_type": "mistral"}}).tie_word_embeddings


@pytest.mark.parametrize(("name", "billions"), [
    ("gemma-2-9b-it", 9.24), ("Qwen2.5-7B-Instruct", 7.62), ("Llama-3.1-8B-Instruct", 8.03),
    ("Llama-3.1-70B-Instruct", 70.55), ("Mistral-7B-Instruct-v0.3", 7.25),
])
def test_catalogued_models_have_their_model_cards_sizes(name: str, billions: float) -> None:
    m = find_model(name)
    assert m is not None and m.params / 1e9 == pytest.approx(billions, abs=0.01)
    gemma = model_from_config({**GEMMA_2_9B, "_name_or_path": "google/gemma-2-9b-it"})
    assert find_model("google/gemma-2-9b-it") == gemma


def test_a_bad_tie_value_is_named() -> None:
    with pytest.raises(FleetPlannerError, match="tie_word_embeddings: expected true or false, got 'yes'"):
        model_from_config({**GEMMA_2_9B, "tie_word_embeddings": "yes"})


#: gemma-3-4b-it's config.json as published (vision_config and token ids left out): its text_config names
#: only the sizes that differ from Gemma3TextConfig's defaults
GEMMA_3_4B = {
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "torch_dtype": "bfloat16",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
}


def test_a_nested_text_config_takes_its_class_defaults() -> None:
    m = model_from_config(GEMMA_3_4B)
    assert (m.num_heads, m.num_kv_heads, m.head_dim, m.vocab_size) == (8, 4, 256, 262208)
    assert m.tie_word_embeddings
    assert m.params / 1e9 == pytest.approx(3.88, abs=0.005)  # the language model of "4B" (+0.42B vision tower)
    # what the file says wins over the defaults
    wider = model_from_config({**GEMMA_3_4B, "text_config": {**GEMMA_3_4B["text_config"], "num_attention_heads": 16}})
    assert wider.num_heads == 16
    # a text model type without known defaults must name its sizes
    with pytest.raises(FleetPlannerError, match=r"c\.json: text_config: missing field\(s\) "
                                                r"num_attention_heads, vocab_size"):
        model_from_config({"text_config": {**GEMMA_3_4B["text_config"], "model_type": "olmo2"}}, source="c.json")
    with pytest.raises(FleetPlannerError, match=r"c\.json: text_config: expected an object"):
        model_from_config({"text_config": [1]}, source="c.json")
    # the multimodal config's own names are checked as the text config's are
    with pytest.raises(FleetPlannerError, match=r"c\.json: architectures: expected a list of class names, got -1"):
        model_from_config({**GEMMA_3_4B, "architectures": -1}, source="c.json")
    with pytest.raises(FleetPlannerError, match=r"c\.json: model_type: expected a name, got 3"):
        model_from_config({**GEMMA_3_4B, "model_type": 3}, source="c.json")


@pytest.mark.parametrize(("model_type", "what"),
                         [("llama4_text", "Llama 4"), ("mllama_text_model", r"Llama 3\.2 Vision")])
def test_language_models_of_unmodelled_kinds_are_refused(model_type: str, what: str) -> None:
    with pytest.raises(FleetPlannerError, match=rf"c\.json: model_type: .*{what}.* not modelled"):
        model_from_config({"text_config": {"model_type": model_type, "hidden_size": 5120}}, source="c.json")


def test_layers_other_than_attention_are_refused_by_their_kind() -> None:
    # Gemma 3 lists sliding and full attention layers: modelled; Qwen3-Next's linear attention is not
    gemma = {**GEMMA_2_9B, "layer_types": ["sliding_attention", "full_attention"] * 21}
    assert model_from_config(gemma).num_layers == 42
    with pytest.raises(FleetPlannerError,
                       match=r"c\.json: layer_types: layers of kind linear_attention .*not modelled"):
        model_from_config({**GEMMA_2_9B, "layer_types": ["linear_attention", "full_attention"]}, source="c.json")


def test_a_multimodal_checkpoint_quantized_beside_its_text_config() -> None:
    awq = {**GEMMA_3_4B, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    quantized, plain = model_from_config(awq), model_from_config(GEMMA_3_4B)
    assert quantized.weight_bits == pytest.approx(4.125) and quantized.weight_bytes < plain.weight_bytes / 2
    # a Qwen2 language model inside a multimodal config keeps its q/k/v biases
    qwen = model_from_config({"text_config": {**QWEN2_MOE, "architectures": [], "model_type": "qwen2_moe"}})
    assert qwen.qkv_bias


#: vision_config fields as published: gemma-3-4b-it (SigLIP) and Qwen2.5-VL-7B-Instruct (Qwen's spelling)
SIGLIP_GEMMA_3 = {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                  "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                  "patch_size": 14, "vision_use_head": False}
QWEN2_5_VL_7B = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "hidden_size": 3584,
    "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "vocab_size": 152064, "max_position_embeddings": 128000, "tie_word_embeddings": False,
    "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                      "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14,
                      "spatial_merge_size": 2, "window_size": 112, "temporal_patch_size": 2},
}


def test_a_vision_tower_takes_memory_but_not_step_time() -> None:
    gemma = model_from_config({**GEMMA_3_4B, "vision_config": SIGLIP_GEMMA_3})
    text_only = model_from_config(GEMMA_3_4B)
    # model card: 4.3B in all, of which the SigLIP encoder 417M; safetensors 8.6 GB
    assert gemma.vision_params / 1e6 == pytest.approx(419, abs=3)
    assert (gemma.params + gemma.vision_params) / 1e9 == pytest.approx(4.30, abs=0.005)
    assert gemma.weight_bytes - text_only.weight_bytes == 2 * gemma.vision_params
    assert gemma.step_weight_bytes == text_only.step_weight_bytes
    assert gemma.flops_per_token == text_only.flops_per_token
    # Qwen2.5-VL-7B: 8.29B in all (a Qwen2.5-7B language model of 7.62B and its vision encoder)
    qwen = model_from_config(QWEN2_5_VL_7B)
    assert qwen.params / 1e9 == pytest.approx(7.62, abs=0.005)
    assert (qwen.params + qwen.vision_params) / 1e9 == pytest.approx(8.29, abs=0.005)


def test_a_bad_vision_size_is_named() -> None:
    bad = {**GEMMA_3_4B, "vision_config": {**SIGLIP_GEMMA_3, "model_type": "other", "num_hidden_layers": None}}
    with pytest.raises(FleetPlannerError, match=r"c\.json: vision_config\.num_hidden_layers: expected a positive"):
        model_from_config(bad, source="c.json")
    # Qwen's projector width: a string had raised a bare ValueError from int(); null means the text width
    vision = QWEN2_5_VL_7B["vision_config"]
    assert isinstance(vision, dict)
    bad = {**QWEN2_5_VL_7B, "vision_config": {**vision, "out_hidden_size": "wide"}}
    with pytest.raises(FleetPlannerError, match=r"c\.json: vision_config\.out_hidden_size: expected a positive"):
        model_from_config(bad, source="c.json")
    unset = model_from_config({**QWEN2_5_VL_7B, "vision_config": {**vision, "out_hidden_size": None}})
    assert unset.vision_params == model_from_config(QWEN2_5_VL_7B).vision_params  # 3584 is the text width


@pytest.mark.parametrize(
    ("name", "tp", "expected"),
    [
        ("meta-llama/Meta-Llama-3-8B-Instruct", 8, None),  # 32 heads, 8 KV heads: one each
        ("meta-llama/Meta-Llama-3-8B-Instruct", 16, None),  # KV heads replicated twice (vLLM allows it)
        ("meta-llama/Meta-Llama-3-8B-Instruct", 3, "32 attention heads do not split over tensor-parallel size 3"),
        ("microsoft/phi-4", 4, "10 KV heads neither split over nor replicate onto tensor-parallel size 4"),
        ("microsoft/phi-4", 8, "10 KV heads neither split over nor replicate onto tensor-parallel size 8"),
        ("microsoft/phi-4", 2, None),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 8, "12 attention heads"),  # 12 heads, 2 KV heads
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 4, None),  # 3 heads each, KV heads copied twice
    ],
)
def test_tensor_parallel_sizes_vllm_refuses(name: str, tp: int, expected: str | None) -> None:
    error = MODELS[name].tp_error(tp)
    if expected is None:
        assert error is None
    else:
        assert error is not None and expected in error
