"""The step-time model: roofline terms, host/GPU overlap, TP all-reduce, affinity in context, profiles."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from calibrate.fit import default_params
from scenarios.catalog import DRIVER_MEMORY_GB, GPUS, MODELS
from scenarios.errors import FleetPlannerError
from sim.notes import extrapolation_note
from sim.profiles import (
    BUNDLED_DIR,
    bundled_profiles,
    derive_profile,
    read_profile_file,
    resolve_profile,
    scale_step_times,
)
from sim.replica import ITL_BINS, Replica
from sim.requests import RequestTable
from sim.service import (
    CUDA_GRAPH_MAX_TOKENS,
    DEFAULT_RUNTIME_RESERVE_GB,
    SAMPLER_BYTES_PER_LOGIT,
    ConstantStepModel,
    HardwareProfile,
    StepTimeModel,
    activation_peak_bytes,
    kv_capacity_tokens,
    profile_kv_tokens,
)

M8 = MODELS["meta-llama/Meta-Llama-3-8B-Instruct"]
M1 = MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
M14 = MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"]
H100 = GPUS["H100-PCIe"]
RTX = GPUS["RTX-4090"]
PROF = HardwareProfile(gpu="H100-PCIe", mem_eff=0.8, compute_eff=0.5, attn_eff=0.6, step_overhead_s=0.001,
                       per_seq_s=2e-5, per_layer_s=1e-4, source="hand-made")


def test_decode_step_is_weights_over_bandwidth_plus_fixed_costs() -> None:
    # every weight but the input embedding table, whose rows the step only gathers (Llama-3-8B: 1.05 GB)
    m = StepTimeModel(M8, H100, PROF, 1)
    streamed = M8.weight_bytes - 128256 * 4096 * 2
    assert M8.step_weight_bytes == streamed
    expected = 0.001 + 2e-5 + streamed / (2000e9 * 0.8)
    assert m.step(1, 1, 0) == pytest.approx(expected)
    tied = replace(M8, tie_word_embeddings=True)  # one table, read whole as the LM head
    assert tied.step_weight_bytes == tied.weight_bytes == M8.weight_bytes - 128256 * 4096 * 2


def test_small_model_on_slow_host_is_launch_bound() -> None:
    slow = replace(PROF, per_layer_s=3e-4)
    m = StepTimeModel(M1, H100, slow, 1)
    assert m.step(1, 1, 0) == pytest.approx(0.001 + 2e-5 + 3e-4 * M1.num_layers)
    # a big model's GPU time hides the same host cost
    big = StepTimeModel(M14, H100, slow, 1)
    assert big.step(1, 1, 0) == pytest.approx(0.001 + 2e-5 + M14.step_weight_bytes / (2000e9 * 0.8))


def test_steps_beyond_cuda_graphs_pay_the_eager_launch_cost() -> None:
    """Up to vLLM's largest captured CUDA graph a step's host cost is per_layer_s per layer; beyond it
    the model runs kernel by kernel and costs eager_factor times that, which a small model's big
    steps show and a big model's GPU time hides."""
    slow = replace(PROF, per_layer_s=3e-4, eager_factor=2.5)
    m = StepTimeModel(M1, H100, slow, 1)
    n = CUDA_GRAPH_MAX_TOKENS
    gpu = n * M1.flops_per_token / (756e12 * 0.5)
    assert gpu < 3e-4 * M1.num_layers  # launch-bound either side of the limit
    assert m.step(n, 1, 0) == pytest.approx(0.001 + 2e-5 + 3e-4 * M1.num_layers)
    assert m.step(n + 1, 1, 0) == pytest.approx(0.001 + 2e-5 + 2.5 * 3e-4 * M1.num_layers)
    big = StepTimeModel(M14, H100, slow, 1)
    assert big.step(4096, 1, 0) == pytest.approx(0.001 + 2e-5 + 4096 * M14.flops_per_token / (756e12 * 0.5))
    # the default factor (1, as for profiles fitted before it existed) charges both sides alike
    assert HardwareProfile(gpu="H100-PCIe").eager_factor == 1.0
    plain = StepTimeModel(M1, H100, replace(slow, eager_factor=1.0), 1)
    assert plain.step(n + 1, 1, 0) == pytest.approx(plain.step(n, 1, 0))


