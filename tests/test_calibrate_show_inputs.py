"""Odd inputs to `calibrate show` / profile files and to `calibrate import`: one clear error line, or read as
absent where the readers are null-lenient; never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from calibrate.cli import main
from calibrate.importer import ImportFailed, read_result_file
from scenarios.errors import FleetPlannerError
from sim.profiles import BUNDLED_DIR, read_profile_file, resolve_profile

BASE: dict[str, Any] = {
    "date": "20250610-140834", "backend": "vllm", "model_id": "meta-llama/Meta-Llama-3-8B-Instruct",
    "num_prompts": 4, "gpu_name": "NVIDIA-H100-PCIe", "gpu_count": "1", "request_rate": 2.0, "burstiness": 1.0,
    "duration": 5.0, "completed": 4, "total_input_tokens": 400, "total_output_tokens": 300,
    "request_throughput": 0.8, "median_ttft_ms": 28.0, "median_tpot_ms": 10.5,
}


def _profiles() -> dict[str, Any]:
    data = yaml.safe_load((BUNDLED_DIR / "h100-pcie.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: Any, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _show(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["show", str(path), "--no-residuals"])
    got = capsys.readouterr()
    return rc, " ".join(got.out.split()), got.err  # rich wraps lines at the terminal's width


def test_show_reads_null_record_fields_as_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _profiles()
    fit = data["profiles"][0]["fit"]
    fit.update(models=None, files=None, runs=None)
    name = next(iter(fit["spread"]))
    fit["spread"][name]["data_share"] = None
    fit["mape_pct"][next(iter(fit["mape_pct"]))] = None
    rc, out, err = _show(_write(tmp_path, data), capsys)
    assert rc == 0, err
    assert "fitted (*) on runs of" in out and "None" not in out


def test_show_prints_a_nan_spread_as_a_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _profiles()
    for entry in data["profiles"]:
        for s in entry["fit"]["spread"].values():
            s.update(pm_pct=float("nan"), data_share=1.0, at_bound=False)
    rc, out, err = _show(_write(tmp_path, data), capsys)
    assert rc == 0, err
    assert ">999%" not in out


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("runs", "lots", "profiles[0].fit.runs: expected a whole number, got 'lots'"),
    ("runs", 2.5, "profiles[0].fit.runs: expected a whole number"),
    ("seeds", True, "profiles[0].fit.seeds: expected a whole number"),
    ("derived_from", {"a": 1}, "profiles[0].fit.derived_from: expected text"),
    ("engine", {"max_num_seqs": {"deep": 1}}, "profiles[0].fit.engine.max_num_seqs: expected a number"),
])
def test_show_refuses_ill_typed_record_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str,
                                              value: Any, expected: str) -> None:
    data = _profiles()
    data["profiles"][0]["fit"][field] = value
    path = _write(tmp_path, data)
    rc, _, err = _show(path, capsys)
    assert rc == 2
    assert f"{path}: {expected}" in err and err.count("\n") == 1


def test_duplicate_profile_entries_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _profiles()
    data["profiles"].append(copy.deepcopy(data["profiles"][0]))
    data["profiles"][-1]["gpu"] = "h100-pcie"  # the same hardware, however it is spelled
    path = _write(tmp_path, data)
    expected = f"{path}: profiles[2]: duplicate 1xh100-pcie (also profiles[0])"
    rc, _, err = _show(path, capsys)
    assert rc == 2 and expected in err and err.count("\n") == 1
    with pytest.raises(FleetPlannerError, match=r"duplicate 1xh100-pcie \(also profiles\[0\]\)"):
        resolve_profile("H100-PCIe", 1, str(path), tmp_path)


def test_an_empty_profile_list_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {"profiles": []})
    rc, _, err = _show(path, capsys)
    assert rc == 2 and f"{path}: profiles: expected at least one profile" in err
    with pytest.raises(FleetPlannerError, match="expected at least one profile"):
        read_profile_file(path)


def test_valid_profiles_still_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _profiles())
    assert [f"{p.gpus}x{p.gpu}" for p in read_profile_file(path)] == ["1xH100-PCIe", "2xH100-PCIe"]
    rc, out, err = _show(path, capsys)
    assert rc == 0 and "2 profile(s)" in out and "fitted (*) on 35 runs of" in out, err


def test_import_names_the_line_of_an_over_long_integer(tmp_path: Path) -> None:
    digits = "9" * 5000
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join([json.dumps(BASE), json.dumps(BASE), json.dumps(BASE).replace('"completed": 4',
                                                                                            f'"completed": {digits}')]))
    with pytest.raises(ImportFailed, match=r"f\.jsonl: line 3: not valid JSON \(a number with more than 4300 digits\)"):
        read_result_file(path)
    first = tmp_path / "g.jsonl"  # on the first line the whole-file parse meets it
    first.write_text(path.read_text().split("\n")[2] + "\n" + json.dumps(BASE))
    with pytest.raises(ImportFailed, match=r"g\.jsonl: line 1: not valid JSON \(a number with more"):
        read_result_file(first)
    pretty = tmp_path / "h.json"
    text = json.dumps(BASE, indent=1).replace('"completed": 4', f'"completed": {digits}')
    pretty.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"completed"' in row)
    with pytest.raises(ImportFailed, match=rf"h\.json: line {line}: not valid JSON \(a number with more"):
        read_result_file(pretty)


def test_import_refuses_an_integer_past_float_range(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({**BASE, "duration": 10**400}))
    with pytest.raises(ImportFailed) as exc:
        read_result_file(path)
    assert "field 'duration' must be a finite number" in str(exc.value) and len(str(exc.value)) < 200
    path.write_text(json.dumps({**BASE, "input_lens": [10**400] * 4, "output_lens": [1] * 4}))
    with pytest.raises(ImportFailed, match="field 'input_lens' must be a non-empty list of token counts"):
        read_result_file(path)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_import_accepts_a_leading_byte_order_mark(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    lines = [json.dumps(BASE)] * (2 if suffix == ".jsonl" else 1)
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    runs = read_result_file(path)
    assert len(runs) == len(lines) and runs[0].gpu_count == 1 and runs[0].completed == 4


def test_import_shortens_an_over_long_value_in_its_message(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    for field in ("gpu_count", "duration", "gpu_name"):
        path.write_text(json.dumps({**BASE, field: "x" * 5000 if field != "gpu_name" else 7 * 10**600}))
        with pytest.raises(ImportFailed) as exc:
            read_result_file(path)
        message = str(exc.value)
        assert f"field '{field}'" in message and "..." in message and len(message) < 300, message


@pytest.mark.parametrize("count", ["1e3", "99999999999999999999999", "0", "2.5", 2.5, 0, 5000, "two", -1])
def test_import_refuses_a_gpu_count_that_is_no_whole_number_in_range(tmp_path: Path, count: Any) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({**BASE, "gpu_count": count}))
    with pytest.raises(ImportFailed, match=r"f\.json: field 'gpu_count' must be a whole number of GPUs from 1 to 4096"):
        read_result_file(path)
    path.write_text(json.dumps({**{k: v for k, v in BASE.items() if k != "gpu_count"}, "tensor_parallel_size": count}))
    with pytest.raises(ImportFailed, match=r"field 'tensor_parallel_size' must be a whole number of GPUs"):
        read_result_file(path)


@pytest.mark.parametrize(("count", "gpus"), [("1", 1), ("2", 2), (" 4 ", 4), (8, 8), (2.0, 2), ("2.0", 2),
                                            (4096, 4096)])
def test_import_reads_gpu_counts_as_before(tmp_path: Path, count: Any, gpus: int) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({**BASE, "gpu_count": count}))
    assert read_result_file(path)[0].gpu_count == gpus


def _lines(path: Path, *objs: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_import_reads_a_repeated_record_once_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slow = {**BASE, "request_rate": 1.0, "date": "20250610-150000"}
    other = {**slow, "duration": 6.0}  # differs in one field: another run
    path = _lines(tmp_path / "f.jsonl", BASE, slow, dict(reversed(list(BASE.items()))), other)
    capsys.readouterr()
    assert main(["import", str(path), "--json"]) == 0
    got = capsys.readouterr()
    runs = json.loads(got.out)
    assert [r["where"] for r in runs] == [f"{path}:1", f"{path}:2", f"{path}:4"]
    assert got.err == f"note: {path}: line 3 repeats line 1; imported once\n"
    assert main(["import", str(_lines(tmp_path / "g.jsonl", BASE, slow, other))]) == 0
    assert "note" not in capsys.readouterr().err  # records that differ are all read


def test_a_record_repeated_in_another_file_or_a_file_given_twice_counts_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from calibrate.importer import load_runs

    first = _lines(tmp_path / "a.jsonl", BASE, {**BASE, "request_rate": 1.0})
    copy_ = tmp_path / "b.json"
    copy_.write_text(json.dumps(BASE, indent=2))
    listed = tmp_path / "c.json"
    listed.write_text(json.dumps([{**BASE, "request_rate": 4.0}, {**BASE, "request_rate": 1.0}]))
    capsys.readouterr()
    runs = load_runs([first, copy_, listed, first, tmp_path])
    assert sorted(r.request_rate for r in runs) == [1.0, 2.0, 4.0]
    printed = capsys.readouterr().err
    notes: list[str] = []  # or handed to the caller, to print when it will
    assert load_runs([first, copy_, listed, first, tmp_path], notes=notes) == runs
    assert printed == "".join(f"note: {note}\n" for note in notes) and capsys.readouterr().err == ""
    assert notes == [f"{first}: given more than once; read once",  # by name, and in its folder
                     f"{copy_}: given more than once; read once",
                     f"{listed}: given more than once; read once",
                     f"{copy_}: repeats line 1 of {first}; imported once",
                     f"{listed}: [1] repeats line 2 of {first}; imported once"]


def test_import_names_a_bad_record_as_file_colon_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _lines(tmp_path / "f.jsonl", BASE, {**BASE, "duration": "soon"})
    capsys.readouterr()
    assert main(["import", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: line 2: field 'duration' is not a number ('soon')\n"
    listed = tmp_path / "l.json"
    listed.write_text(json.dumps([BASE, {**BASE, "completed": -1}]))
    with pytest.raises(ImportFailed, match=r"^.*l\.json: \[1\]: field 'completed' must be >= 0 \(got -1\)$"):
        read_result_file(listed)


def test_a_fit_names_a_bad_run_as_file_colon_line(tmp_path: Path) -> None:
    from calibrate.fitplan import FitInputError, resolve_points
    from calibrate.importer import load_runs

    path = _lines(tmp_path / "f.jsonl", BASE, {**BASE, "gpu_name": "My-Accel", "request_rate": 1.0})
    runs = load_runs([path])
    with pytest.raises(FitInputError, match=rf"^{path}: line 2: gpu_name 'My-Accel' is not a known GPU"):
        resolve_points(runs)
    assert runs[1].where == f"{path}:2" and runs[1].place == f"{path}: line 2"  # the name seeds the replay: kept


@pytest.mark.parametrize("gpus", ["0", "-2", "4097", "100000"])
@pytest.mark.parametrize("command", ["import", "fit"])
def test_a_gpu_count_option_out_of_range_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     command: str, gpus: str) -> None:
    path = _lines(tmp_path / "f.jsonl", {k: v for k, v in BASE.items() if k != "gpu_count"})
    extra = ["-o", str(tmp_path / "p.yaml")] if command == "fit" else []
    capsys.readouterr()
    assert main([command, str(path), "--gpus", gpus, *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --gpus(={gpus}) must be a whole number of GPUs from 1 to 4096\n"
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("tp", ["-1", "4097", "1000000"])
def test_run_refuses_a_tp_beyond_the_gpu_range(tmp_path: Path, capsys: pytest.CaptureFixture[str], tp: str) -> None:
    from calibrate.resultfields import MAX_GPUS
    from calibrate.server import ServerConfig

    capsys.readouterr()
    assert main(["run", "--model", "/m", "--out", str(tmp_path / "b"), "--tp", tp, "--device", "cuda",
                 "--dry-run"]) == 2
    got = capsys.readouterr()
    assert got.err == f"error: tp(={tp}) must be >= 1 and <= {MAX_GPUS} (the number of GPUs the server uses)\n"
    assert "dry run" not in got.out
    with pytest.raises(ValueError, match=rf"tp\(={tp}\) must be >= 1 and <= {MAX_GPUS}"):
        ServerConfig(model="m", tp=int(tp))
    assert main(["run", "--model", "/m", "--out", str(tmp_path / "b"), "--tp", str(MAX_GPUS), "--device", "cuda",
                 "--dry-run"]) == 0  # the bound itself is a count
    assert "dry run: nothing started" in capsys.readouterr().out


def test_a_bundle_tp_beyond_the_gpu_range_is_named(tmp_path: Path) -> None:
    from calibrate.bundle import BundleWriter
    from calibrate.importer import load_runs

    writer = BundleWriter(tmp_path / "b", {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "tp": 5000})
    writer.update(server={"command": ["vllm", "serve", "m"]}, env={"gpus": {"names": ["NVIDIA H100 PCIe"]}},
                  status="complete")
    result = {k: v for k, v in BASE.items() if k not in ("gpu_name", "gpu_count", "model_id")}
    writer.add_point({"index": 0, "rate": 2.0, "seed": 1000, "burstiness": 1.0, "num_prompts": 4, "result": result,
                      "power": {"available": False}, "metrics": {}})
    with pytest.raises(ImportFailed, match=r"manifest\.json: field 'identity\.tp' must be a whole number of GPUs "
                                           r"from 1 to 4096 \(got 5000\)"):
        load_runs([tmp_path / "b"])
