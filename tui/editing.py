"""The scenario being edited: plain data, the form's fields, validation as ``planner check`` does it.

A session keeps the scenario as the plain dict read from YAML.  The form edits single values of it
by path (``("traffic", "classes", 0, "rate")``); after every edit the dict is validated exactly as
``planner check`` validates a file — :func:`scenarios.loader.scenario_from_dict`, then every check
in :data:`planner.commands.check.CHECKS` — and each problem line ``file: dotted.path: message`` is
mapped back to the field whose dotted path matches (or the nearest one), so the error shows next
to the input that caused it.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scenarios.economics import DEFAULT_GRID_G_PER_KWH
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import LoadedScenario, scenario_from_dict
from scenarios.numbers import number
from scenarios.yamlfile import safe_load, unshared
from tui.paths import os_reason

Key = str | int
PathT = tuple[Key, ...]


def dotted(path: PathT) -> str:
    """``("fleet", "pools", 1, "count")`` -> ``fleet.pools[1].count`` (the loader's notation)."""
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else item)
    return out


def get_value(data: Any, path: PathT) -> Any:
    node = data
    for item in path:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and -len(node) <= item < len(node) else None
        else:
            node = node.get(item) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def set_value(data: dict[str, Any], path: PathT, value: Any) -> None:
    """Set (or, with ``None``, remove) one value, creating the mappings on the way."""
    node: Any = data
    for item, nxt in itertools.pairwise(path):
        child = node[item] if isinstance(item, int) else node.get(item)
        if not isinstance(child, (dict, list)):
            child = [] if isinstance(nxt, int) else {}
            node[item] = child
        node = child
    last = path[-1]
    if value is None:
        if isinstance(node, dict):
            node.pop(last, None)
    else:
        node[last] = value


_INT = re.compile(r"^[+-]?\d+$")


def parse_text(text: str, numeric: bool) -> Any:
    """What the user typed as a YAML scalar: empty -> unset, numbers as numbers, else the text."""
    text = text.strip()
    if not text:
        return None
    if not numeric:
        return text
    if _INT.match(text):
        try:
            return int(text)
        except ValueError:  # beyond Python's 4300-digit limit: as text, which validation names
            return text
    try:
        return float(text)
    except ValueError:
        return text  # pydantic will say "Input should be a valid number"


def show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return f"{value:.1f}"
    return str(value)  # a huge float as Python writes it (1e+308), which reads back as the same number


@dataclass(frozen=True)
class FieldSpec:
    """One input of the form."""

    path: PathT
    label: str
    section: str
    numeric: bool = True
    placeholder: str = ""

    @property
    def dotted(self) -> str:
        return dotted(self.path)

    @property
    def widget_id(self) -> str:
        return "field-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.dotted).strip("-")


@dataclass(frozen=True)
class Problem:
    where: str
    """Dotted path in the scenario (``(top level)`` when none)."""
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Validation:
    loaded: LoadedScenario | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.loaded is not None and not self.problems


def _problem(line: str, source: str) -> Problem:
    for prefix in (f"{source}: ", "None: "):
        if line.startswith(prefix):
            line = line[len(prefix) :]
            break
    where, sep, message = line.partition(": ")
    return Problem(where, message) if sep and " " not in where.strip() else Problem("(top level)", line)


def validate(data: Any, path: Path | None) -> Validation:
    """Validate like ``planner check``: schema, cross-checks, model, then every registered check."""
    from planner.commands.check import CHECKS

    source = str(path) if path else "<scenario>"
    try:
        loaded = scenario_from_dict(copy.deepcopy(data), source, path)
    except ScenarioError as exc:
        return Validation(None, [_problem(p, source) for p in exc.problems])
    except FleetPlannerError as exc:
        return Validation(None, [Problem("(top level)", str(exc))])
    problems: list[Problem] = []
    for check in CHECKS:
        try:
            problems.extend(_problem(p, source) for p in check(loaded))
        except ScenarioError as exc:
            problems.extend(_problem(p, source) for p in exc.problems)
        except Exception as exc:  # a check that breaks on odd input is a problem, not a crash
            problems.append(Problem("(top level)", str(exc) or type(exc).__name__))
    return Validation(loaded, problems)


def place(problems: list[Problem], fields: list[FieldSpec]) -> tuple[dict[str, list[str]], list[Problem]]:
    """Map each problem to a field: the same path, else the deepest field above it, else the first below it."""
    known = [f.dotted for f in fields]
    placed: dict[str, list[str]] = {}
    loose: list[Problem] = []
    for p in problems:
        target = p.where if p.where in known else None
        if target is None:
            above = [k for k in known if p.where.startswith(k + ".") or p.where.startswith(k + "[")]
            below = [k for k in known if k.startswith(p.where + ".") or k.startswith(p.where + "[")]
            target = max(above, key=len) if above else (below[0] if below else None)
        if target is None:
            loose.append(p)
        else:
            prefix = "" if target == p.where else f"{p.where}: "
            placed.setdefault(target, []).append(prefix + p.message)
    return placed, loose


