"""Bad, odd and edge-case config.json values of the models ``calibrate fit`` and ``planner validate`` replay: a
quantization's group size and bitsandbytes flags, and a dense model too deep for any GPU.  Each is one error
naming the file and key (or, for a size within the limits, the run it cannot serve), never a value silently
taken for another, a hang or a number with no meaning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import vllm_result as result
from test_calibrate_fit_inputs import LLAMA, within

from calibrate.cli import main as calibrate
from planner.cli import main as planner
from scenarios.errors import FleetPlannerError
from scenarios.models import model_from_config


def quantized(**q: Any) -> dict[str, Any]:
    return {**LLAMA, "quantization_config": q}


# ------------------------------------------------------------------------------------------ quantization
@pytest.mark.parametrize(
    ("q", "where", "given"),
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 64.5}, "quantization_config.group_size", "64.5"),
        ({"quant_method": "awq", "bits": 4, "group_size": "64"}, "quantization_config.group_size", "'64'"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128.0}, "quantization_config.group_size", "128.0"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 0}, "quantization_config.group_size", "0"),
        ({"quant_method": "gptq", "bits": 4, "group_size": -2}, "quantization_config.group_size", "-2"),
        ({"quant_method": "compressed-tensors",
          "config_groups": {"g": {"weights": {"num_bits": 4, "group_size": 64.5}, "targets": ["Linear"]}}},
         "quantization_config.config_groups.*.weights.group_size", "64.5"),
    ],
)
def test_a_group_size_that_is_no_whole_number_is_refused(q: dict[str, Any], where: str, given: str) -> None:
    with pytest.raises(FleetPlannerError) as err:
        model_from_config(quantized(**q), source="m/config.json")
    message = str(err.value)
    assert message.startswith(f"m/config.json: {where}: expected the weights that share one 16-bit scale, a whole "
                              "number") and "(-1: one scale per channel)" in message
    assert message.endswith(f"got {given}") and "\n" not in message


@pytest.mark.parametrize(("group", "bits"), [(128, 4.125), (32, 4.5), (-1, 4.0), (None, 4.0)])
def test_group_sizes_checkpoints_use_are_read(group: int | None, bits: float) -> None:
    q = {"quant_method": "gptq", "bits": 4, **({} if group is None else {"group_size": group})}
    assert model_from_config(quantized(**q)).weight_bits == bits


@pytest.mark.parametrize(
    ("flags", "key", "given"),
    [
        ({"load_in_4bit": "false", "load_in_8bit": True}, "load_in_4bit", "'false'"),
        ({"load_in_8bit": "true"}, "load_in_8bit", "'true'"),
        ({"load_in_4bit": 1}, "load_in_4bit", "1"),
    ],
)
def test_bitsandbytes_flags_must_be_true_or_false(flags: dict[str, Any], key: str, given: str) -> None:
    with pytest.raises(FleetPlannerError) as err:
        model_from_config(quantized(quant_method="bitsandbytes", **flags), source="m/config.json")
    assert str(err.value) == f"m/config.json: quantization_config.{key}: expected true or false, got {given}"
    plain = quantized(quant_method="bitsandbytes", load_in_4bit=False, load_in_8bit=True)
    assert model_from_config(plain).weight_bits == 8


# ------------------------------------------------------------------------------------------ sizes
def test_a_dense_model_of_a_billion_layers_is_refused_for_its_weights(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # within the size limit (2**31 - 1) every field is, so no field is refused: its weights are counted exactly
    # (436 million GB) and no run can be replayed on any GPU, at once and without a NaN
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "config.json").write_text(json.dumps({**LLAMA, "num_hidden_layers": 10**9}))
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result()))
    with within(60):
        assert planner(["validate", str(path), "--seeds", "1", "--model-config", str(tmp_path / "deep")]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "436224002.1 GB of weights per GPU leave no KV cache on a 85.0 GB GPU" in text
        assert "nan" not in text.lower()
        out = tmp_path / "p.yaml"
        assert calibrate(["fit", "--seeds", "1", "--max-evals", "1", str(path), "-o", str(out),
                          "--model-config", str(tmp_path / "deep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: 1xH100-PCIe: no run could be replayed under any profile the fit tried")
    assert "436224002.1 GB of weights per GPU leave no KV cache" in err and not out.exists()
