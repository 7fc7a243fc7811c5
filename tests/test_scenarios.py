"""Scenario loading: good files load; every kind of bad input gives one ``file: path: message`` line."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from scenarios.catalog import GPUS, MODELS, find_model
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import load_scenario, parse_fleet_spec, scenario_from_dict
from scenarios.models import KV_CACHE_DTYPES, ONLINE_QUANTIZATION
from scenarios.schema import ServingConfig

BASE: dict[str, Any] = {
    "name": "unit",
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    "configs": [{"gpu": "H100-PCIe", "gpus": 1, "max_num_seqs": 64}, {"gpu": "RTX-4090", "gpus": 2}],
    "traffic": {"classes": [{"name": "chat", "rate": 5.0}, {"name": "batch", "rate": 1.0}]},
    "fleet": {"pools": [{"config": "1xH100-PCIe", "count": 2}, {"config": "2xRTX-4090", "count": 3}]},
}


def scenario(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value.problems


# ------------------------------------------------------------------------------------------- good
def test_good_file_loads_with_defaults_and_resolves_relative_paths(tmp_path: Path) -> None:
    path = write(tmp_path, scenario())
    loaded = load_scenario(path)
    s = loaded.scenario
    assert s.name == "unit"
    assert [c.key for c in s.configs] == ["1xH100-PCIe", "2xRTX-4090"]
    assert [p.count for p in s.fleet.pools] == [2, 3]
    assert s.routing.type == "least_outstanding"
    assert s.traffic.rate_of(s.traffic.classes[0]) == 5.0
    assert loaded.model is MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"]
    assert loaded.path == path
    assert loaded.resolve("trace.csv") == tmp_path / "trace.csv"


def test_shares_of_total_rate(tmp_path: Path) -> None:
    data = scenario(
        traffic={"total_rate": 12, "classes": [{"name": "a", "share": 1}, {"name": "b", "share": 3}]}
    )
    t = load_scenario(write(tmp_path, data)).scenario.traffic
    assert [t.rate_of(c) for c in t.classes] == [3.0, 9.0]


# -------------------------------------------------------------------------------------------- bad
def test_unknown_key_is_reported_with_its_path(tmp_path: Path) -> None:
    data = scenario()
    data["fleet"]["pools"][1]["cont"] = 4
    path = write(tmp_path, data)
    assert problems_of(path) == [
        f"{path}: fleet.pools[1].cont: unknown key (not part of the schema; check the spelling)"
    ]


def test_nan_and_infinite_numbers_are_refused_with_their_path(tmp_path: Path) -> None:
    data = scenario()
    data["traffic"]["classes"][0]["rate"] = float("inf")
    data["configs"][0]["gpu_memory_utilization"] = float("nan")
    assert problems_of(write(tmp_path, data)) == [
        f"{tmp_path / 's.yaml'}: configs[0].gpu_memory_utilization: Input should be a finite number (got nan)",
        f"{tmp_path / 's.yaml'}: traffic.classes[0].rate: Input should be a finite number (got inf)",
    ]


def test_a_step_time_scale_below_one_is_refused_with_its_path(tmp_path: Path) -> None:
    data = scenario()
    data["configs"][0]["step_time_scale"] = 0.8
    (problem,) = problems_of(write(tmp_path, data))
    assert "configs[0].step_time_scale" in problem and "greater than or equal to 1" in problem, problem


def test_bad_routing_tag_names_the_known_policies(tmp_path: Path) -> None:
    path = write(tmp_path, scenario(routing={"type": "least_outstandng"}))
    assert problems_of(path) == [
        f"{path}: routing.type: unknown routing policy 'least_outstandng'; known: round_robin, "
        "least_outstanding, least_kv_load, class_affinity, cost_aware, carbon_aware"
    ]


def test_bad_arrival_and_length_tags(tmp_path: Path) -> None:
    data = scenario()
    data["traffic"]["classes"][0]["arrival"] = {"type": "poison"}
    data["traffic"]["classes"][1]["output_tokens"] = {"type": "normal", "mean": 3}
    path = write(tmp_path, data)
    assert problems_of(path) == [
        f"{path}: traffic.classes[0].arrival.type: unknown arrival process 'poison'; "
        "known: poisson, gamma, diurnal, piecewise, trace",
        f"{path}: traffic.classes[1].output_tokens.type: unknown length distribution 'normal'; "
        "known: fixed, lognormal, empirical, trace",
    ]


def test_missing_tag_lists_the_choices(tmp_path: Path) -> None:
    data = scenario()
    data["traffic"]["classes"][0]["prompt_tokens"] = {"mean": 300}
    path = write(tmp_path, data)
    assert problems_of(path) == [
        f"{path}: traffic.classes[0].prompt_tokens.type: required field is missing; "
        "one of: fixed, lognormal, empirical, trace"
    ]


def test_tag_written_as_plain_string_suggests_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, scenario(routing="round_robin"))
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: routing: expected a mapping with a type: key")
    assert "routing: {type: round_robin}" in line


def test_error_inside_a_tagged_member_skips_the_tag(tmp_path: Path) -> None:
    data = scenario()
    data["traffic"]["classes"][0]["arrival"] = {"type": "gamma", "burstiness": -1}
    path = write(tmp_path, data)
    assert problems_of(path) == [
        f"{path}: traffic.classes[0].arrival.burstiness: Input should be greater than 0 (got -1)"
    ]


def test_unknown_gpu_lists_known_ones(tmp_path: Path) -> None:
    data = scenario()
    data["configs"][1]["gpu"] = "A6000"
    data["fleet"]["pools"][1]["config"] = "2xA6000"
    path = write(tmp_path, data)
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: configs[1].gpu: unknown GPU 'A6000'; known: ")
    assert all(name in line for name in GPUS)


def test_unknown_pool_configuration_lists_known_ones(tmp_path: Path) -> None:
    data = scenario()
    data["fleet"]["pools"][0]["config"] = "1xH100"
    path = write(tmp_path, data)
    assert problems_of(path) == [
        f"{path}: fleet.pools[0].config: unknown configuration '1xH100'; known: 1xH100-PCIe, 2xRTX-4090"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = scenario(simulation={"requests": 0}, colour="red")
    data["configs"][0]["gpus"] = "two"
    path = write(tmp_path, data)
    lines = problems_of(path)
    assert len(lines) == 3
    assert {line.split(": ")[1] for line in lines} == {"configs[0].gpus", "simulation.requests", "colour"}


def test_piecewise_steps_must_fit_in_the_period(tmp_path: Path) -> None:
    data = scenario()
    data["traffic"]["classes"][0]["arrival"] = {
        "type": "piecewise",
        "period_s": 60,
        "steps": [{"start_s": 0, "factor": 1}, {"start_s": 90, "factor": 2}],
    }
    (line,) = problems_of(write(tmp_path, data))
    assert "traffic.classes[0].arrival: " in line
    assert "start_s must be < period_s(=60.0)" in line


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nmodel: phi-4\nconfigs: [ {gpu: H100-PCIe}\nfleet: {}\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: line 4, column ")
    assert "invalid YAML" in line


def test_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_directory_binary_and_non_mapping_files(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path)
    assert line.startswith(f"{tmp_path}: is a directory")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    (line,) = problems_of(binary)
    assert line.startswith(f"{binary}: cannot read: not UTF-8")
    for text in ("", "- a\n- b\n", "just a string\n"):
        path = write(tmp_path, text, "x.yaml")
        assert problems_of(path) == [f"{path}: (top level): expected a mapping of scenario fields"]


# ------------------------------------------------------------------------------------------ model
def test_model_by_short_name_case_insensitive(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, scenario(model="phi-4")))
    assert loaded.model is MODELS["microsoft/phi-4"]
    loaded = load_scenario(write(tmp_path, scenario(model="deepseek-r1-distill-qwen-1.5b")))
    assert loaded.model is MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]


#: parameter counts the models' own safetensors metadata states (Hugging Face model pages)
PUBLISHED_PARAMS = {
    "meta-llama/Meta-Llama-3-8B-Instruct": 8_030_261_248,
    "meta-llama/Meta-Llama-3-70B-Instruct": 70_553_706_496,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": 1_777_088_000,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": 7_615_616_512,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": 14_770_033_664,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": 32_763_876_352,
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": 8_030_261_248,
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": 70_553_706_496,
    "microsoft/phi-4": 14_659_507_200,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_catalogue_parameter_counts_match_the_published_ones(name: str) -> None:
    # the weight bytes behind every step time come from this count (architecture fields -> parameters)
    assert MODELS[name].params == PUBLISHED_PARAMS[name]


def test_seed_paper_suite_is_in_the_catalogue() -> None:
    # the paper benchmarked Qwen-1.5B/7B/14B and Llama-8B distills besides Llama-3-8B: runs of any of
    # them validate by model id alone
    for short in ("DeepSeek-R1-Distill-Qwen-7B", "deepseek-r1-distill-llama-8b", "DeepSeek-R1-Distill-Qwen-1.5B"):
        assert find_model(short) is not None, short


CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}


def test_model_from_config_json_relative_to_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text(json.dumps(CONFIG))
    monkeypatch.chdir("/")  # relative to the scenario file, not to the working directory
    for ref in ("models/tiny/config.json", "models/tiny"):
        loaded = load_scenario(write(tmp_path, scenario(model=ref)))
        assert loaded.model.hidden_size == 2048
        assert loaded.model.num_kv_heads == 8
        assert loaded.model.kv_bytes_per_token == 2 * 16 * 8 * 64 * 2


def test_unknown_model_lists_the_catalogue(tmp_path: Path) -> None:
    path = write(tmp_path, scenario(model="llama-9000"))
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: model: unknown model 'llama-9000': not in the catalogue (")
    assert "phi-4" in line


def test_broken_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    (line,) = problems_of(write(tmp_path, scenario(model="config.json")))
    assert line.startswith(f"{tmp_path / 's.yaml'}: model: ")
    assert "missing field(s) intermediate_size, num_hidden_layers" in line


# ------------------------------------------------------------------------------------ fleet specs
def test_parse_fleet_spec_keeps_known_configs_and_adds_new_ones() -> None:
    base = scenario_from_dict(scenario()).scenario
    s = parse_fleet_spec("1xH100-PCIe:4, 2xRTX-4090 , 1xL40S:2", base)
    assert [(p.config, p.count) for p in s.fleet.pools] == [
        ("1xH100-PCIe", 4),
        ("2xRTX-4090", 1),
        ("1xL40S", 2),
    ]
    configs = s.config_by_key()
    assert configs["1xH100-PCIe"].max_num_seqs == 64  # engine settings of the menu entry kept
    assert configs["1xL40S"].max_num_seqs == 256
    assert base.fleet.pools[0].count == 2  # the original is untouched


def test_parse_fleet_spec_with_a_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    loaded = load_scenario(write(tmp_path, scenario(model="config.json")))
    monkeypatch.chdir("/")
    s = parse_fleet_spec("1xH100-PCIe:1", loaded.scenario)
    assert s.model == "config.json"


def test_parse_fleet_spec_drops_class_affinity_routing() -> None:
    routing = {"type": "class_affinity", "affinity": {"chat": ["1xH100-PCIe"]}}
    base = scenario_from_dict(scenario(routing=routing)).scenario
    assert parse_fleet_spec("1xRTX-4090:2", base).routing.type == "least_outstanding"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("garbage", "--fleet: cannot read 'garbage'; expected GPUSxGPU:COUNT"),
        ("1xH100-PCIe:two", "--fleet: cannot read '1xH100-PCIe:two'"),
        (" , ", "--fleet: empty spec"),
        ("0xH100-PCIe:1", "GPUs per replica(=0) must be >= 1"),
        ("1xH100-PCIe:100001", "--fleet: '1xH100-PCIe:100001': count: Input should be less than or equal to 100000"),
    ],
)
def test_parse_fleet_spec_bad(spec: str, message: str) -> None:
    base = scenario_from_dict(scenario()).scenario
    with pytest.raises(FleetPlannerError, match=r"^.*$") as info:
        parse_fleet_spec(spec, base)
    assert message in str(info.value)


def test_parse_fleet_spec_unknown_gpu_is_a_scenario_error() -> None:
    base = scenario_from_dict(scenario()).scenario
    with pytest.raises(ScenarioError) as info:
        parse_fleet_spec("1xA6000:2", base)
    (line,) = info.value.problems
    assert line.startswith("--fleet: configs[2].gpu: unknown GPU 'A6000'; known: H100-PCIe")


def _literal_choices(annotation: Any) -> set[object]:
    """The values a (possibly optional) ``Literal`` annotation admits, ``None`` left out."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return set(args)
    return set().union(*(_literal_choices(a) for a in args if a is not type(None)))


