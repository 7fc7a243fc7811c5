"""KV-cache capacity: preemption when blocks run out, rejection of what never fits, load-time errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import make_scenario

from scenarios.catalog import DRIVER_MEMORY_GB, GPUS, MODELS
from scenarios.errors import ScenarioError
from scenarios.loader import scenario_from_dict
from sim.fleet import build_fleet, check_fits
from sim.profiles import resolve_profile
from sim.service import kv_capacity_tokens, reserve_gb
from sim.simulation import simulate


def small_kv(**cfg: object) -> dict:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["configs"] = [{"gpu": "RTX-4090", "gpu_memory_utilization": 0.72, "activation_reserve_gb": 1.5,
                        "max_model_len": 2048, **cfg}]
    data["fleet"] = {"pools": [{"config": "1xRTX-4090", "count": 1}]}
    return data


def test_capacity_matches_hand_computation() -> None:
    m, g = MODELS["meta-llama/Meta-Llama-3-8B-Instruct"], GPUS["H100-PCIe"]
    free = 80e9 * 0.9 - m.weight_bytes - 1.5e9
    assert kv_capacity_tokens(m, g, 1, 0.9, 1.5) == int(free // (2 * 32 * 8 * 128 * 2))
    # tensor parallelism splits weights and KV heads
    assert kv_capacity_tokens(m, GPUS["RTX-4090"], 2, 0.9, 1.5) > 4 * kv_capacity_tokens(
        m, GPUS["RTX-4090"], 1, 0.9, 1.5
    )


def test_small_memory_config_preempts_and_still_finishes_everything() -> None:
    data = small_kv()
    data["traffic"]["classes"][0]["rate"] = 30.0
    data["traffic"]["classes"][0]["output_tokens"] = {"type": "fixed", "value": 900}
    data["traffic"]["classes"][0]["prompt_tokens"] = {"type": "fixed", "value": 500}
    loaded = scenario_from_dict(data)
    kv = build_fleet(loaded)[0].replica.kv_tokens
    assert kv < 10_000  # only a handful of 1,400-token requests fit at once
    res = simulate(loaded, requests=200)
    df = res.requests
    assert res.replicas["preemptions"].sum() > 0
    assert df["preemptions"].sum() == res.replicas["preemptions"].sum()
    assert df["finish"].notna().all()
    assert int(res.replicas["tokens_out"].sum()) == 200 * 900


def test_request_that_can_never_fit_is_rejected_and_counted() -> None:
    data = small_kv(max_model_len=1024)
    data["traffic"]["classes"][0]["prompt_tokens"] = {
        "type": "empirical",
        "edges": [100, 200, 1500],
        "weights": [1, 1],
    }
    data["traffic"]["classes"][0]["output_tokens"] = {"type": "fixed", "value": 50}
    res = simulate(scenario_from_dict(data), requests=400)
    df = res.requests
    too_long = df["prompt_tokens"] + df["output_tokens"] > 1024
    assert too_long.any()
    assert (df["rejected"] == too_long).all()
    assert int(res.replicas["rejected"].sum()) == int(too_long.sum())
    assert df.loc[too_long, "finish"].isna().all()


def test_weights_that_do_not_fit_are_a_clear_error_at_load_time() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["model"] = "Meta-Llama-3-70B-Instruct"
    data["configs"] = [{"gpu": "RTX-4090", "gpus": 2}]
    data["fleet"] = {"pools": [{"config": "2xRTX-4090", "count": 1}]}
    loaded = scenario_from_dict(data, "big.yaml")
    with pytest.raises(ScenarioError, match=r"configs\[0\]: .*70B.* does not fit on 2xRTX-4090"):
        build_fleet(loaded)
    problems = check_fits(loaded)
    assert len(problems) == 1 and "use more GPUs" in problems[0]


def test_a_tensor_parallel_size_vllm_refuses_is_a_clear_error_at_load_time() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["model"] = "microsoft/phi-4"  # 40 heads but 10 KV heads: 4 GPUs can neither split nor copy them
    data["configs"] = [{"gpu": "H100-PCIe"}, {"gpu": "RTX-4090", "gpus": 4}]
    data["fleet"] = {"pools": [{"config": "1xH100-PCIe", "count": 1}, {"config": "4xRTX-4090", "count": 1}]}
    loaded = scenario_from_dict(data, "phi.yaml")
    with pytest.raises(ScenarioError, match=r"configs\[1\].gpus: .*phi-4's 10 KV heads .* size 4 .*: 1, 2, 5, 10$"):
        build_fleet(loaded)
    assert [p.split(": ")[1] for p in check_fits(loaded)] == ["configs[1].gpus"]


def test_scenario_capacity_follows_the_calibrated_memory_model() -> None:
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    data["configs"] = [{"gpu": "H100-PCIe", "max_num_seqs": 1024, "max_num_batched_tokens": 8192},
                       {"gpu": "H100-PCIe", "name": "small-limits", "max_num_seqs": 64},
                       {"gpu": "H100-PCIe", "name": "fixed", "activation_reserve_gb": 3.0}]
    data["fleet"] = {"pools": [{"config": c, "count": 1} for c in ("1xH100-PCIe", "small-limits", "fixed")]}
    loaded = scenario_from_dict(data)
    pools = build_fleet(loaded)
    model, gpu = loaded.model, GPUS["H100-PCIe"]
    prof = resolve_profile("H100-PCIe", 1, None, loaded.base_dir)
    assert prof.memory_gb is not None  # the driver's figure, as fitted
    mem = replace(gpu, memory_gb=prof.memory_gb)
    want = kv_capacity_tokens(model, mem, 1, 0.9, reserve_gb(model, 1, 1024, 8192, prof))
    assert pools[0].replica.kv_tokens == want
    # vLLM profiles fewer sequences' logits under a smaller max_num_seqs: more room for the KV cache
    assert pools[1].replica.kv_tokens > pools[0].replica.kv_tokens
    # an explicit reserve replaces the memory model's
    assert pools[2].replica.kv_tokens == kv_capacity_tokens(model, mem, 1, 0.9, 3.0)


def test_an_uncalibrated_catalogue_gpu_sizes_its_cache_from_the_memory_its_driver_reports() -> None:
    """Roofline defaults carry no memory figure: vLLM sizes its cache from the memory CUDA reports (an
    A100 "80 GB" is 80 GiB, 85.1 GB less the driver's share), not the datasheet's binary gigabytes; a GPU
    the scenario describes itself keeps its stated memory, even one with a catalogue GPU's figures."""
    data = make_scenario().scenario.model_dump(mode="json", exclude_none=True)
    a100 = GPUS["A100"]
    fields = {"memory_gb": a100.memory_gb, "mem_bw_gbps": a100.mem_bw_gbps, "fp16_tflops": a100.fp16_tflops,
              "tdp_w": a100.tdp_w}
    data["hardware"] = [{"name": "MY-A100", **fields}]
    data.setdefault("pricing", {}).setdefault("overrides", {})["MY-A100"] = 1.39
    data["configs"] = [{"gpu": "A100"}, {"gpu": "MY-A100"}]
    data["fleet"] = {"pools": [{"config": "1xA100", "count": 1}, {"config": "1xMY-A100", "count": 1}]}
    loaded = scenario_from_dict(data)
    pools = build_fleet(loaded)
    model, cfg = loaded.model, loaded.scenario.configs[0]
    prof = resolve_profile("A100", 1, None, loaded.base_dir)
    assert prof.memory_gb is None and prof.source == "roofline defaults"
    reserve = reserve_gb(model, 1, cfg.max_num_seqs, cfg.max_num_batched_tokens, prof)
    driver = kv_capacity_tokens(model, replace(a100, memory_gb=DRIVER_MEMORY_GB["A100"]), 1, 0.9, reserve)
    stated = kv_capacity_tokens(model, a100, 1, 0.9, reserve)
    assert pools[0].replica.kv_tokens == driver
    assert pools[1].replica.kv_tokens == stated
    assert driver > 1.05 * stated  # 5.1 GB more memory: 8% more cache here


def test_a_config_without_cuda_graphs_replicates_an_eager_server() -> None:
    # the bundled RTX 4090 profile: the 1.5B's decode step is launch-bound, eagerly ~3x so
    small = {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"}
    graphs = build_fleet(scenario_from_dict(small_kv() | small))[0].replica.step_model
    eager = build_fleet(scenario_from_dict(small_kv(cuda_graph_max_tokens=0) | small))[0].replica.step_model
    assert eager.step(1, 1, 0) > 2 * graphs.step(1, 1, 0)
    with pytest.raises(ScenarioError, match=r"configs\[0\]\.cuda_graph_max_tokens"):
        scenario_from_dict(small_kv(cuda_graph_max_tokens=-1))


def test_an_fp8_kv_cache_holds_twice_the_tokens_and_is_read_in_half_the_time() -> None:
    """vLLM's ``--kv-cache-dtype fp8``: one byte per element instead of the model's two."""
    plain = build_fleet(scenario_from_dict(small_kv()))[0].replica
    fp8 = build_fleet(scenario_from_dict(small_kv(kv_cache_dtype="fp8")))[0].replica
    assert fp8.kv_tokens in (2 * plain.kv_tokens, 2 * plain.kv_tokens + 1)
    assert fp8.step_model.kv_coef == pytest.approx(plain.step_model.kv_coef / 2)
    m = MODELS["meta-llama/Meta-Llama-3-8B-Instruct"]
    assert replace(m, kv_dtype_bytes=1).kv_bytes_per_token == m.kv_bytes_per_token // 2
    with pytest.raises(ScenarioError, match=r"configs\[0\]\.kv_cache_dtype: .*'auto', 'fp8'"):
        scenario_from_dict(small_kv(kv_cache_dtype="fp16"))


def test_a_config_quantizing_fp8_as_it_loads_frees_memory_and_runs_prefill_at_the_fp8_peak() -> None:
    """A serving config's ``quantization: fp8`` (vLLM ``--quantization fp8`` of the 16-bit 8B): half the
    linear layers' bytes, so more KV cache; its linear layers run at the RTX 4090's FP8 peak."""
    plain = build_fleet(scenario_from_dict(small_kv()))[0].replica
    fp8 = build_fleet(scenario_from_dict(small_kv(quantization="fp8")))[0].replica
    m = MODELS["meta-llama/Meta-Llama-3-8B-Instruct"]
    freed = m.linear_params  # bytes: one per linear weight instead of two
    assert fp8.kv_tokens == pytest.approx(plain.kv_tokens + freed / m.kv_bytes_per_token, abs=2)
    assert fp8.step_model.step(2048, 1, 0) < 0.7 * plain.step_model.step(2048, 1, 0)
    with pytest.raises(ScenarioError, match=r"configs\[0\]\.quantization"):
        scenario_from_dict(small_kv(quantization="awq"))