def test_a_servers_own_cuda_graph_limit_moves_the_eager_boundary() -> None:
    """A server started with --enforce-eager (limit 0) launches every step kernel by kernel, decode steps
    included; one capturing graphs up to 128 tokens runs a 129-token step eagerly."""
    slow = replace(PROF, per_layer_s=3e-4, eager_factor=2.5)
    host, eager = 0.001 + 2e-5 + 3e-4 * M1.num_layers, 0.001 + 2e-5 + 2.5 * 3e-4 * M1.num_layers
    never = StepTimeModel(M1, H100, slow, 1, graph_max_tokens=0)
    assert never.step(1, 1, 0) == pytest.approx(eager)
    assert never.launch_bound() and never.eager_bound()
    small = StepTimeModel(M1, H100, slow, 1, graph_max_tokens=128)
    assert small.step(128, 1, 0) == pytest.approx(host)
    assert small.step(129, 1, 0) == pytest.approx(eager)
    assert StepTimeModel(M1, H100, slow, 1).step(129, 1, 0) == pytest.approx(host)  # the default: 512
    with pytest.raises(ValueError, match=r"graph_max_tokens\(=-1\) must be >= 0"):
        StepTimeModel(M1, H100, slow, 1, graph_max_tokens=-1)


def test_prefill_is_compute_bound() -> None:
    m = StepTimeModel(M8, H100, PROF, 1)
    t = m.step(8192, 1, 0) - 0.001 - 2e-5
    assert t == pytest.approx(8192 * M8.flops_per_token / (756e12 * 0.5))


def test_prefill_attention_pays_its_causal_pairs() -> None:
    # an 8192-token prompt: 8192 x 8193 / 2 query-key pairs, 4 x head_dim FLOPs per pair, head and layer
    m = StepTimeModel(M8, H100, PROF, 1)
    pairs = 8192 * 8193 / 2
    extra = m.step(8192, 1, 0, pairs) - m.step(8192, 1, 0)
    assert extra == pytest.approx(pairs * 4 * 32 * 32 * 128 / (756e12 * 0.5))
    assert 0.08 < extra / (m.step(8192, 1, 0) - 0.001 - 2e-5) < 0.15  # a tenth of a long prompt's prefill
    two = StepTimeModel(M8, H100, replace(PROF, gpus=2), 2)  # heads split across the TP group
    assert two.step(8192, 1, 0, pairs) - two.step(8192, 1, 0) == pytest.approx(extra / 2)


def test_a_long_prompt_replica_pays_attention_in_its_chunks() -> None:
    # one 4096-token prompt in 2048-token chunks: pairs 2048 x 2049 / 2, then 2048 x (2048 + 2049 / 2)
    m = StepTimeModel(M8, H100, PROF, 1)
    env = simpy.Environment()
    table = RequestTable(np.zeros(1), np.zeros(1, np.int32), np.array([4096]), np.array([1]), np.zeros(1, np.int64),
                         ("c",))
    rep = Replica(env, 0, 0, m, table, kv_tokens=100_000, max_num_seqs=8, max_num_batched_tokens=2048,
                  max_model_len=8192, block_size=16, itl_hist=[[0.0] * ITL_BINS], outs=[0])
    rep.arrive(0)
    env.run()
    first = m.step(2048, 1, 0, 2048 * 2049 / 2)
    second = m.step(2048, 1, 2048, 2048 * (2048 + 2049 / 2))
    assert table.first[0] == pytest.approx(first + second)


