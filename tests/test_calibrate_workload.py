"""The load of a replayed run: modelled lengths (ShareGPT's filter, fixed-length datasets), which dataset a
result file came from, vLLM's client schedule and the prefix cache between runs of a session."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibrate.datasets import check_dataset, dataset_hint, length_shape
from calibrate.importer import load_runs, read_result_file
from calibrate.workload import (
    LengthModel,
    cached_prompt_tokens,
    client_arrival_times,
    fixed_lengths,
    run_workload,
    sample_lengths,
)

RESULT: dict[str, Any] = {
    "date": "20250610-140834", "model_id": "meta-llama/Meta-Llama-3-8B-Instruct", "num_prompts": 200,
    "gpu_name": "NVIDIA-H100-PCIe", "gpu_count": 1, "request_rate": 4.0, "burstiness": 1.0, "duration": 60.0,
    "completed": 200, "total_input_tokens": 200 * 2000 + 37, "total_output_tokens": 200 * 128,
    "median_ttft_ms": 100.0, "median_tpot_ms": 12.0,
}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), mean_in=st.floats(4.0, 500.0), mean_out=st.floats(4.0, 900.0),
       seed=st.integers(0, 2**32 - 1))
def test_sharegpt_lengths_keep_the_filter_and_the_totals(n: int, mean_in: float, mean_out: float, seed: int) -> None:
    total_in, total_out = round(n * mean_in), round(n * mean_out)
    prompt, output = sample_lengths(n, total_in, total_out, np.random.default_rng(seed))
    assert prompt.min() >= 4 and output.min() >= 4
    assert prompt.max() <= 1024 and (prompt + output).max() <= 2048
    assert prompt.sum() == total_in and output.sum() == total_out


def test_sharegpt_lengths_are_spread_and_seeded() -> None:
    a = sample_lengths(200, 200 * 220, 200 * 200, np.random.default_rng(5))
    b = sample_lengths(200, 200 * 220, 200 * 200, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    prompt = a[0]
    assert prompt.max() > 4 * np.median(prompt) and prompt.min() < np.median(prompt) / 4  # a lognormal's spread


def test_lengths_beyond_the_sharegpt_caps_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"prompt 2000, output 128 tokens.*not a ShareGPT run"):
        sample_lengths(10, 20_000, 1280, np.random.default_rng(0))


def test_fixed_lengths_are_one_length_each_and_keep_the_totals() -> None:
    prompt, output = fixed_lengths(200, 200 * 2000 + 37, 200 * 128, np.random.default_rng(1))
    assert prompt.sum() == 200 * 2000 + 37 and set(prompt.tolist()) == {2000, 2001}
    assert (prompt == 2001).sum() == 37 and set(output.tolist()) == {128}
    with pytest.raises(ValueError, match=r"n\(=0\)"):
        fixed_lengths(0, 10, 10, np.random.default_rng(1))


@pytest.mark.parametrize(("data", "file", "expected"), [
    ({}, "vllm_200prompts8qps_Meta-Llama-3-8B-Instruct_sharegpt_1xNVIDIA-H100-PCIe.json", "sharegpt"),
    ({}, "/x/bench-random-1024in.json", "random"),
    ({"dataset_name": "Random"}, "r.json", "random"),
    ({"dataset": "random"}, "sharegpt.json", "random"),   # the file's own field wins over its name
    ({"dataset_name": "sonnet"}, "random.json", "auto"),  # a dataset the replay has no shape for
    ({}, "sharegpt_vs_random.json", "auto"),               # a name naming two
    ({}, "results.json", "auto"),
])
def test_dataset_hint(data: dict[str, Any], file: str, expected: str) -> None:
    assert dataset_hint(data, file) == expected


def test_check_dataset_names_the_choices() -> None:
    assert check_dataset(" ShareGPT ") == "sharegpt"
    with pytest.raises(ValueError, match=r"unknown dataset 'hf'; known: auto, sharegpt, random"):
        check_dataset("hf")


def test_auto_shape_follows_the_sharegpt_caps() -> None:
    assert length_shape("auto", 220, 200, 1024, 2048) == "spread"
    assert length_shape("auto", 600, 100, 1024, 2048) == "fixed"   # over half the prompt cap
    assert length_shape("auto", 400, 700, 1024, 2048) == "fixed"   # over half the total cap
    assert length_shape("random", 100, 100, 1024, 2048) == "fixed"
    assert length_shape("sharegpt", 600, 100, 1024, 2048) == "spread"


def test_a_random_dataset_run_is_replayed_with_fixed_lengths(tmp_path: Path) -> None:
    path = tmp_path / "vllm_200prompts4qps_llama_random_1xH100.json"
    path.write_text(json.dumps({**RESULT, "total_input_tokens": 200 * 256, "total_output_tokens": 200 * 64}))
    (run,) = read_result_file(path)
    assert run.dataset == "random"
    _, prompt, output = run_workload(run, 0, LengthModel())
    assert set(prompt.tolist()) == {256} and set(output.tolist()) == {64}
    # the same totals as ShareGPT (said on the command line): spread lengths
    (shared,) = load_runs([path], dataset="sharegpt")
    _, prompt, _ = run_workload(shared, 0, LengthModel())
    assert len(set(prompt.tolist())) > 20 and prompt.sum() == 200 * 256


def test_totals_beyond_the_caps_are_replayed_as_fixed_lengths_when_auto(tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    path.write_text(json.dumps(RESULT))
    (run,) = read_result_file(path)
    assert run.dataset == "auto"
    _, prompt, output = run_workload(run, 0, LengthModel())
    assert prompt.sum() == RESULT["total_input_tokens"] and prompt.max() - prompt.min() <= 1
    assert set(output.tolist()) == {128}


def test_the_client_schedule_is_vllms_for_sharegpt_and_drawn_for_random(tmp_path: Path) -> None:
    path = tmp_path / "r_sharegpt_.json"
    path.write_text(json.dumps({**RESULT, "total_input_tokens": 200 * 220, "total_output_tokens": 200 * 200}))
    (run,) = load_runs([path], client_seed=42)
    arrival, _, _ = run_workload(run, 0, LengthModel())
    legacy = np.random.RandomState(42).gamma(1.0, 1.0 / 4.0, 199)  # what the 0.8 client drew
    assert np.allclose(arrival, np.concatenate([[0.0], np.cumsum(legacy)]))
    assert np.allclose(client_arrival_times(200, 4.0, 1.0, 42), arrival)
    # the random dataset draws its prompts from that generator first: the gaps are drawn, per seed
    rnd = replace(run, dataset="random")
    a0, a1 = run_workload(rnd, 0, LengthModel())[0], run_workload(rnd, 1, LengthModel())[0]
    assert not np.allclose(a0, arrival) and not np.allclose(a0, a1) and a0[0] == 0.0


def test_prefix_cache_keeps_a_sweeps_prompts_when_large_and_none_when_small() -> None:
    prompt = np.array([100, 40, 16, 300])
    output = np.array([50, 50, 50, 50])
    cold = cached_prompt_tokens(prompt, output, 0, 10**6)
    assert cold.tolist() == [96, 0, 0, 0]  # only the warm-up request's prompt (the first), whole blocks
    warm = cached_prompt_tokens(prompt, output, 1, 10**6)
    assert warm.tolist() == [96, 32, 0, 288]  # whole blocks, and at least one token recomputed
    small = cached_prompt_tokens(prompt, output, 1, 64)
    assert small.tolist() == [0, 0, 0, 0]  # cyclic reuse under LRU evicts each prompt before its turn


@pytest.mark.parametrize("date", ["", "20250610-140834"])
def test_a_replay_draws_the_same_numbers_wherever_its_file_lies(tmp_path: Path, date: str) -> None:
    # one result file, read from two folders (and by a relative path): the same lengths and send times, so
    # that a prediction does not hang on where the file was copied (the session of an undated run is its path)
    workloads = []
    for folder in (tmp_path / "a", tmp_path / "b" / "c"):
        folder.mkdir(parents=True)
        (folder / "r_sharegpt_.json").write_text(json.dumps({**RESULT, "date": date, "total_input_tokens": 200 * 220,
                                                             "total_output_tokens": 200 * 200}))
        (run,) = load_runs([folder / "r_sharegpt_.json"])
        workloads.append(run_workload(run, 3, LengthModel()))
    (run,) = load_runs([Path(os.path.relpath(tmp_path / "a" / "r_sharegpt_.json"))])
    workloads.append(run_workload(run, 3, LengthModel()))
    for other in workloads[1:]:
        assert all(np.array_equal(x, y) for x, y in zip(workloads[0], other, strict=True))
