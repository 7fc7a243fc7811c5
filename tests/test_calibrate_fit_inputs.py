"""Bad, odd and edge-case inputs of ``calibrate fit``, ``calibrate show``, ``calibrate run --dry-run`` and
``planner validate``: config.json sizes and spellings, result-file fields, options and output paths.  Each
is one ``error: ...`` line naming the file or option, the field and what was expected (exit 2), or a
correct result; never a traceback, a hang, or a number with no meaning."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import vllm_result as result

from calibrate.cli import main as calibrate
from calibrate.importer import parse_result
from planner.cli import main as planner
from scenarios.errors import FleetPlannerError
from scenarios.models import load_model_config, model_from_config

LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 8192,
}
MOE: dict[str, Any] = {**LLAMA, "num_local_experts": 8, "num_experts_per_tok": 2}


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail (rather than hang) where the body runs longer than ``seconds``."""
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write(tmp_path: Path, name: str, obj: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


FIT = ["fit", "--seeds", "1", "--max-evals", "1"]


# ------------------------------------------------------------------------------------------ config.json
def test_a_mixture_of_experts_with_a_typos_layer_count_is_refused_at_once() -> None:
    with within(5), pytest.raises(FleetPlannerError, match=r"num_hidden_layers: expected a positive integer up to"):
        model_from_config({**MOE, "num_hidden_layers": 10**12})


def test_experts_layers_are_counted_without_a_loop_over_every_layer() -> None:
    # a billion layers is no model, but within the size limit: counted in closed form, not layer by layer
    deepseek = {**MOE, "num_hidden_layers": 2**30, "first_k_dense_replace": 3, "moe_layer_freq": 2}
    with within(5):
        m = model_from_config(deepseek)
    assert m.moe_layers == (2**30 - 3 + 1) // 2
    qwen = {**MOE, "num_hidden_layers": 24, "decoder_sparse_step": 2, "mlp_only_layers": [1, 2, 5]}
    assert model_from_config(qwen).moe_layers == 12 - 2  # layers 1, 3, 5, ... 23; 1 and 5 dense


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"hidden_size": 10**30}, "hidden_size: expected a positive integer up to 2147483647, got 1000"),
        ({"vocab_size": 2**63}, "vocab_size: expected a positive integer up to 2147483647"),
        ({"num_hidden_layers": 16, "hidden_size": 16, "head_dim": None},
         "hidden_size: 16 is less than one per attention head (num_attention_heads: 32) and no head_dim"),
        ({"attention_bias": "false"}, "attention_bias: expected true or false, got 'false'"),
        ({"layer_types": "full_attention"}, "layer_types: expected a list of layer kinds"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 3, "group_size": 1}},
         "quantization_config.group_size: expected the weights that share one 16-bit scale"),
        ({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": True}},
         "quantization_config.group_size: "),
    ],
)
def test_config_values_with_no_meaning_are_named(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(FleetPlannerError) as err:
        model_from_config({**LLAMA, **change}, source="m/config.json")
    assert str(err.value).startswith("m/config.json: ") and expected in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"moe_intermediate_size": 0}, "moe_intermediate_size: expected a positive integer, got 0"),
        ({"decoder_sparse_step": 0}, "decoder_sparse_step: expected a positive integer, got 0"),
        ({"moe_layer_freq": 0}, "moe_layer_freq: expected a positive integer, got 0"),
        ({"mlp_only_layers": {}}, "mlp_only_layers: expected a list of layer indices"),
        ({"mlp_only_layers": [1.5, "2"]}, "mlp_only_layers: expected a list of layer indices"),
        ({"num_local_experts": 10**30}, "num_local_experts: expected an integer up to 2147483647"),
    ],
)
def test_moe_fields_with_no_meaning_are_named(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(FleetPlannerError, match=expected):
        model_from_config({**MOE, **change})


def test_a_config_file_with_an_over_long_number_or_a_byte_order_mark(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    long = tmp_path / "long.json"
    long.write_text(json.dumps(LLAMA).replace('"hidden_size": 4096', '"hidden_size": ' + "9" * 5000))
    with pytest.raises(FleetPlannerError, match=r"long.json: cannot read as JSON: .*digits"):
        load_model_config(long)
    (tmp_path / "bom").mkdir()
    (tmp_path / "bom" / "config.json").write_text(json.dumps(LLAMA), encoding="utf-8-sig")
    assert load_model_config(tmp_path / "bom").num_layers == 32
    # a config.json in the working directory is named by that folder, not by ''
    monkeypatch.chdir(tmp_path / "bom")
    assert load_model_config("config.json").name == "bom"


# ------------------------------------------------------------------------------------------ result files
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"median_tpot_ms": -1}, "field 'median_tpot_ms' must be >= 0 (got -1)"),
        ({"request_throughput": -3.7}, "field 'request_throughput' must be >= 0"),
        ({"completed": 120}, "field 'completed'(=120) must be <= the requests sent ('num_prompts'=60)"),
        ({"total_input_tokens": 10**20}, "field 'total_input_tokens'(=100000000000000000000) must be at most"),
        ({"total_output_tokens": 1e308}, "field 'total_output_tokens'("),
        ({"total_input_tokens": 0.5}, "field 'total_input_tokens' must be a whole number (got 0.5)"),
        ({"input_lens": [200] * 59 + [10**20], "output_lens": [150] * 60},
         "field 'input_lens[59]' must be at most 2147483647 tokens"),
        ({"date": 5}, "field 'date' must be text (got 5)"),  # it orders a session's runs: not to be guessed at
        # fields together: every completed request has a prompt token and an output token
        ({"total_input_tokens": 0}, "field 'total_input_tokens'(=0) must be at least 1 token per completed request "
                                    "(60): each has a prompt token and an output token"),
        ({"total_output_tokens": 59}, "field 'total_output_tokens'(=59) must be at least 1 token per completed"),
        ({"total_input_tokens": None, "input_lens": [0] * 60, "output_lens": [150] * 60},
         "field 'input_lens'(summed: 0) must be at least 1 token per completed request (60)"),
    ],
)
def test_result_fields_no_measurement_can_have_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         change: dict[str, Any], expected: str) -> None:
    path = write(tmp_path, "r.json", result(**change))
    assert planner(["validate", path, "--seeds", "1"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {path}: ") and expected in err


# ------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["-o", ""], "-o: empty path; expected the profile .yaml file to write"),
        (["-o", " "], "-o: empty path"),
        (["-o", "{tmp}/p.yaml", "--model-config", ""], "--model-config: empty path"),
        (["-o", "{tmp}/p.yaml", "--hardware", ""], "--hardware: empty path"),
        (["-o", "{tmp}/p.yaml", ""], "FILE: empty path"),
        (["-o", "{tmp}/p.yaml", "--gpu", ""], "--gpu: empty name"),
    ],
)
def test_fit_refuses_empty_paths_and_names(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                           expected: str) -> None:
    path = write(tmp_path, "r.json", result())
    argv = [*FIT, *(a.replace("{tmp}", str(tmp_path)) for a in extra), path]
    assert calibrate(argv) == 2
    assert expected in one_error(capsys)
    assert not (tmp_path / " ").exists()