def test_affine_in_context_for_a_fixed_batch_and_decode_span_sums_steps() -> None:
    m = StepTimeModel(M14, H100, PROF, 1)
    a, b, c = (m.step(32, 32, x) for x in (1000, 2000, 3000))
    assert b - a == pytest.approx(c - b)
    steps = 50
    total = sum(m.step(32, 32, 5000 + 32 * k) for k in range(steps))
    assert m.decode_span(32, 5000, steps) == pytest.approx(total)
    assert m.decode_steps_within(32, 5000, m.decode_span(32, 5000, steps)) == steps
    assert m.decode_steps_within(32, 5000, total * 0.999) == steps - 1
    # a decode step's batch-dependent part, remembered per batch size, is exactly the step's (a host-bound
    # and a weight-bound model, beyond CUDA graphs too)
    for model in (StepTimeModel(M1, RTX, replace(PROF, per_layer_s=3e-4, eager_factor=3.0), 1, 64), m):
        for batch in (1, 2, 63, 64, 65, 256, 64):
            assert model.decode_base(batch) == model.step(batch, batch, 0)


def test_tensor_parallel_splits_weights_and_pays_all_reduce() -> None:
    prof = replace(PROF, gpu="RTX-4090", comm_latency_s=5e-5, comm_eff=0.2, per_layer_s=0.0)
    one = StepTimeModel(M14, RTX, replace(prof, gpus=1), 1)
    two = StepTimeModel(M14, RTX, replace(prof, gpus=2), 2)
    lat = 2 * M14.num_layers * 5e-5
    assert two.step(1, 1, 0) < one.step(1, 1, 0)
    assert two.step(1, 1, 0) == pytest.approx(
        0.001 + 2e-5 + M14.step_weight_bytes / 2 / (1008e9 * 0.8) + lat
        + 2 * M14.num_layers * 1.0 * M14.hidden_size * 2 / (25e9 * 0.2)
    )
    # all-reduce bytes grow with the tokens of the step: prefill pays most
    per_token = 2 * M14.num_layers * M14.hidden_size * 2 / (25e9 * 0.2)
    assert two.step(2048, 1, 0) - two.step(1024, 1, 0) == pytest.approx(
        1024 * (M14.flops_per_token / 2 / (165e12 * 0.5) + per_token)
    )
    # the latency of an all-reduce grows as log2(tp): eight GPUs pay it three times over, a pair once
    eight = StepTimeModel(M14, RTX, replace(prof, gpus=8), 8)
    assert eight.step(1, 1, 0) == pytest.approx(
        0.001 + 2e-5 + M14.step_weight_bytes / 8 / (1008e9 * 0.8) + 3 * lat
        + 2 * M14.num_layers * 2 * 7 / 8 * M14.hidden_size * 2 / (25e9 * 0.2)
    )