def test_serving_config_choices_match_what_the_model_layer_knows() -> None:
    # the scenario schema spells its Literal choices out (mypy cannot build a Literal from a tuple);
    # scenarios.models serves them: the two lists must not drift apart
    fields = ServingConfig.model_fields
    assert _literal_choices(fields["quantization"].annotation) == set(ONLINE_QUANTIZATION)
    assert _literal_choices(fields["kv_cache_dtype"].annotation) == set(KV_CACHE_DTYPES)


@pytest.mark.parametrize(
    ("edit", "where", "needle"),
    [
        (lambda d: d.setdefault("simulation", {}).update(seed=-1), "simulation.seed", "greater than or equal to 0"),
        (lambda d: d.setdefault("simulation", {}).update(requests=10**12), "simulation.requests", "less than or equal"),
        (lambda d: d["fleet"]["pools"][0].update(count=10**6), "fleet.pools[0].count", "less than or equal to 100000"),
        (lambda d: d["traffic"]["classes"][0].update(prompt_tokens={"type": "fixed", "value": 10**30}),
         "traffic.classes[0].prompt_tokens.value", "less than or equal to 10000000"),
        (lambda d: d["traffic"]["classes"][0].update(rate=1e300), "traffic.classes[0].rate", "less than or equal"),
        (lambda d: d.update(plan={"max_total_replicas": 10**30}), "plan.max_total_replicas", "less than or equal"),
        (lambda d: d.update(power={"board_w": {"H100-PCIe": -700}}), "power.board_w.H100-PCIe",
         "greater than or equal to 0"),
        (lambda d: d.update(carbon={"hourly_profile": [-1.0] * 24}), "carbon.hourly_profile[0]",
         "greater than or equal to 0"),
        (lambda d: d.update(plan={"menu": []}), "plan.menu", "at least 1 item"),
        (lambda d: d.update(hardware=[{"name": "X1", "memory_gb": 24, "mem_bw_gbps": 100, "fp16_tflops": 10,
                                       "tdp_w": 100}] * 2), "hardware[1].name", "hardware name 'X1' is used twice"),
        # found by fuzzing: each had passed `planner check` and crashed `planner simulate` (NaN KV capacity;
        # a diurnal period whose horizon overflowed)
        (lambda d: d.update(hardware=[{"name": "X1", "memory_gb": 1e308, "mem_bw_gbps": 100, "fp16_tflops": 10,
                                       "tdp_w": 100}]), "hardware[0].memory_gb", "less than or equal to 100000"),
        (lambda d: d["configs"][0].update(activation_reserve_gb=1e308), "configs[0].activation_reserve_gb",
         "less than or equal to 100000"),
        (lambda d: d["traffic"]["classes"][0].update(arrival={"type": "diurnal", "period_s": 1e308}),
         "traffic.classes[0].arrival.period_s", "less than or equal to 1000000000"),
        (lambda d: d["traffic"].update(total_rate=5, classes=[{"name": "a", "share": 1e-300},
                                                              {"name": "b", "share": 1e300}]),
         "traffic", "its share(=1e-300) of total_rate is 0 requests/s"),
    ],
)
def test_values_no_fleet_could_hold_are_refused_with_their_path(
        tmp_path: Path, edit: Any, where: str, needle: str) -> None:
    data = scenario()
    edit(data)
    path = write(tmp_path, data)
    problems = problems_of(path)
    assert any(p.startswith(f"{path}: {where}") and needle in p for p in problems), problems