def test_validate_refuses_an_empty_gpu_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert planner(["validate", write(tmp_path, "r.json", result()), "--gpu", ""]) == 2
    assert "--gpu: empty name" in one_error(capsys)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, a folder that takes no new file")
def test_fit_names_an_output_folder_that_takes_no_file_before_fitting(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate([*FIT, write(tmp_path, "r.json", result()), "-o", "/proc/profiles.yaml"]) == 2
    assert one_error(capsys).startswith("error: -o /proc/profiles.yaml: ")


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_contradictory_server_settings_name_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    command: str) -> None:
    path = write(tmp_path, "r.json", result())
    argv = ([*FIT, path, "-o", str(tmp_path / "p.yaml")] if command == "fit"
            else ["validate", path, "--seeds", "1"])
    run = calibrate if command == "fit" else planner
    assert run([*argv, "--engine", "max_num_seqs=100000"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {path}: server settings: max_num_batched_tokens(=8192) must be >= max_num_seqs")


def test_fit_refuses_requests_longer_than_the_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.json", result())
    assert calibrate([*FIT, path, "-o", str(tmp_path / "p.yaml"), "--engine", "max_model_len=16"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {path}: 60 of its 60 requests") and "context of 16 tokens" in err
    assert "max_model_len" in err and not (tmp_path / "p.yaml").exists()


def test_validate_gives_no_prediction_for_requests_longer_than_the_context(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {**LLAMA, "max_position_embeddings": 64}
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "config.json").write_text(json.dumps(cfg))
    path = write(tmp_path, "r.json", result(model_id="acme/short-context"))
    code = planner(["validate", path, "--seeds", "1", "--json", "-", "--model-config", str(tmp_path / "short")])
    out = capsys.readouterr().out
    assert code == 0
    (rec,) = json.loads(out)
    assert rec["predicted"]["request_throughput"] is None  # not 0.0: every request refused is no prediction
    assert planner(["validate", path, "--seeds", "1", "--model-config", str(tmp_path / "short")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "could not be replayed" in text and "short's max_position_embeddings" in text


@pytest.mark.parametrize("engine", ["kv_cache_tokens=1", "block_size=100000", "gpu_memory_utilization=0.01"])
def test_fit_with_no_replayable_run_is_an_error_not_a_profile_of_nans(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      engine: str) -> None:
    out = tmp_path / "p.yaml"
    assert calibrate([*FIT, write(tmp_path, "r.json", result()), "-o", str(out), "--engine", engine]) == 2
    err = one_error(capsys)
    assert err.startswith("error: 1xH100-PCIe: no run could be replayed under any profile the fit tried")
    assert not out.exists()


def test_a_measured_zero_is_left_unscored_not_divided_by(tmp_path: Path) -> None:
    # found by fuzzing: a result file with request_throughput 0 had crashed the fit's MAPE (ZeroDivisionError)
    out = tmp_path / "p.yaml"
    assert calibrate([*FIT, write(tmp_path, "r.json", result(request_throughput=0.0)), "-o", str(out)]) == 0
    fit = yaml.safe_load(out.read_text())["profiles"][0]["fit"]
    assert math.isnan(fit["mape_pct"]["request_throughput"]) and math.isfinite(fit["mape_pct"]["median_tpot_ms"])


def test_a_kv_cache_smaller_than_four_blocks_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.json", result())
    assert planner(["validate", path, "--seeds", "1", "--engine", "block_size=100000"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "holds under four blocks of 100000 tokens (block_size)" in text and "weights per GPU leave" not in text


def test_fit_only_takes_the_gpu_in_any_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.yaml"
    assert calibrate([*FIT, write(tmp_path, "r.json", result()), "-o", str(out), "--only", "1xNVIDIA H100 PCIe"]) == 0
    assert out.exists()


def test_show_refuses_an_empty_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate(["show", ""]) == 2
    assert "PROFILE: empty path" in one_error(capsys)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--out", ""], "--out: empty path"),
        (["--out", "{tmp}/b", "--tokenizer", ""], "--tokenizer: empty path"),
        (["--out", "{tmp}/b", "--seed", "-1"], "seed(=-1) must be in 0.."),
        (["--out", "{tmp}/b", "--max-num-seqs", "100", "--max-num-batched-tokens", "10"],
         "max_num_batched_tokens(=10) must be >= max_num_seqs(=100)"),
    ],
)
def test_run_dry_run_refuses_what_the_server_or_client_would(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             extra: list[str], expected: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(LLAMA))
    argv = ["run", "--model", str(tmp_path / "m"), "--dry-run", "--device", "cpu",
            *(a.replace("{tmp}", str(tmp_path)) for a in extra)]
    assert calibrate(argv) == 2
    assert expected in one_error(capsys)


# ------------------------------------------------------------------------------------------ fields together
@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (1e-300, "field 'request_rate'(=1e-300) is too low for the run's 'duration'(=16.0 s): its 60 requests "
                 "('num_prompts') would take ~5.9e+301 s to send; expected at least 1.2 req/s (or inf: all at once)"),
        (0.1, "field 'request_rate'(=0.1) is too low for the run's 'duration'(=16.0 s)"),
    ],
)
def test_a_request_rate_the_duration_rules_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          rate: float, expected: str) -> None:
    path = write(tmp_path, "r.json", result(request_rate=rate))
    with within(30):
        assert planner(["validate", path, "--seeds", "1"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {path}: ") and expected in err


@pytest.mark.parametrize(
    "change",
    [
        {"request_rate": "inf"},
        {"request_rate": 1.0},  # 60 Poisson arrivals at 1/s in 16 s: unlikely, not ruled out
        {"request_rate": 0.01, "num_prompts": 3, "completed": 3, "duration": 20.0},  # two gaps of 100 s on average
        {"request_rate": 0.5, "burstiness": 0.1, "duration": 16.0},  # bursty: most gaps are near 0
    ],
)
def test_rates_a_short_or_bursty_run_may_have_are_read(change: dict[str, Any]) -> None:
    run = parse_result(result(**change), "r.json")
    assert run.request_rate == float(change["request_rate"])


def test_send_times_beyond_the_run_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = [1000.0 + 0.25 * i for i in range(59)]
    assert parse_result(result(start_times=[*clock, 1014.75]), "r.json").send_times is not None  # within 16 s
    path = write(tmp_path, "r.json", result(start_times=[*clock, 1e12]))
    assert planner(["validate", path, "--seeds", "1"]) == 2
    err = one_error(capsys)
    assert err.startswith(f"error: {path}: field 'start_times' spans 999999999000.0 s from the first send to the last, "
                          "beyond the run's 'duration'(=16.0 s)")


# ------------------------------------------------------------------------------------------ calibrate run --out
@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("{tmp}/m/config.json", "--out {tmp}/m/config.json: exists and is not a directory"),
        ("{tmp}/m/config.json/b", "--out {tmp}/m/config.json/b: {tmp}/m/config.json is a file, not a directory"),
        ("{tmp}/m", "--out {tmp}/m: directory is not empty and holds no manifest.json"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_run_refuses_an_out_path_no_bundle_can_be_written_to(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch, out: str, expected: str,
                                                             dry_run: bool) -> None:
    def started(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the sweep started")

    monkeypatch.setattr("calibrate.commands.run.execute", started)  # a real run is refused before it starts
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(LLAMA))
    argv = ["run", "--model", str(tmp_path / "m"), "--device", "cpu", "--out", out.replace("{tmp}", str(tmp_path))]
    assert calibrate([*argv, *(["--dry-run"] if dry_run else [])]) == 2
    assert one_error(capsys) == "error: " + expected.replace("{tmp}", str(tmp_path)) + (
        "; expected the bundle folder to write (created, or resumed)" if "exists" in expected
        else "; expected the bundle folder to write" if "is a file" in expected
        else "; expected a new folder or a bundle to resume")
