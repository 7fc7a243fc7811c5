"""``planner validate``: JSON schema, unseen models via config.json, gpu_name variants, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import vllm_result as result

from calibrate.importer import load_runs
from calibrate.validation import METRICS, ape, mape
from planner.cli import main
from scenarios.catalog import normalise_gpu_name

KEYS = {"file", "model_id", "gpu_name", "gpu_count", "request_rate", "measured", "predicted"}
VLLM_METRICS = {"request_throughput", "output_throughput", "total_token_throughput", "median_ttft_ms",
                "p90_ttft_ms", "p99_ttft_ms", "mean_ttft_ms", "median_tpot_ms", "p90_tpot_ms", "median_itl_ms",
                "p99_itl_ms"}


def write(tmp_path: Path, name: str, *objs: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(o) for o in objs) + "\n")
    return str(path)


def validate_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code = main(["validate", *argv, "--json", "-", "--seeds", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, list)
    return data


def test_json_schema_is_exactly_one_object_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "phi.jsonl", result(), result(request_rate=1.0, date="20250610-150000"))
    data = validate_json([path], capsys)
    assert len(data) == 2
    for rec in data:
        assert set(rec) == KEYS
        assert set(rec["measured"]) == VLLM_METRICS == set(rec["predicted"]) == set(METRICS)
        assert rec["file"] == path and rec["model_id"] == "microsoft/phi-4"
        assert rec["gpu_name"] == "NVIDIA-H100-PCIe" and rec["gpu_count"] == 1
        assert all(isinstance(v, float) and v > 0 for v in rec["predicted"].values())
        assert rec["measured"]["median_tpot_ms"] == 19.0
    assert [rec["request_rate"] for rec in data] == [4.0, 1.0]
    # a 14.7B model on one H100: the predicted decode step is the weights over the bandwidth, give or take
    assert 12.0 < data[1]["predicted"]["median_tpot_ms"] < 30.0


def test_json_to_file_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "phi.json", result())
    out = tmp_path / "v.json"
    assert main(["validate", path, "--json", str(out), "--seeds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "MAPE" in printed and "median_tpot_ms" in printed
    (rec,) = json.loads(out.read_text())
    assert set(rec) == KEYS


def test_a_run_alone_in_its_server_session_is_said_to_meet_a_cold_cache(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep of the published kind warmed vLLM's prefix cache for every run after its first; a run given
    without the runs its server served before is replayed cold, and the output says so."""
    sweep = [result(request_rate=8.0, date="20250610-140000"), result(request_rate=4.0, date="20250610-141000")]
    together = write(tmp_path, "sweep.jsonl", *sweep)
    assert main(["validate", together, "--seeds", "1"]) == 0
    assert "cold prefix cache" not in capsys.readouterr().out
    alone = write(tmp_path, "second.jsonl", sweep[1])
    assert main(["validate", alone, "--seeds", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 run is the only one of its server session among the files given (second.jsonl at 4 req/s)" in out
    assert "give a sweep's files together" in out
    # prefix caching off (a calibrate bundle's default): nothing to say
    from calibrate.importer import lone_cached_runs

    (run,) = load_runs([alone])
    assert lone_cached_runs([run]) == [run]
    from dataclasses import replace

    assert lone_cached_runs([replace(run, prefix_caching="off")]) == []


def test_model_outside_the_catalogue_via_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
           "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}
    (tmp_path / "mistral").mkdir()
    (tmp_path / "mistral" / "config.json").write_text(json.dumps(cfg))
    path = write(tmp_path, "m.jsonl", result(model_id="acme/Mistral-7B-support-tuned",
                                             gpu_name="NVIDIA GeForce RTX 4090"))
    code = main(["validate", path, "--json", "-", "--seeds", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Mistral-7B-support-tuned" in err and "--model-config" in err and path in err
    data = validate_json([path, "--model-config", str(tmp_path / "mistral" / "config.json")], capsys)
    (rec,) = data
    assert rec["gpu_name"] == "NVIDIA GeForce RTX 4090" and rec["predicted"]["median_tpot_ms"] > 10.0


@pytest.mark.parametrize(
    ("written", "key"),
    [("NVIDIA-H100-PCIe", "H100-PCIe"), ("NVIDIA H100 PCIe", "H100-PCIe"), ("NVIDIAH100PCIe", "H100-PCIe"),
     ("H100-PCIe", "H100-PCIe"), ("nvidia h100 pcie", "H100-PCIe"), ("NVIDIA-GeForce-RTX-4090", "RTX-4090"),
     ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("GeForce RTX 4090", "RTX-4090"), ("RTX-4090", "RTX-4090"),
     ("NVIDIA_GeForce_RTX_4090", "RTX-4090"), ("NVIDIAGeForceRTX4090", "RTX-4090"),
     ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA-H100-80GB-HBM3", "H100-SXM"),
     ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100-PCIe"), ("NVIDIA L40S", "L40S"),
     # not in the catalogue (other memory sizes, other boards): kept as written
     ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"), ("NVIDIA H100 NVL", "NVIDIA H100 NVL"),
     ("NVIDIA RTX 6000 Ada Generation", "NVIDIA RTX 6000 Ada Generation")],
)
def test_gpu_name_variants(written: str, key: str) -> None:
    assert normalise_gpu_name(written) == key


@pytest.mark.parametrize("written", ["NVIDIA-GeForce-RTX-4090", "NVIDIA GeForce RTX 4090", "RTX 4090"])
def test_gpu_name_variants_through_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str) -> None:
    path = write(tmp_path, "r.json", result(model_id="meta-llama/Meta-Llama-3-8B-Instruct", gpu_name=written))
    (run,) = load_runs([path])
    assert run.gpu == "RTX-4090"
    (rec,) = validate_json([path], capsys)
    assert rec["gpu_name"] == written and rec["predicted"]["request_throughput"] is not None


def test_unknown_gpu_and_bad_profile_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "r.json", result(gpu_name="NVIDIA Quantum 9000"))
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert "gpu_name 'NVIDIA Quantum 9000'" in err and path in err and err.count("\n") == 1
    good = write(tmp_path, "g.json", result())
    assert main(["validate", good, "--profile", str(tmp_path / "none.yaml")]) == 2
    assert "profile file not found" in capsys.readouterr().err
    for args, needle in ((["--client-seed", "-1"], "--client-seed(=-1) must be in 0..2**32-1"),
                         (["--seeds", "100000"], "--seeds(=100000) must be in 1..64"),
                         (["--json", str(tmp_path)], f"--json {tmp_path}: is a folder; name a file to write")):
        assert main(["validate", good, *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_engine_option_changes_the_replayed_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file without server settings replays with vLLM 0.8.5's defaults unless --engine states them:
    a server of 2 sequences at a time cannot keep up with 4 req/s of ~150-token replies."""
    path = write(tmp_path, "r.json", result())
    (free,) = validate_json([path], capsys)
    (narrow,) = validate_json([path, "--engine", "max_num_seqs=2"], capsys)
    assert narrow["predicted"]["median_ttft_ms"] > 3 * free["predicted"]["median_ttft_ms"]
    assert main(["validate", path, "--engine", "max_seqs=2"]) == 2
    assert "KEY one of" in capsys.readouterr().err


def test_engine_option_for_a_server_without_cuda_graphs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A small model on the RTX 4090 box is launch-bound; a server started with --enforce-eager launches
    every step kernel by kernel, so its replay is slower by the profile's eager factor (~3)."""
    small = {"model_id": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "gpu_name": "NVIDIA-GeForce-RTX-4090"}
    path = write(tmp_path, "r.json", result(**small))
    (graphs,) = validate_json([path], capsys)
    (eager,) = validate_json([path, "--engine", "cuda_graph_max_tokens=0"], capsys)
    assert eager["predicted"]["median_tpot_ms"] > 2 * graphs["predicted"]["median_tpot_ms"]


def test_models_outside_the_profiles_fitted_weights_get_a_note(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    prof = {"profiles": [{"gpu": "H100-PCIe", "gpus": 1, "memory_gb": 85.0, "fitted_weights_gb": [16.06, 65.53]}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    phi = write(tmp_path, "phi.json", result())
    small = write(tmp_path, "small.json", result(model_id="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"))
    assert main(["validate", phi, "--profile", str(tmp_path / "p.yaml"), "--seeds", "1"]) == 0

    def weight_notes(out: str) -> list[str]:  # the notes beside the lone runs' cold-cache one
        return [n for n in " ".join(out.split()).split("note:")[1:] if "cold prefix cache" not in n]

    assert weight_notes(capsys.readouterr().out) == []
    assert main(["validate", small, small, "--profile", str(tmp_path / "p.yaml"), "--seeds", "1"]) == 0
    (note,) = weight_notes(capsys.readouterr().out)
    assert "DeepSeek-R1-Distill-Qwen-1.5B holds 3.6 GB" in note


def test_ape_and_mape() -> None:
    recs: list[dict[str, Any]] = [{"measured": {"x": 10.0}, "predicted": {"x": 11.0}},
                                  {"measured": {"x": 10.0}, "predicted": {"x": 7.0}},
            {"measured": {"x": None}, "predicted": {"x": 7.0}}]
    assert ape(recs[0], "x") == pytest.approx(10.0) and math.isnan(ape(recs[2], "x"))
    assert mape(recs, "x") == pytest.approx(20.0)


def test_validate_shared_measurements_with_bundled_profiles(
    shared_measurements: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-sample check of the bundled profiles on the published runs: TP RTX 4090 boxes (one model, so no
    leave-one-model-out there) within 15% MAPE on throughput and median TPOT."""
    files = sorted(str(p) for p in shared_measurements.glob("*Qwen-14B*RTX-4090*"))
    data = validate_json([*files, "--client-seed", "42"], capsys)
    assert {r["gpu_count"] for r in data} == {2, 4, 8}
    assert mape(data, "request_throughput") <= 15.0
    assert mape(data, "median_tpot_ms") <= 15.0


@pytest.mark.parametrize("held_out", [2, 4, 8])
def test_derived_profile_predicts_a_held_out_tp_size(shared_measurements: Path, held_out: int) -> None:
    """Leave one RTX 4090 TP size out of the bundled profiles: the profile derived from the others
    (sim.profiles.derive_profile) predicts that size's runs better than roofline defaults do."""
    from calibrate.fitplan import resolve_points
    from calibrate.validation import validate_points
    from sim.profiles import bundled_profiles, derive_profile
    from sim.service import HardwareProfile

    others = {k: p for k, p in bundled_profiles().items() if k != ("RTX-4090", held_out)}
    derived = derive_profile("RTX-4090", held_out, others)
    assert derived is not None
    defaults = HardwareProfile(gpu="RTX-4090", gpus=held_out)  # the driver's memory figure: sim.service.profile_gpu
    files = sorted(shared_measurements.glob(f"*Qwen-14B*_{held_out}xNVIDIA-GeForce-RTX-4090*"))
    points = resolve_points(load_runs(files, client_seed=42))
    assert len(points) == 5

    def score(prof: HardwareProfile) -> tuple[float, float]:
        recs = validate_points(points, lambda run: prof, seeds=(0, 1))
        return mape(recs, "request_throughput"), mape(recs, "median_tpot_ms")

    (thr, tpot), (thr0, tpot0) = score(derived), score(defaults)
    assert thr <= 15.0 and tpot <= 30.0
    assert thr + tpot < thr0 + tpot0


def test_an_unmeasured_gpu_type_keeps_roofline_defaults_not_another_gpus_fit(shared_measurements: Path) -> None:
    """Each measured configuration replayed as if its GPU type were not (calibrate.fidelity.unmeasured, the
    README's roofline and borrowed rows): the other single GPU's fit, borrowed whole, misses median TPOT by
    more than the roofline defaults do, so the simulator does not borrow it; and the defaults miss by what
    sim.notes and sim.profiles say (median TPOT 15-53 %, throughput 6.5-56 % per configuration)."""
    from calibrate import fidelity
    from calibrate.fitplan import FitOptions, resolve_points
    from sim.profiles import bundled_profiles

    points = resolve_points(load_runs([shared_measurements], client_seed=42))
    recs = fidelity.unmeasured(points, dict(bundled_profiles()), FitOptions(seeds=(0, 1, 2, 3)))
    rows = {(r["check"], r["config"]): r for r in fidelity.summarise(recs)}
    for cfg in ("1xH100-PCIe", "1xRTX-4090"):
        assert rows[("roofline", cfg)]["median_tpot_ms"] < rows[("borrowed", cfg)]["median_tpot_ms"] - 10
    roof = [r for (kind, cfg), r in rows.items() if kind == "roofline" and cfg != "overall"]
    assert len(roof) == 6
    tpot = sorted(r["median_tpot_ms"] for r in roof)
    thr = sorted(r["request_throughput"] for r in roof)
    assert 14.5 <= tpot[0] < 15.5 and 52.5 <= tpot[-1] < 53.5
    assert 6.0 <= thr[0] < 7.0 and 55.5 <= thr[-1] < 56.5


def test_runs_with_a_client_concurrency_limit_are_replayed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `vllm bench serve --request-rate inf --max-concurrency 4`: a closed loop of 4 clients
    limited = write(tmp_path, "c4.json", result(request_rate="inf", max_concurrency=4))
    (run,) = load_runs([limited])
    assert run.max_concurrency == 4 and math.isinf(run.request_rate)
    (rec,) = validate_json([limited], capsys)
    (free,) = validate_json([write(tmp_path, "inf.json", result(request_rate="inf"))], capsys)
    p, q = rec["predicted"], free["predicted"]
    assert p["request_throughput"] is not None and q["request_throughput"] is not None
    # four at a time: less throughput than 60 at once, and no queue in front of the first token
    assert p["request_throughput"] < 0.5 * q["request_throughput"]
    assert p["median_ttft_ms"] < q["median_ttft_ms"]
    assert p["median_tpot_ms"] < q["median_tpot_ms"]  # small batches decode faster


def test_the_dataset_option_and_why_a_run_could_not_be_replayed(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # 2000-token prompts: no ShareGPT sample (its filter caps prompts at 1024), a random-dataset run
    long = result(total_input_tokens=60 * 2000, total_output_tokens=60 * 128)
    path = write(tmp_path, "long_sharegpt_.json", long)  # a name that says sharegpt, wrongly
    (rec,) = validate_json([path], capsys)
    assert rec["predicted"]["median_ttft_ms"] is None
    assert main(["validate", path, "--seeds", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 run(s) could not be replayed" in out and "long_sharegpt_.json" in out
    assert "beyond the ShareGPT filter's caps" in out and "--dataset random" in out
    (fixed,) = validate_json([path, "--dataset", "random"], capsys)
    (auto,) = validate_json([path, "--dataset", "auto"], capsys)
    assert fixed["predicted"] == auto["predicted"] and fixed["predicted"]["median_ttft_ms"] is not None
    # a 2000-token prefill takes longer than the ~200-token prompts of the same server at the same rate
    (chat,) = validate_json([write(tmp_path, "chat.json", result())], capsys)
    assert fixed["predicted"]["median_ttft_ms"] > 2 * chat["predicted"]["median_ttft_ms"]
    with pytest.raises(SystemExit):
        main(["validate", path, "--dataset", "hf"])
    assert "invalid choice: 'hf'" in capsys.readouterr().err


def test_a_model_too_large_for_the_gpu_is_named_with_its_sizes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "big.json", result(model_id="deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
                                              gpu_name="NVIDIA-GeForce-RTX-4090"))
    assert main(["validate", path, "--seeds", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 run(s) could not be replayed" in out
    assert ("big.json: DeepSeek-R1-Distill-Qwen-14B 1xRTX-4090 @4/s: 29.5 GB of weights per GPU leave no KV cache "
            "on a 25.4 GB GPU") in out