def test_constant_step_model_still_constant() -> None:
    m = ConstantStepModel(0.01)
    assert m.step(1, 1, 0) == m.step(5000, 300, 10**6) == pytest.approx(0.01)
    assert m.decode_span(4, 100, 10) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"seconds\(=0\)"):
        ConstantStepModel(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("per_layer_s", -1e-3), ("frontend_s", -0.5), ("memory_gb", 0.0), ("runtime_reserve_gb", -2.0),
     ("mem_eff", 0.0), ("gpus", 0), ("eager_factor", 0.5),
     # found by fuzzing profile files: each had passed and then crashed the simulation on an overflow
     ("attn_eff", 1e-300), ("per_seq_s", 1e308), ("frontend_s", 1e30), ("memory_gb", 1e308),
     ("runtime_reserve_gb", 1e308), ("eager_factor", 1e308)],
)
def test_profile_rejects_bad_values_naming_them(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{field}(={value})")):
        HardwareProfile(gpu="H100-PCIe", **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("gpus", [1, 2])
def test_every_fittable_value_makes_a_valid_profile_even_scaled(gpus: int) -> None:
    # the bounds of calibrate fit's parameters, times a scenario's largest step_time_scale (10), stay
    # within what a profile accepts, so no fit and no what-if is refused by the limits above
    for p in default_params(gpus):
        for v in (p.lo, p.hi):
            values: dict[str, Any] = {p.name: v}
            prof = HardwareProfile(gpu="H100-PCIe", gpus=gpus, **values)
            assert scale_step_times(prof, 10.0) is not None


def test_profile_memory_model() -> None:
    limits = {"max_num_seqs": 1024, "max_num_batched_tokens": 8192}
    prof = replace(PROF, memory_gb=85.0, runtime_reserve_gb=1.0)
    peak = activation_peak_bytes(M8, 1, **limits) / 1e9
    assert profile_kv_tokens(M8, H100, 1, 0.9, prof, **limits) == kv_capacity_tokens(
        M8, replace(H100, memory_gb=85.0), 1, 0.9, 1.0 + peak
    )
    # without its own figures the memory CUDA reports for the catalogue GPU and the default runtime reserve apply
    assert profile_kv_tokens(M8, H100, 1, 0.9, PROF, **limits) == kv_capacity_tokens(
        M8, replace(H100, memory_gb=DRIVER_MEMORY_GB["H100-PCIe"]), 1, 0.9, DEFAULT_RUNTIME_RESERVE_GB + peak)
    # ... and a GPU that is not the catalogue's (another spec under its name) keeps the memory it states
    mine = replace(H100, memory_gb=80.0, mem_bw_gbps=1000.0)
    assert profile_kv_tokens(M8, mine, 1, 0.9, PROF, **limits) == kv_capacity_tokens(
        M8, mine, 1, 0.9, DEFAULT_RUNTIME_RESERVE_GB + peak)
    assert profile_kv_tokens(M8, H100, 1, 0.9, prof, **limits) < profile_kv_tokens(M8, H100, 1, 0.9, PROF, **limits)
    # smaller engine limits profile a smaller activation peak, so more is left for the KV cache
    assert profile_kv_tokens(M8, H100, 1, 0.9, prof, max_num_seqs=256, max_num_batched_tokens=2048) > \
        profile_kv_tokens(M8, H100, 1, 0.9, prof, **limits)


def test_activation_peak_is_the_larger_of_mlp_and_sampler() -> None:
    # Llama-3-8B: vocabulary 128256, MLP 14336 wide
    sampler = 1024 * 128256 * (2 + SAMPLER_BYTES_PER_LOGIT)
    assert activation_peak_bytes(M8, 1, 1024, 8192) == pytest.approx(sampler)  # ~1.8 GB
    mlp = 65536 * 3 * 14336 * 2
    assert activation_peak_bytes(M8, 1, 16, 65536) == pytest.approx(mlp)  # a huge token budget
    # tensor parallelism splits the MLP, not the gathered logits
    assert activation_peak_bytes(M8, 2, 16, 65536) == pytest.approx(mlp / 2)
    assert activation_peak_bytes(M8, 4, 1024, 8192) == pytest.approx(sampler)


def test_profile_round_trip_through_dict() -> None:
    prof = replace(PROF, memory_gb=85.0, frontend_s=0.006, fitted_weights_gb=(16.06, 65.53))
    assert prof.to_dict()["fitted_weights_gb"] == [16.06, 65.53]  # YAML-safe
    assert HardwareProfile.from_dict(prof.to_dict()) == prof
    for bad in ([65.5, 16.0], [0.0, 1.0], [1.0]):
        with pytest.raises(ValueError, match=r"fitted_weights_gb\(="):
            HardwareProfile.from_dict({"gpu": "H100-PCIe", "fitted_weights_gb": bad})
    with pytest.raises(ValueError, match="unknown profile field"):
        HardwareProfile.from_dict({"gpu": "H100-PCIe", "bogus": 1})
    # a hand-edited file's typo is named with the field, not left to a failed comparison
    for field, bad, expected in (("mem_eff", "0,8", "a finite number"), ("frontend_s", True, "a finite number"),
                                 ("step_overhead_s", math.inf, "a finite number"),
                                 ("gpus", 2.0, "a whole number"), ("gpu", 4090, "text")):
        with pytest.raises(ValueError, match=rf"^{field}\(={bad!r}\) must be {expected}$"):
            HardwareProfile.from_dict({"gpu": "H100-PCIe", field: bad})
    with pytest.raises(ValueError, match=r"^missing profile field\(s\) gpu$"):
        HardwareProfile.from_dict({"gpus": 2})
    assert HardwareProfile.from_dict({"gpu": "H100-PCIe", "memory_gb": None, "gpus": 2}).gpus == 2


def test_extrapolation_note_outside_the_fitted_weights() -> None:
    prof = replace(PROF, fitted_weights_gb=(16.06, 65.53))  # fitted on 8B..32B models
    small = extrapolation_note(prof, M1, 1)  # 1.5B: 3.6 GB
    assert small is not None and "3.6 GB" in small and "16.1-65.5 GB" in small and "host" in small
    assert extrapolation_note(prof, M8, 1) is None and extrapolation_note(prof, M14, 1) is None
    assert extrapolation_note(replace(prof, fitted_weights_gb=(3.0, 5.0)), M14, 1) is not None  # 29.5 GB
    assert extrapolation_note(replace(prof, fitted_weights_gb=(3.0, 5.0)), M14, 4) is None  # 7.4 GB per GPU
    assert extrapolation_note(PROF, M1, 1) is None  # no record: nothing to say
    tiny = extrapolation_note(replace(prof, fitted_weights_gb=(0.00262, 0.00262)), M1, 1)  # a test model's MB
    assert tiny is not None and "0.0026-0.0026 GB" in tiny and "larger models" in tiny


EXPECTED_BUNDLED = [("H100-PCIe", 1), ("H100-PCIe", 2), ("RTX-4090", 1), ("RTX-4090", 2), ("RTX-4090", 4),
                    ("RTX-4090", 8)]


@pytest.mark.parametrize(("gpu", "gpus"), EXPECTED_BUNDLED)
def test_bundled_profile_is_picked_for_matching_hardware(gpu: str, gpus: int) -> None:
    prof = resolve_profile(gpu, gpus, None, Path.cwd())
    assert prof.source.startswith("calibrate fit") and (prof.gpu, prof.gpus) == (gpu, gpus)
    assert prof.memory_gb is not None and prof.runtime_reserve_gb is not None
    assert prof.fitted_weights_gb is not None
    # physically meaningful ranges
    assert 0.5 <= prof.mem_eff <= 1.0 and 0.15 <= prof.compute_eff <= 1.0
    assert prof.step_overhead_s < 0.03 and prof.per_layer_s < 1e-3
    # the request path: a few ms on one GPU; on the TP 4090 boxes a median of 57-116 ms (their published TTFT
    # at low load is 0.1-0.3 s for ~200-token prompts)
    assert prof.frontend_s < (0.01 if gpus == 1 else 0.15)
    assert set(bundled_profiles()) >= set(EXPECTED_BUNDLED)
    # the request path's spread is fitted where its worker processes share the host (TP), not on one GPU
    assert (prof.frontend_spread > 0) == (gpus > 1) and prof.frontend_spread < 1.5
    assert ("frontend_spread" in {q.name for q in default_params(gpus)}) == (gpus > 1)


def test_bundled_files_name_their_sources_and_hold_no_raw_measurements() -> None:
    import yaml

    for f in BUNDLED_DIR.glob("*.yaml"):
        read_profile_file(f)
        data = yaml.safe_load(f.read_text())
        for entry in data["profiles"]:
            assert entry["fit"]["files"] and entry["fit"]["file_names"]
            assert "residuals" in entry
            for row in entry["residuals"]:
                assert not any(k.startswith("mean_") or k in ("ttfts", "itls", "duration") for k in row)


def test_unmeasured_tp_size_gets_a_profile_derived_from_the_measured_ones() -> None:
    bundled = bundled_profiles()
    one, two, eight = bundled[("RTX-4090", 1)], bundled[("RTX-4090", 2)], bundled[("RTX-4090", 8)]
    three = resolve_profile("RTX-4090", 3, None, Path.cwd())
    assert three.gpus == 3 and three.source.startswith("derived for 3xRTX-4090 (not measured)")
    # the GPU's own efficiencies and memory model from the single-GPU fit ...
    assert (three.mem_eff, three.compute_eff, three.memory_gb) == (one.mem_eff, one.compute_eff, one.memory_gb)
    # ... the host and link from the nearest measured TP size (ties: the smaller)
    assert (three.comm_eff, three.per_layer_s, three.frontend_s) == (two.comm_eff, two.per_layer_s, two.frontend_s)
    sixteen = resolve_profile("RTX-4090", 16, None, Path.cwd())
    assert (sixteen.comm_eff, sixteen.step_overhead_s) == (eight.comm_eff, eight.step_overhead_s)
    # a GPU type never measured keeps roofline defaults; a measured size keeps its own fit
    assert resolve_profile("A100", 2, None, Path.cwd()).source == "roofline defaults"
    assert resolve_profile("RTX-4090", 2, None, Path.cwd()) is two
    assert derive_profile("RTX-4090", 1, bundled) is None  # one GPU has no TP size to borrow host costs from
    assert derive_profile("H100-PCIe", 4, {("H100-PCIe", 1): bundled[("H100-PCIe", 1)]}) is None


def test_named_profile_file_derives_only_from_a_tensor_parallel_entry(tmp_path: Path) -> None:
    import yaml

    single = HardwareProfile(gpu="RTX-4090", gpus=1, mem_eff=0.7, source="mine 1x")
    pair = HardwareProfile(gpu="RTX-4090", gpus=2, mem_eff=0.9, comm_eff=0.2, source="mine 2x")
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"profiles": [single.to_dict(), pair.to_dict()]}))
    four = resolve_profile("RTX-4090", 4, str(f), tmp_path)
    assert (four.gpus, four.mem_eff, four.comm_eff) == (4, 0.7, 0.2) and "mine 2x" in four.source
    f.write_text(yaml.safe_dump({"profiles": [single.to_dict()]}))
    with pytest.raises(FleetPlannerError, match=r"p.yaml: no profile for 4xRTX-4090 \(has 1xRTX-4090\)"):
        resolve_profile("RTX-4090", 4, str(f), tmp_path)