def build_fields(data: Any, loaded: LoadedScenario | None) -> list[FieldSpec]:
    """The form's inputs for a scenario document (tolerant of documents that do not validate)."""
    d = data if isinstance(data, dict) else {}
    out = [
        FieldSpec(("name",), "name", "Scenario", numeric=False),
        FieldSpec(("simulation", "requests"), "requests", "Scenario", placeholder="10000"),
        FieldSpec(("simulation", "seed"), "seed", "Scenario", placeholder="0"),
    ]
    classes = get_value(d, ("traffic", "classes"))
    shares = any(isinstance(c, dict) and "share" in c for c in (classes if isinstance(classes, list) else []))
    if shares or get_value(d, ("traffic", "total_rate")) is not None:
        out.append(FieldSpec(("traffic", "total_rate"), "total rate (req/s)", "Scenario"))
    for i, cls in enumerate(classes if isinstance(classes, list) else []):
        c = cls if isinstance(cls, dict) else {}
        sec = f"Traffic class {c.get('name', i)}"
        base: PathT = ("traffic", "classes", i)
        rate = "share" if "share" in c else "rate"
        out.append(FieldSpec((*base, rate), "share" if rate == "share" else "rate (req/s)", sec))
        for which in ("prompt_tokens", "output_tokens"):
            if get_value(c, (which, "type")) in ("lognormal", None) and get_value(c, (which, "mean")) is not None:
                out.append(FieldSpec((*base, which, "mean"), f"{which.split('_')[0]} mean", sec))
        for key, label in (("ttft_ms", "SLO TTFT ms"), ("tpot_ms", "SLO TPOT ms"), ("e2e_ms", "SLO E2E ms")):
            out.append(FieldSpec((*base, "slo", key), label, sec, placeholder="(none)"))
        out.append(FieldSpec((*base, "slo", "percentile"), "SLO percentile", sec, placeholder="90"))
    configs = d.get("configs")
    gpus: list[str] = []
    for i, cfg in enumerate(configs if isinstance(configs, list) else []):
        c = cfg if isinstance(cfg, dict) else {}
        key = c.get("name") or f"{c.get('gpus', 1)}x{c.get('gpu', '?')}"
        if isinstance(c.get("gpu"), str) and c["gpu"] not in gpus:
            gpus.append(c["gpu"])
        out.append(FieldSpec(("configs", i, "gpu"), f"{key} gpu", "Hardware menu", numeric=False))
        out.append(FieldSpec(("configs", i, "gpus"), f"{key} gpus", "Hardware menu", placeholder="1"))
        out.append(FieldSpec(("configs", i, "max_model_len"), f"{key} max len", "Hardware menu", placeholder="model"))
    for gpu in gpus:
        out.append(
            FieldSpec(("pricing", "overrides", gpu), f"{gpu} $/GPU-h", "Prices", placeholder=_price(loaded, gpu))
        )
    out.append(FieldSpec(("pricing", "catalogue"), "catalogue", "Prices", numeric=False, placeholder="default"))
    out.append(FieldSpec(("pricing", "kind"), "kind", "Prices", numeric=False, placeholder="on_demand"))
    pools = get_value(d, ("fleet", "pools"))
    scenario_grid = get_value(d, ("carbon", "grid_g_per_kwh"))
    grid = f"{scenario_grid:g}" if isinstance(scenario_grid, int | float) else f"{DEFAULT_GRID_G_PER_KWH:g}"
    for i, pool in enumerate(pools if isinstance(pools, list) else []):
        p = pool if isinstance(pool, dict) else {}
        key = p.get("name") or p.get("config") or str(i)
        out.append(FieldSpec(("fleet", "pools", i, "config"), f"{key} config", "Fleet", numeric=False))
        out.append(FieldSpec(("fleet", "pools", i, "count"), f"{key} replicas", "Fleet", placeholder="1"))
        out.append(FieldSpec(("fleet", "pools", i, "grid_g_per_kwh"), f"{key} grid g/kWh", "Fleet", placeholder=grid))
    out += [
        FieldSpec(("plan", "objective"), "objective", "Plan", numeric=False, placeholder="cost"),
        FieldSpec(("plan", "max_total_replicas"), "max replicas", "Plan", placeholder="16"),
        FieldSpec(("plan", "seeds"), "seeds", "Plan", placeholder="3"),
        FieldSpec(("plan", "requests"), "requests/run", "Plan", placeholder="auto"),
        FieldSpec(("plan", "stress_pct"), "stress test %", "Plan", placeholder="10"),
    ]
    return out


def _price(loaded: LoadedScenario | None, gpu: str) -> str:
    if loaded is None:
        return "catalogue"
    from scenarios.prices import gpu_cost

    try:
        return f"{number('{:.2f}', gpu_cost(loaded.scenario, gpu, loaded.base_dir).usd_per_hour)} (catalogue)"
    except (FleetPlannerError, OSError):
        return "catalogue"


def flatten(data: Any, prefix: PathT = ()) -> dict[str, Any]:
    """Leaf values of a document by dotted path."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, (*prefix, str(k))))
        return out
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(flatten(v, (*prefix, i)))
        return out
    return {dotted(prefix) if prefix else "(top level)": data}


def diff(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """Settings that differ between two documents: (dotted path, old value, new value)."""
    a, b = flatten(old), flatten(new)
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def scenario_yaml(data: dict[str, Any]) -> str:
    """The edited document as YAML, in its own key order: settings left out stay defaults.

    (Comments of the original file are lost; the session validates the document with
    :func:`validate` for the target path before writing it.)
    """
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)


def read_document(path: Path) -> Any:
    """Parse a scenario file for editing; raise :class:`ScenarioError` if it is not readable YAML."""
    try:
        text = path.read_text()
    except OSError as exc:  # which path is at fault and why ("Not a directory" alone does not say)
        raise ScenarioError([f"{path}: cannot read: {os_reason(path, exc, writing=False)}"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = unshared(safe_load(text))  # an alias edited in one place must not change the other
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{path}: invalid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    except RecursionError:
        raise ScenarioError([f"{path}: invalid YAML: an alias that contains itself"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{path}: (top level): expected a mapping of scenario fields"])
    return data
