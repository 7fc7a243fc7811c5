"""``calibrate import``: vLLM result files (JSON, JSON Lines, with/without arrays), bundles, bad files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from calibrate.bundle import BundleWriter
from calibrate.cli import main
from calibrate.importer import ImportFailed, assign_sessions, load_runs, read_result_file
from scenarios.errors import FleetPlannerError

BASE: dict[str, Any] = {
    "date": "20250610-140834", "backend": "vllm", "model_id": "meta-llama/Meta-Llama-3-8B-Instruct",
    "num_prompts": 4, "gpu_name": "NVIDIA-H100-PCIe", "gpu_count": "1", "request_rate": 2.0, "burstiness": 1.0,
    "max_concurrency": None, "duration": 5.0, "completed": 4, "total_input_tokens": 400,
    "total_output_tokens": 300, "request_throughput": 0.8, "output_throughput": 60.0,
    "total_token_throughput": 140.0, "mean_ttft_ms": 30.0, "median_ttft_ms": 28.0, "p90_ttft_ms": 40.0,
    "p99_ttft_ms": 45.0, "mean_tpot_ms": 11.0, "median_tpot_ms": 10.5, "p90_tpot_ms": 12.0,
    "median_itl_ms": 10.4, "p99_itl_ms": 15.0,
}
ARRAYS: dict[str, Any] = {
    "input_lens": [100, 50, 150, 100], "output_lens": [80, 70, 90, 60],
    "ttfts": [0.020, 0.030, 0.040, 0.050], "itls": [[0.01] * 79, [0.012] * 69, [0.011] * 89, [0.01] * 59],
}


def write(path: Path, *objs: dict[str, Any], lines: bool = False) -> str:
    if lines:
        path.write_text("\n".join(json.dumps(o) for o in objs) + "\n")
    else:
        path.write_text(json.dumps(objs[0] if len(objs) == 1 else list(objs)))
    return str(path)


def test_json_object_without_arrays(tmp_path: Path) -> None:
    (run,) = read_result_file(Path(write(tmp_path / "r.json", BASE)))
    assert run.gpu == "H100-PCIe" and run.gpu_count == 1 and run.gpu_name == "NVIDIA-H100-PCIe"
    assert run.request_rate == 2.0 and run.total_input_tokens == 400 and run.input_lens is None
    assert run.metrics["median_tpot_ms"] == 10.5
    assert run.file == str(tmp_path / "r.json")


def test_json_lines_repeats_and_list(tmp_path: Path) -> None:
    second = {**BASE, "date": "20250610-141834", "request_rate": 1.0}
    runs = read_result_file(Path(write(tmp_path / "r.jsonl", BASE, second, lines=True)))
    assert [r.request_rate for r in runs] == [2.0, 1.0]
    assert runs[1].where.endswith("r.jsonl:2")
    runs = read_result_file(Path(write(tmp_path / "l.json", BASE, second)))
    assert len(runs) == 2 and runs[1].where.endswith("[1]")


def test_per_request_arrays_fill_missing_summaries(tmp_path: Path) -> None:
    data = {k: v for k, v in {**BASE, **ARRAYS}.items()
            if k not in ("total_input_tokens", "total_output_tokens", "median_ttft_ms", "median_tpot_ms")}
    (run,) = read_result_file(Path(write(tmp_path / "d.json", data)))
    assert run.input_lens == (100, 50, 150, 100) and run.output_lens == (80, 70, 90, 60)
    assert run.total_input_tokens == 400 and run.total_output_tokens == 300
    assert run.metrics["median_ttft_ms"] == pytest.approx(35.0)
    assert run.metrics["median_tpot_ms"] == pytest.approx(10.5, rel=0.05)
    assert run.metrics["p90_ttft_ms"] == 40.0  # the file's own summary wins


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"duration": None}, "missing field 'duration'"),
        ({"completed": "many"}, "field 'completed' is not a number"),
        ({"gpu_name": None}, "missing field 'gpu_name'"),
        ({"model_id": None}, "missing field 'model_id'"),
        ({"request_rate": -1}, "field 'request_rate' must be > 0"),
        ({"total_input_tokens": None}, "missing field 'total_input_tokens'"),
        ({"input_lens": [1, "x"]}, "field 'input_lens' must be a non-empty list of token counts"),
        # what a measurement cannot be: NaN, infinity, negative counts, ragged or mistyped arrays
        ({"completed": "inf"}, "field 'completed' must be a finite number (got 'inf')"),
        ({"gpu_count": math.nan}, "field 'gpu_count' must be a finite number"),
        ({"total_output_tokens": -5}, "field 'total_output_tokens' must be >= 0 (got -5)"),
        ({"num_prompts": -3}, "field 'num_prompts' must be >= 1 (got -3)"),
        ({"gpu_name": 5}, "field 'gpu_name' must be text (got 5)"),
        ({"model_id": ["m"]}, "field 'model_id' must be text (got ['m'])"),
        ({"num_prompts": 10**12}, "fields 'num_prompts'(=1000000000000) and 'completed'(=4) must be <= 200,000,000"),
        ({"max_concurrency": math.inf}, "field 'max_concurrency' must be a finite number"),
        ({"burstiness": 0}, "field 'burstiness' must be > 0 (got 0; 1 is Poisson)"),
        ({**ARRAYS, "input_lens": []}, "field 'input_lens' must be a non-empty list of token counts"),
        ({**ARRAYS, "output_lens": [80, 70]}, "fields 'input_lens' and 'output_lens' must have one entry per "
                                              "request (got 4 and 2)"),
        ({**ARRAYS, "ttfts": [0.02]}, "field 'ttfts' has 1 entries but 'input_lens' has 4"),
        ({**ARRAYS, "itls": [["a"]] * 4}, "field 'itls' must be a list of lists of numbers (seconds)"),
        ({**ARRAYS, "itls": [0.01] * 4}, "field 'itls' must be a list of lists of numbers (seconds)"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    data = {**BASE, **change}
    data = {k: v for k, v in data.items() if v is not None or k == "max_concurrency"}
    path = write(tmp_path / "bad.json", data)
    with pytest.raises(ImportFailed) as err:
        read_result_file(Path(path))
    assert needle in str(err.value) and str(path) in str(err.value)


def test_inf_request_rate_and_nan_percentiles_are_read(tmp_path: Path) -> None:
    # vLLM writes inf for an unpaced run, and NaN where a percentile had no samples: no measurement, not an error
    data = {**BASE, "request_rate": "inf", "p99_ttft_ms": math.nan}
    (run,) = read_result_file(Path(write(tmp_path / "r.json", data)))
    assert run.request_rate == math.inf and "p99_ttft_ms" not in run.metrics


def test_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "broken.jsonl").write_text(json.dumps(BASE) + "\n{not json\n")
    (tmp_path / "scalar.json").write_text("3")
    (tmp_path / "nothing.json").write_text("[]")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for name, needle in (("empty.json", "empty file"), ("broken.jsonl", "line 2: not valid JSON"),
                         ("scalar.json", "expected a JSON object"), ("missing.json", "file not found"),
                         ("nothing.json", "holds no runs"), ("deep.json", "JSON nested too deeply")):
        code = main(["import", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and name in err and "Traceback" not in err
        assert err.count("\n") == 1


def test_cli_summary_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "r.jsonl", BASE, {**BASE, "request_rate": 1.0, "date": "20250610-150000"}, lines=True)
    assert main(["import", path]) == 0
    out = capsys.readouterr().out
    assert "Meta-Llama-3-8B-Instruct" in out and "1xH100-PCIe" in out
    assert main(["import", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["request_rate"] for d in data] == [2.0, 1.0]
    assert data[1]["order"] == 1 and data[0]["order"] == 0 and data[0]["session"] == data[1]["session"]


def test_gpu_override_for_files_without_metadata(tmp_path: Path) -> None:
    data = {k: v for k, v in BASE.items() if k not in ("gpu_name", "gpu_count")}
    path = write(tmp_path / "plain.json", data)
    (run,) = load_runs([path], gpu_name="NVIDIA GeForce RTX 4090", gpu_count=2)
    assert run.gpu == "RTX-4090" and run.gpu_count == 2


def test_sessions_follow_descending_sweeps() -> None:
    rates = [32, 16, 8, 32, 16, 1]
    runs = [read_result_file_obj({**BASE, "request_rate": r, "date": f"20250610-1{i}0000"})
            for i, r in enumerate(rates)]
    linked = assign_sessions(runs)
    assert [r.order for r in linked] == [0, 1, 2, 0, 1, 2]
    assert len({r.session for r in linked}) == 2


def read_result_file_obj(data: dict[str, Any]) -> Any:
    from calibrate.importer import parse_result

    return parse_result(data, "mem.json", file="dir/mem.json")


def test_bundle_is_read_with_engine_settings(tmp_path: Path) -> None:
    writer = BundleWriter(tmp_path / "b", {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "tp": 2,
                                           "prefix_caching": "off", "gpu_memory_utilization": 0.85,
                                           "max_model_len": 4096})
    writer.update(server={"command": ["vllm", "serve", "m", "--tensor-parallel-size", "2", "--max-num-seqs", "128",
                                      "--no-enable-prefix-caching", "--enforce-eager"],
                          "kv_cache": {"tokens": 123456, "block_size": 32}},
                  env={"gpus": {"names": ["NVIDIA GeForce RTX 4090"] * 2, "memory_bytes": [25_757_220_864] * 2}},
                  status="complete")
    for i, rate in enumerate((1.0, 2.0)):
        result = {k: v for k, v in {**BASE, **ARRAYS}.items() if k not in ("gpu_name", "gpu_count", "model_id")}
        writer.add_point({"index": i, "rate": rate, "seed": 1000 + i, "burstiness": 1.0, "num_prompts": 4,
                          "result": {**result, "request_rate": rate}, "power": {"available": False},
                          "metrics": {}})
    runs = load_runs([tmp_path / "b"])
    assert len(runs) == 2 and {r.gpu for r in runs} == {"RTX-4090"} and {r.gpu_count for r in runs} == {2}
    e = runs[0].engine
    assert e["max_num_seqs"] == 128 and e["kv_cache_tokens"] == 123456 and e["gpu_memory_utilization"] == 0.85
    assert e["block_size"] == 32 and e["cuda_graph_max_tokens"] == 0  # --enforce-eager: no CUDA graphs
    assert all(r.prefix_caching == "off" for r in runs) and runs[0].input_lens is not None
    assert runs[0].model_id == "meta-llama/Meta-Llama-3-8B-Instruct"


def one_point_bundle(root: Path, *flags: str, **identity: Any) -> BundleWriter:
    """A finished one-point bundle of Llama-3-8B on an RTX 4090 whose server ran with ``flags``."""
    writer = BundleWriter(root, {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "tp": 1, **identity})
    writer.update(server={"command": ["vllm", "serve", "m", *flags]},
                  env={"gpus": {"names": ["NVIDIA GeForce RTX 4090"]}}, status="complete")
    result = {k: v for k, v in {**BASE, **ARRAYS}.items() if k not in ("gpu_name", "gpu_count", "model_id")}
    writer.add_point({"index": 0, "rate": 1.0, "seed": 1000, "burstiness": 1.0, "num_prompts": 4,
                      "result": {**result, "request_rate": 1.0}, "power": {"available": False}, "metrics": {}})
    return writer


@pytest.mark.parametrize(
    ("section", "change", "needle"),
    [
        ("server", "x", "field 'server' must be an object (got str)"),
        ("server", {"command": 'vllm serve "m'}, "field 'server.command' is not a command line (No closing quotation)"),
        ("server", {"command": [1, 2]}, "field 'server.command' must be a list of names"),
        ("server", {"kv_cache": [1]}, "field 'server.kv_cache' must be an object (got list)"),
        ("env", {"gpus": [1]}, "field 'env.gpus' must be an object (got list)"),
        ("env", {"gpus": {"names": "NVIDIA H100 PCIe"}}, "field 'env.gpus.names' must be a list of names"),
        ("env", {"gpus": {"names": ["NVIDIA H100 PCIe"], "memory_bytes": "abc"}},
         "field 'env.gpus.memory_bytes' must be a list of numbers"),
        ("identity", {"tp": "two"}, "field 'identity.tp' is not a number ('two')"),
        ("identity", {"tp": 0}, "field 'identity.tp' must be >= 1 (got 0)"),
        ("identity", {"max_model_len": "x"}, "field 'identity.max_model_len' is not a number ('x')"),
    ],
)
def test_a_hand_edited_manifest_is_named_field_by_field(tmp_path: Path, section: str, change: Any,
                                                        needle: str) -> None:
    writer = one_point_bundle(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest[section] = {**manifest[section], **change} if isinstance(change, dict) else change
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImportFailed) as err:
        load_runs([writer.root])
    assert str(err.value).startswith(f"{tmp_path / 'b' / 'manifest.json'}: ") and needle in str(err.value)


def test_a_bundle_without_finished_points_or_in_another_encoding_is_named(tmp_path: Path) -> None:
    BundleWriter(tmp_path / "empty", {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "tp": 1}).update(
        env={"gpus": {"names": ["NVIDIA GeForce RTX 4090"]}}, status="running")
    with pytest.raises(ImportFailed, match=r"empty: no finished runs$"):
        load_runs([tmp_path / "empty"])
    one_point_bundle(tmp_path / "b")
    (tmp_path / "b" / "manifest.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FleetPlannerError, match=r"manifest\.json: cannot read: not UTF-8 text \(byte 7\)"):
        load_runs([tmp_path / "b"])


@pytest.mark.parametrize(("device", "limit"), [("cpu", 0), ("cuda", None)])
def test_a_cpu_build_bundle_replays_without_cuda_graphs(tmp_path: Path, device: str, limit: int | None) -> None:
    one_point_bundle(tmp_path / "b", "--max-num-seqs", "128", device=device)
    (run,) = load_runs([tmp_path / "b"])
    assert run.engine.get("cuda_graph_max_tokens") == limit


#: the engine's start-up line as vLLM 0.8.5 and a recent release print it (abridged)
LOG_085 = ('INFO 05-10 12:00:00 [core.py:58] Initializing a V1 LLM engine (v0.8.5) with config: model=\'m\', '
           'enforce_eager=False, compilation_config={"level":3,"use_cudagraph":true,'
           '"cudagraph_capture_sizes":[512,504,496,8,4,2,1],"max_capture_size":512}')
LOG_NEW = ("(EngineCore pid=1) INFO Initializing a V1 LLM engine (v0.11.0) with config: model='m', "
           "enforce_eager=False, compilation_config={'cudagraph_mode': <CUDAGraphMode.FULL_AND_PIECEWISE: (2, 1)>, "
           "'cudagraph_capture_sizes': [256, 248, 8, 4, 2, 1], 'max_cudagraph_capture_size': 256}")


@pytest.mark.parametrize(("log", "limit"), [
    (LOG_085, 512),
    (LOG_NEW, 256),  # newer releases capture up to 2 x max_num_seqs (here 128), not 512
    (LOG_NEW.replace(", 'max_cudagraph_capture_size': 256", ""), 256),
    (LOG_NEW.replace("enforce_eager=False", "enforce_eager=True"), 0),
    (LOG_NEW.replace("FULL_AND_PIECEWISE: (2, 1)", "NONE: 0"), 0),
    (LOG_085.replace('"use_cudagraph":true', '"use_cudagraph":false'), 0),
    (f"{LOG_085}\n===== calibrate run: resumed\n{LOG_NEW}", 256),  # a resumed run's server: the last report
    ("INFO GPU KV cache size: 1,000 tokens", None),
])
def test_cuda_graph_limit_read_from_the_servers_log(log: str, limit: int | None) -> None:
    from calibrate.server import parse_cuda_graphs

    assert parse_cuda_graphs(log) == limit


def test_a_bundles_logged_graph_limit_wins_over_its_command_line(tmp_path: Path) -> None:
    writer = one_point_bundle(tmp_path / "b", "--max-num-seqs", "128")
    (run,) = load_runs([tmp_path / "b"])
    assert "cuda_graph_max_tokens" not in run.engine  # nothing said: the replay's default (512)
    (tmp_path / "b" / "server.log").write_text(LOG_NEW + "\n")  # a bundle of an older calibrate run
    (run,) = load_runs([tmp_path / "b"])
    assert run.engine["cuda_graph_max_tokens"] == 256
    writer.update(server={**writer.manifest["server"], "cuda_graph_max_tokens": 64})  # recorded by calibrate run
    (run,) = load_runs([tmp_path / "b"])
    assert run.engine["cuda_graph_max_tokens"] == 64


def test_engine_settings_for_files_that_do_not_record_them(tmp_path: Path) -> None:
    from calibrate.importer import ImportFailed
    from calibrate.overrides import engine_overrides

    engine = engine_overrides(["max_num_seqs=64", "max-num-batched-tokens=4096", "gpu_memory_utilization=0.95"])
    assert engine == {"max_num_seqs": 64, "max_num_batched_tokens": 4096, "gpu_memory_utilization": 0.95}
    runs = load_runs([write(tmp_path / "r.json", BASE)], engine=engine)
    assert runs[0].engine == engine
    from calibrate.replay import engine_settings

    settings = engine_settings(runs[0])
    assert (settings.max_num_seqs, settings.max_num_batched_tokens, settings.gpu_memory_utilization) == (64, 4096, 0.95)
    for bad, needle in (("max_num_seq=64", "KEY one of"), ("max_num_seqs", "KEY=VALUE"),
                        ("max_num_seqs=6.5", "must be an integer"), ("gpu_memory_utilization=1.5", "(0, 1]"),
                        ("max_model_len=0", "must be >= 1"), ("dtype=fp64", "dtype must be one of auto, half")):
        with pytest.raises(ImportFailed, match=re.escape(needle)):
            engine_overrides([bad])
    assert engine_overrides(["dtype=Float32"]) == {"dtype": "float32"}
    assert engine_overrides(["quantization=FP8"]) == {"quantization": "fp8"}
    with pytest.raises(ImportFailed, match=re.escape("quantization must be one of fp8")):
        engine_overrides(["quantization=awq"])
    # CUDA graphs: 0 is a server started with --enforce-eager, a negative limit is refused
    assert engine_overrides(["cuda_graph_max_tokens=0"]) == {"cuda_graph_max_tokens": 0}
    with pytest.raises(ImportFailed, match=re.escape("cuda_graph_max_tokens must be >= 0")):
        engine_overrides(["cuda-graph-max-tokens=-1"])


@pytest.mark.parametrize(("flags", "limit"), [
    (["--enforce-eager"], 0),
    (["--cuda-graph-sizes", "1", "2", "4", "256", "--max-num-seqs", "64"], 256),
    (["--cuda-graph-sizes=128"], 128),
    (["--max-cudagraph-capture-size", "1024"], 1024),
    (["--compilation-config", '{"cudagraph_mode": "NONE"}'], 0),
    (["--compilation-config", '{"cudagraph_capture_sizes": [1, 2, 64]}'], 64),
    (["-O", '{"max_capture_size": 96}'], 96),
    (["--compilation-config", "not json"], None),
    (["--max-num-seqs", "64"], None),
])
def test_cuda_graph_limit_read_from_the_servers_command_line(flags: list[str], limit: int | None) -> None:
    from calibrate.bundle_runs import _server_settings
    from calibrate.replay import EngineSettings

    settings = _server_settings(["vllm", "serve", "m", *flags])
    assert settings.get("cuda_graph_max_tokens") == limit
    if limit is None:
        assert EngineSettings(256, 2048).cuda_graph_max_tokens == 512  # vLLM V1's default capture


def test_a_bundles_own_engine_settings_win_over_engine_options(tmp_path: Path) -> None:
    one_point_bundle(tmp_path / "b", "--max-num-seqs", "128")
    (run,) = load_runs([tmp_path / "b"], engine={"max_num_seqs": 8, "max_num_batched_tokens": 1024})
    assert run.engine["max_num_seqs"] == 128 and run.engine["max_num_batched_tokens"] == 1024


def test_the_served_dtype_a_bundle_recorded_sizes_the_model(tmp_path: Path) -> None:
    from calibrate.fitplan import resolve_points

    one_point_bundle(tmp_path / "b", "--dtype=float32")
    (run,) = load_runs([tmp_path / "b"])
    assert run.engine["dtype"] == "float32"
    (served,) = resolve_points([run])
    (auto,) = resolve_points(load_runs([write(tmp_path / "r.json", BASE)]))  # no dtype recorded: vLLM's auto
    assert (served.model.dtype_bytes, auto.model.dtype_bytes) == (4, 2)
    assert served.model.weight_bytes == 2 * auto.model.weight_bytes


def test_a_server_quantizing_fp8_as_it_loads_serves_8bit_weights_and_activations(tmp_path: Path) -> None:
    """``vllm serve --quantization fp8`` of a 16-bit checkpoint: a bundle's command line says so, other files
    through ``--engine quantization=fp8``; the model then holds 8-bit linear layers multiplied in FP8."""
    from calibrate.fitplan import FitInputError, resolve_points

    one_point_bundle(tmp_path / "b", "--quantization", "fp8")
    (run,) = load_runs([tmp_path / "b"])
    assert run.engine["quantization"] == "fp8"
    (fp8,) = resolve_points([run])
    (plain,) = resolve_points(load_runs([write(tmp_path / "r.json", BASE)]))
    assert (fp8.model.weight_bits, fp8.model.matmul8, plain.model.weight_bits, plain.model.matmul8) == (8, "fp8", 0, "")
    assert fp8.model.weight_bytes < 0.6 * plain.model.weight_bytes
    (told,) = resolve_points(load_runs([tmp_path / "r.json"], engine={"quantization": "fp8"}))
    assert told.model == fp8.model
    with pytest.raises(FitInputError, match=re.escape("server --quantization 'awq': only fp8")):
        resolve_points(load_runs([tmp_path / "r.json"], engine={"quantization": "awq"}))


def test_a_servers_fp8_kv_cache_halves_the_replayed_kv_bytes(tmp_path: Path) -> None:
    from calibrate.fitplan import resolve_points
    from calibrate.overrides import engine_overrides

    one_point_bundle(tmp_path / "b", "--kv-cache-dtype", "fp8_e4m3")
    (run,) = load_runs([tmp_path / "b"])
    (fp8,) = resolve_points([run])
    (plain,) = resolve_points(load_runs([write(tmp_path / "r.json", BASE)]))
    assert fp8.model.kv_bytes_per_token * 2 == plain.model.kv_bytes_per_token
    assert fp8.model.weight_bytes == plain.model.weight_bytes
    (told,) = resolve_points(load_runs([tmp_path / "r.json"], engine=engine_overrides(["kv-cache-dtype=fp8"])))
    assert told.model == fp8.model
    with pytest.raises(ImportFailed, match=re.escape("kv_cache_dtype must be one of auto, fp8")):
        engine_overrides(["kv_cache_dtype=int4"])


def test_broken_bundle_names_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps({"format": "nope"}))
    assert main(["import", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "format" in err


def test_start_times_become_the_replayed_send_schedule(tmp_path: Path) -> None:
    from calibrate.workload import LengthModel, run_workload

    clock = [5000.0, 5000.5, 5000.25, 5003.0]  # absolute readings, one out of order
    (run,) = read_result_file(Path(write(tmp_path / "s.json", {**BASE, **ARRAYS, "start_times": clock})))
    assert run.send_times == (0.0, 0.5, 0.25, 3.0)
    arrival, prompt, output = run_workload(run, 0, LengthModel())
    assert list(arrival) == [0.0, 0.25, 0.5, 3.0]  # in send order, the lengths with their requests
    assert list(prompt) == [100, 150, 50, 100] and list(output) == [80, 90, 70, 60]
    for seed in (1, 2):  # measured, not drawn: the same for every replay seed
        assert list(run_workload(run, seed, LengthModel())[0]) == [0.0, 0.25, 0.5, 3.0]


@pytest.mark.parametrize(("value", "needle"), [([1.0, "x", 2.0, 3.0], "list of numbers"),
                                               ([1.0, 2.0], "has 2 entries but 'input_lens' has 4")])
def test_bad_start_times_name_file_and_field(tmp_path: Path, value: Any, needle: str) -> None:
    with pytest.raises(ImportFailed, match="start_times") as exc:
        read_result_file(Path(write(tmp_path / "bad.json", {**BASE, **ARRAYS, "start_times": value})))
    assert "bad.json" in str(exc.value) and needle in str(exc.value)


def test_hardware_file_describes_hosts_outside_the_catalogue(tmp_path: Path) -> None:
    from calibrate.fitplan import FitInputError, resolve_points
    from scenarios.errors import ScenarioError
    from scenarios.loader import load_hardware_file

    run = read_result_file_obj({**BASE, "gpu_name": "My-Accel"})
    with pytest.raises(FitInputError, match=r"'My-Accel' is not a known GPU.*--hardware FILE"):
        resolve_points([run])
    hw = tmp_path / "hw.yaml"
    hw.write_text("hardware:\n  - {name: My-Accel, memory_gb: 48, mem_bw_gbps: 900, fp16_tflops: 180, tdp_w: 300}\n")
    (point,) = resolve_points([run], hardware=load_hardware_file(hw))
    assert point.gpu.name == "My-Accel" and point.gpu.mem_bw_gbps == 900 and point.run.hardware_key == ("My-Accel", 1)
    # the name as NVML (hence vLLM's result file) writes it finds the file's short name
    hw.write_text("hardware:\n  - {name: L4, memory_gb: 24, mem_bw_gbps: 300, fp16_tflops: 121, tdp_w: 72, "
                  "fp8_tflops: 242}\n")
    l4 = read_result_file_obj({**BASE, "gpu_name": "NVIDIA L4"})
    (point,) = resolve_points([l4], hardware=load_hardware_file(hw))
    assert point.gpu.name == "L4" and point.run.hardware_key == ("L4", 1)
    assert point.gpu.matmul_tflops("fp8") == 242 and point.gpu.matmul_tflops("int8") == 121  # int8 not stated
    hw.write_text("hardware:\n  - {name: A, memory_gb: 0, mem_bw_gbps: 100, fp16_tflops: 1, tdp_w: 1, colour: red}\n"
                  "  - {name: A, memory_gb: 1, mem_bw_gbps: 100, fp16_tflops: 1, tdp_w: 1}\n")
    with pytest.raises(ScenarioError) as exc:
        load_hardware_file(hw)
    assert exc.value.problems == [
        f"{hw}: hardware[0].memory_gb: Input should be greater than 0 (got 0)",
        f"{hw}: hardware[0].colour: unknown key (not part of the schema; check the spelling)",
    ]
    hw.write_text("- {name: A}\n")
    with pytest.raises(ScenarioError, match="expected a mapping with one key 'hardware'"):
        load_hardware_file(hw)


def test_fit_says_when_a_run_meets_a_cold_prefix_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lone = write(tmp_path / "second.json", {**BASE, "request_rate": 1.0})
    assert main(["fit", lone, "-o", str(tmp_path / "p.yaml"), "--seeds", "1", "--max-evals", "2"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "1 run is the only one of its server session among the files given (second.json at 1 req/s)" in err
    # two runs of other models, each alone in its session: said once, of both
    from calibrate.importer import lone_runs_note

    pair = [write(tmp_path / f"{m}.json", {**BASE, "model_id": f"org/{m}"}) for m in ("a", "b")]
    note = lone_runs_note(assign_sessions(load_runs(pair)))
    assert note is not None and note.startswith("2 runs are each the only one of their server session among the "
                                                "files given (a.json at ")
    assert "so they are replayed with a cold prefix cache" in note


def test_fit_checks_its_output_path_first_and_takes_a_bare_file_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "run.json", BASE)
    monkeypatch.chdir(tmp_path)
    quick = ["--seeds", "1", "--max-evals", "1"]
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    for out, needle in (("adir", "-o adir: is a folder; name the profile .yaml file to write"),
                        ("afile/p.yaml", "-o afile/p.yaml: cannot create folder afile")):
        assert main(["fit", "run.json", "-o", out, *quick]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    # a result file named without a folder (its folder is ".") is recorded, not a crash after the fit
    assert main(["fit", "run.json", "-o", "p.yaml", *quick]) == 0
    assert "files:\n    - .\n" in (tmp_path / "p.yaml").read_text()