def test_roofline_defaults_say_they_are_uncalibrated() -> None:
    note = extrapolation_note(HardwareProfile(gpu="L40S", gpus=2), M8, 2)
    assert note is not None and note.startswith("no calibrated profile for 2xL40S: ")
    fitted = resolve_profile("H100-PCIe", 1, None, Path.cwd())
    assert extrapolation_note(fitted, M8, 1) is None


def test_mixture_of_experts_reads_the_experts_its_tokens_touch() -> None:
    # Qwen3-30B-A3B (8 of 128 experts per token): a one-token step reads its non-expert weights and 1/16
    # of the experts; a batch touches 1 - (15/16)^n of them, so bytes grow with the batch up to all 61 GB
    moe = MODELS["Qwen/Qwen3-30B-A3B"]
    flat = replace(PROF, step_overhead_s=0.0, per_seq_s=0.0, per_layer_s=0.0)
    m = StepTimeModel(moe, H100, flat, 1)
    bw = 2000e9 * flat.mem_eff
    routed = moe.routed_expert_params * moe.dtype_bytes
    rest = moe.step_weight_bytes - routed
    for n in (1, 4, 32):
        touched = 1 - (1 - 8 / 128) ** n
        assert m.step(n, n, 0) == pytest.approx((rest + routed * touched) / bw)
    steps = [m.step(n, n, 0) for n in (1, 2, 8, 64, 256)]
    assert steps == sorted(steps) and steps[-1] < moe.step_weight_bytes / bw * 1.001
    assert steps[0] < 0.2 * moe.weight_bytes / bw  # a dense model of the same size reads it all
    # prefill of many tokens is compute-bound on the *active* parameters
    assert m.step(8192, 1, 0) == pytest.approx(8192 * moe.flops_per_token / (756e12 * flat.compute_eff))
    note = extrapolation_note(flat, moe, 1)
    assert note is not None and "mixture of experts (8 of 128 per token)" in note and "uniformly routed" in note


