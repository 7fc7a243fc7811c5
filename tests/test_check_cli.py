"""``planner check``: exit status, one line per problem, ``--json``, and extra checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cli import main
from planner.commands import check
from scenarios.loader import LoadedScenario

GOOD: dict[str, Any] = {
    "model": "phi-4",
    "configs": [{"gpu": "H100-PCIe"}, {"gpu": "RTX-4090", "gpus": 2}],
    "traffic": {"classes": [{"name": "chat", "rate": 5.0}, {"name": "batch", "rate": 1.0}]},
    "fleet": {"pools": [{"config": "1xH100-PCIe", "count": 2}, {"config": "2xRTX-4090", "count": 3}]},
}


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    assert run(["check", good], capsys) == (0, [f"{good}: ok (2 classes, 2 pools, 5 replicas)"], "")


def test_singular_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dict(
        GOOD, traffic={"classes": [{"name": "a", "rate": 1}]}, fleet={"pools": [{"config": "1xH100-PCIe"}]}
    )
    path = write(tmp_path, "one.yaml", data)
    assert run(["check", path], capsys)[1] == [f"{path}: ok (1 class, 1 pool, 1 replica)"]


def test_bad_file_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        dict(GOOD, routing={"type": "least_outstandng"}, fleet={"pools": [{"config": "x"}]}),
    )
    code, lines, err = run(["check", bad], capsys)
    assert code == 2
    assert err == ""
    assert lines == [
        f"{bad}: routing.type: unknown routing policy 'least_outstandng'; known: round_robin, "
        "least_outstanding, least_kv_load, class_affinity, cost_aware, carbon_aware"
    ]
    bad2 = write(tmp_path, "bad2.yaml", dict(GOOD, fleet={"pools": [{"config": "x"}]}))
    assert run(["check", bad2], capsys)[1] == [
        f"{bad2}: fleet.pools[0].config: unknown configuration 'x'; known: 1xH100-PCIe, 2xRTX-4090"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found"),
        ("model: [unclosed\n", "line 2, column 1: invalid YAML"),
        ("- just\n- a list\n", "(top level): expected a mapping of scenario fields"),
        (b"\x80\x81 binary", "cannot read: not UTF-8"),
        (
            "model: phi-4\nconfigs: 3\ntraffic: {}\nfleet: {pools: []}\n",
            "configs: Input should be a valid list",
        ),
    ],
)
def test_bad_input_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "x.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, lines, err = run(["check", str(path)], capsys)
    assert code == 2
    assert err == ""
    assert lines and all(line.startswith(f"{path}: ") for line in lines)
    assert any(line.startswith(f"{path}: {expected}") for line in lines), lines


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(["check", str(tmp_path)], capsys)
    assert code == 2
    assert lines == [f"{tmp_path}: is a directory; name the scenario .yaml files in it"]


def test_mixed_files_exit_2_and_report_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    missing = str(tmp_path / "missing.yaml")
    code, lines, _ = run(["check", good, missing, good], capsys)
    assert code == 2
    assert lines == [f"{good}: ok (2 classes, 2 pools, 5 replicas)", f"{missing}: file not found", lines[0]]


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", dict(GOOD, colour="red"))
    code = main(["check", "--json", good, bad])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert report == [
        {"file": good, "ok": True, "problems": []},
        {
            "file": bad,
            "ok": False,
            "problems": [f"{bad}: colour: unknown key (not part of the schema; check the spelling)"],
        },
    ]
    assert main(["check", good, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ok"] is True


def test_missing_trace_file_is_found_by_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dict(GOOD, traffic={"classes": [{"name": "t", "arrival": {"type": "trace", "path": "gone.csv"}}]})
    path = write(tmp_path, "trace.yaml", data)
    code, lines, _ = run(["check", path], capsys)
    assert code == 2
    assert lines == [
        f"{path}: traffic.classes[0].arrival.path: trace file not found: {tmp_path / 'gone.csv'}"
    ]
    (tmp_path / "gone.csv").write_text("timestamp\n0\n1\n")
    assert run(["check", path], capsys)[0] == 0


def test_extra_checks_are_prefixed_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_big(loaded: LoadedScenario) -> list[str]:
        return [
            f"configs[{i}]: model does not fit" for i, c in enumerate(loaded.scenario.configs) if c.gpus < 2
        ]

    monkeypatch.setattr(check, "CHECKS", [*check.CHECKS])
    check.add_check(too_big)
    with pytest.raises(ValueError, match="already registered"):
        check.add_check(too_big)
    good = write(tmp_path, "good.yaml", GOOD)
    assert run(["check", good], capsys)[:2] == (2, [f"{good}: configs[0]: model does not fit"])


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "planner check scenarios/" in out
    assert "--json" in out


def test_no_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    assert "FILE" in capsys.readouterr().err


def test_values_vllm_or_a_bill_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dict(GOOD, configs=[{"gpu": "H100-PCIe", "max_model_len": 100_000}, {"gpu": "RTX-4090", "gpus": 2}],
                pricing={"overrides": {"RTX-4090": -1.0}})
    path = write(tmp_path, "refused.yaml", data)
    code, lines, _ = run(["check", path], capsys)
    assert code == 2
    assert f"{path}: pricing.overrides.RTX-4090: Input should be greater than or equal to 0 (got -1.0)" in lines
    data["pricing"] = {}
    code, lines, _ = run(["check", write(tmp_path, "long.yaml", data)], capsys)
    assert code == 2 and lines == [
        f"{tmp_path / 'long.yaml'}: configs[0].max_model_len: 100000 exceeds microsoft/phi-4's context "
        "(max_position_embeddings=16384); vLLM refuses to start with it"
    ]


def test_what_does_not_fit_names_its_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the activation peak of a huge step budget, not the weights, leaves no memory: say so, not "raise
    # gpu_memory_utilization" over a negative usable figure; and a profile file name is looked for as a file
    data = dict(GOOD, configs=[{"gpu": "H100-PCIe", "max_num_batched_tokens": 10**9},
                               {"gpu": "RTX-4090", "gpus": 2, "profile": "nosuch.yaml"}])
    bad = write(tmp_path, "bad.yaml", data)
    code, lines, _ = run(["check", bad], capsys)
    assert code == 2
    assert lines[0].startswith(f"{bad}: configs[0]: the activation peak of max_num_batched_tokens=1000000000 and "
                               "max_num_seqs=256 needs ")
    assert lines[0].endswith("(gpu_memory_utilization=0.9); lower it")
    assert lines[1] == f"{bad}: configs[1].profile: {tmp_path / 'nosuch.yaml'}: profile file not found"


def test_simulate_names_fleet_options_configurations_as_its_own(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    assert main(["simulate", good, "--fleet", "3xH100-PCIe:1", "--requests", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --fleet 3xH100-PCIe: ") and "tensor-parallel size 3" in err and good not in err
    assert main(["simulate", good, "--fleet", "", "--requests", "20"]) == 2
    assert "--fleet: empty spec" in capsys.readouterr().err


def test_power_above_board_and_lists_named_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an idle power above the board power made power fall as load rose; a menu entry or routing policy
    # listed twice was enumerated twice
    data = {**GOOD, "power": {"model": "linear", "idle_w": {"H100-PCIe": 1000}, "board_w": {"RTX-4090": 10}},
            "plan": {"menu": ["1xH100-PCIe", "1xH100-PCIe"], "routing": ["round_robin", "round_robin"]}}
    code, out, _ = run(["check", write(tmp_path, "p.yaml", data)], capsys)
    text = "\n".join(out)
    assert code == 2, text
    assert "power.idle_w.H100-PCIe: idle power 1000 W is above the board power 350 W" in text
    assert "power.board_w.RTX-4090: idle power 20 W is above the board power 10 W" in text
    assert "plan.menu: listed more than once: 1xH100-PCIe" in text
    assert "plan.routing: listed more than once: round_robin" in text


def test_names_breaking_specs_or_reports_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a class or pool named 'x[/red]' crashed the printed tables (Rich markup), a configuration named 'a:b'
    # printed as an emoji and cannot be given to --fleet; an empty configuration name fell back to the default
    data = {**GOOD, "traffic": {"classes": [{"name": "x[/red]", "rate": 5.0}]},
            "configs": [{"gpu": "H100-PCIe", "name": "a:b"}, {"gpu": "RTX-4090", "gpus": 2, "name": ""}],
            "hardware": [{"name": "SLOW", "memory_gb": 80, "mem_bw_gbps": 0.001, "fp16_tflops": 0.001, "tdp_w": 300}]}
    code, out, _ = run(["check", write(tmp_path, "n.yaml", data)], capsys)
    text = "\n".join(out)
    assert code == 2
    assert "traffic.classes[0].name: a name cannot hold '[' ']'" in text
    assert "configs[0].name: a name cannot hold ':'" in text
    assert "configs[1].name: " in text and "at least 1 character" in text
    assert "hardware[0].mem_bw_gbps: " in text and "hardware[0].fp16_tflops: " in text


def test_a_simulation_window_that_holds_no_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 6 req/s for 10 ms: 0.06 requests on average; simulate would have nothing to run
    short = write(tmp_path, "short.yaml", {**GOOD, "simulation": {"duration_s": 0.01}})
    code, out, _ = run(["check", short], capsys)
    assert code == 2 and out == [f"{short}: simulation.duration_s: 0.01 s holds 0.06 requests on average; expected a "
                                 "window in which requests arrive; e.g. duration_s: 16.7 holds about 100 at 6 req/s"]
    enough = write(tmp_path, "enough.yaml", {**GOOD, "simulation": {"duration_s": 1.0}})
    assert run(["check", enough], capsys)[0] == 0


def test_a_context_longer_than_the_kv_cache_is_refused_as_vllm_does(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # the 14B on two 4090s holds ~72k tokens of KV cache: vLLM will not start with max_model_len 131072, set or
    # left at the model's context; the simulator had quietly served such requests up to the cache's size
    data = {**GOOD, "model": "DeepSeek-R1-Distill-Qwen-14B", "configs": [{"gpu": "RTX-4090", "gpus": 2}],
            "fleet": {"pools": [{"config": "2xRTX-4090", "count": 1}]}}
    unset = write(tmp_path, "unset.yaml", data)
    code, out, _ = run(["check", unset], capsys)
    assert code == 2 and len(out) == 1
    assert re.fullmatch(rf"{re.escape(unset)}: configs\[0\]\.max_model_len: max_model_len \(unset: .*'s context, "
                        r"max_position_embeddings\) of 131,072 tokens exceeds the KV cache of 2xRTX-4090 \(([\d,]+) "
                        r"tokens at gpu_memory_utilization=0.9\); vLLM refuses to start with it: set max_model_len "
                        r"<= \1, or give it more memory", out[0]), out
    data["configs"][0]["max_model_len"] = 32768
    assert run(["check", write(tmp_path, "set.yaml", data)], capsys)[0] == 0


def test_an_unknown_configuration_is_named_where_it_is_written(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # a cap for a configuration the scenario lacks had been reported under plan.menu
    plan = {"menu": ["1xH100-PCIe", "1xA100"], "max_replicas": {"nope": 2}}
    bad = write(tmp_path, "bad.yaml", {**GOOD, "plan": plan})
    code, out, _ = run(["check", bad], capsys)
    known = "known: 1xH100-PCIe, 2xRTX-4090"
    assert code == 2 and out == [f"{bad}: plan.menu[1]: unknown configuration '1xA100'; {known}",
                                 f"{bad}: plan.max_replicas.nope: unknown configuration 'nope'; {known}"]