def test_mixture_of_experts_activation_peak_covers_its_routed_experts() -> None:
    # vLLM's fused MoE kernel keeps, per token and routed expert, gate/up, activation and output rows
    moe = MODELS["mistralai/Mixtral-8x7B-Instruct-v0.1"]
    width = 2 * (3 * 14336 + 4096)
    assert moe.mlp_activation_width == width
    assert activation_peak_bytes(moe, 2, 1, 8192) == pytest.approx(8192 * width / 2 * 2)


def test_quantized_weights_shorten_the_weight_bound_decode_step_and_say_so() -> None:
    from scenarios.models import model_from_config

    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}
    awq = model_from_config({**cfg, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}})
    flat = replace(PROF, step_overhead_s=0.0, per_seq_s=0.0, per_layer_s=0.0)
    assert StepTimeModel(awq, H100, flat, 1).step(1, 1, 0) == pytest.approx(awq.step_weight_bytes / (2000e9 * 0.8))
    assert awq.weight_bytes < 0.75 * M8.weight_bytes
    note = extrapolation_note(flat, awq, 1)
    assert note is not None and "quantized weights (4.12 bits" in note and "16-bit weights" in note
    assert extrapolation_note(flat, M8, 1) is None


def test_w8a8_prefill_runs_at_the_gpus_8bit_peak_where_it_has_one() -> None:
    """An FP8 checkpoint with FP8 activations multiplies its linear layers at the FP8 peak on an H100 (twice
    FP16), only its LM head at FP16; an A100 has no FP8 tensor cores, so vLLM runs it weight-only, in 16 bits.
    Decode steps stay weight-bound either way."""
    from scenarios.models import model_from_config

    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}
    ct = {"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "float"}, "input_activations": {"num_bits": 8, "type": "float"}}}}
    w8a8 = model_from_config({**cfg, "quantization_config": ct})
    w8a16 = model_from_config({**cfg, "quantization_config": {**ct, "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "float"}}}}})
    flat = replace(PROF, step_overhead_s=0.0, per_seq_s=0.0, per_layer_s=0.0)
    n = 8192  # compute-bound
    peak, fp8 = 756e12 * flat.compute_eff, 1513e12 * flat.compute_eff  # the H100 PCIe's dense FP16 and FP8
    lin, head = w8a8.linear_flops_per_token, w8a8.flops_per_token - w8a8.linear_flops_per_token
    assert StepTimeModel(w8a8, H100, flat, 1).base(n, 1) == pytest.approx(n * (lin / fp8 + head / peak))
    assert StepTimeModel(w8a16, H100, flat, 1).base(n, 1) == pytest.approx(n * w8a8.flops_per_token / peak)
    a100 = GPUS["A100"]
    a100_peak = 312e12 * flat.compute_eff
    assert StepTimeModel(w8a8, a100, flat, 1).base(n, 1) == pytest.approx(n * w8a8.flops_per_token / a100_peak)
    assert StepTimeModel(w8a8, H100, flat, 1).step(1, 1, 0) == StepTimeModel(w8a16, H100, flat, 1).step(1, 1, 0)
    note = extrapolation_note(flat, w8a8, 1)
    assert note is not None and "multiply in FP8" in note
    assert "multiply in" not in (extrapolation_note(flat, w8a16, 1) or "")


def test_a_step_time_scale_lengthens_every_step_by_exactly_that_factor() -> None:
    """``step_time_scale`` (and the planner's stress test) divides the efficiencies and multiplies the time
    constants: every term of a step scales, so the step does, whichever term dominates."""
    from conftest import make_scenario

    from sim.fleet import build_fleet
    from sim.profiles import scale_step_times

    def replica(scale: float) -> Any:
        cfg = {"gpu": "RTX-4090", "max_model_len": 4096, "step_time_scale": scale}
        loaded = make_scenario(configs=[cfg], fleet={"pools": [{"config": "1xRTX-4090", "count": 1}]})
        return build_fleet(loaded)[0].replica

    plain, slow = replica(1.0), replica(1.3)
    for shape in ((1, 1, 100), (64, 64, 30_000), (2048, 8, 4000), (600, 1, 0)):
        assert slow.step_model.step(*shape) == pytest.approx(1.3 * plain.step_model.step(*shape))
    assert slow.profile.frontend_s == pytest.approx(1.3 * plain.profile.frontend_s)
    assert slow.kv_tokens == plain.kv_tokens and "step times x1.3" in slow.profile.source
    # scaled roofline defaults still say they are uncalibrated
    note = extrapolation_note(scale_step_times(HardwareProfile(gpu="L40S"), 1.1), M8, 1)
    assert note is not None and note.startswith("no calibrated profile for 1xL40S")
    with pytest.raises(ValueError, match=r"factor\(=0.9\) must be >= 1"):
        scale_step_times(plain.profile, 0.9)
