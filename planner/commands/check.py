"""``planner check``: validate scenario files and print every problem, one ``file: path: message`` a line.

A file is first loaded (:func:`scenarios.loader.load_scenario`: YAML syntax, schema, cross-references,
the served model).  A file that loads is then put through every function in :data:`CHECKS`, in
order; each takes the :class:`~scenarios.loader.LoadedScenario` and returns its problems as
``dotted.path: message`` strings (this command puts the file name in front).  A check may also
raise :class:`~scenarios.errors.ScenarioError` (its lines are printed as they are) or any other
:class:`~scenarios.errors.FleetPlannerError` (printed after the file name).  Further checks — say,
whether the model fits on each configuration's GPUs — are added with :func:`add_check`.  :func:`locate`
names a profile or price-list problem that ``simulate`` or ``plan`` ran into the way this command does.

Exit status: 0 when every file is fine, 2 when any has a problem.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.variants import total_rate
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import LoadedScenario, load_scenario
from scenarios.traffic import TraceArrival
from sim.arrivals import build_arrivals

#: a check: loaded scenario -> problems as "dotted.path: message" strings
Check = Callable[[LoadedScenario], Iterable[str]]

#: checks run, in order, on every file that loads
CHECKS: list[Check] = []


def add_check(check: Check) -> Check:
    """Append a check to :data:`CHECKS` (usable as a decorator); refuses one already there."""
    if check in CHECKS:
        raise ValueError(f"check(={getattr(check, '__name__', check)!r}) is already registered")
    CHECKS.append(check)
    return check


@add_check
def traces_readable(loaded: LoadedScenario) -> list[str]:
    """Every trace file a class replays exists and has the columns it needs."""
    if any(isinstance(c.arrival, TraceArrival) for c in loaded.scenario.traffic.classes):
        build_arrivals(loaded)  # raises ScenarioError with file-prefixed lines
    return []


@add_check
def window_holds_requests(loaded: LoadedScenario) -> list[str]:
    """A ``simulation.duration_s`` in which not even one request is expected to arrive (rates times the window,
    plus trace rows before its end) leaves nothing to simulate."""
    scenario = loaded.scenario
    window = scenario.simulation.duration_s
    if window is None:
        return []
    rate = total_rate(scenario)
    traced = sum(int((p.trace.times < window).sum()) for p in build_arrivals(loaded) if p.trace is not None)
    if rate * window + traced >= 1:
        return []
    hint = f"; e.g. duration_s: {100 / rate:.3g} holds about 100 at {rate:.3g} req/s" if rate > 0 else ""
    return [f"simulation.duration_s: {window:g} s holds {rate * window + traced:.2g} requests on average; expected a "
            f"window in which requests arrive{hint}"]


@dataclass
class FileReport:
    """Outcome of checking one file."""

    file: str
    problems: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "problems": self.problems}


def summarise(loaded: LoadedScenario) -> str:
    """``2 classes, 3 pools, 7 replicas``."""
    s = loaded.scenario
    classes, pools = len(s.traffic.classes), len(s.fleet.pools)
    replicas = sum(p.count for p in s.fleet.pools)

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('s') else 's'}"

    return f"{n(classes, 'class')}, {n(pools, 'pool')}, {n(replicas, 'replica')}"


def check_file(path: str | Path, checks: Iterable[Check] | None = None) -> FileReport:
    """Load one scenario file and run the checks on it; never raises for bad input."""
    name = str(Path(path))
    try:
        loaded = load_scenario(path)
    except ScenarioError as exc:
        return FileReport(name, exc.problems)
    except FleetPlannerError as exc:
        return FileReport(name, [f"{name}: {exc}"])
    problems: list[str] = []
    for check in CHECKS if checks is None else checks:
        try:
            problems.extend(f"{name}: {p}" for p in check(loaded))
        except ScenarioError as exc:
            problems.extend(exc.problems)
        except FleetPlannerError as exc:
            problems.append(f"{name}: {exc}")
    return FileReport(name, problems, summarise(loaded))


def locate(loaded: LoadedScenario, exc: FleetPlannerError) -> FleetPlannerError:
    """``exc``, raised while another command built ``loaded``'s replicas, as this command names it: a broken
    profile file or price list says only what is wrong in that file, so its lines from
    :func:`sim.fleet.check_fits` (``file.yaml: configs[1].profile: ...``, ``file.yaml: pricing...``) that end
    in the same message are returned as a :class:`ScenarioError`; ``exc`` itself where none does."""
    from sim.fleet import check_fits

    if isinstance(exc, ScenarioError):
        return exc
    lines = [line for line in check_fits(loaded) if line.endswith(f": {exc}")]
    return ScenarioError(lines) if lines else exc


EPILOG = """\
examples:
  planner check scenarios/hybrid-chat-batch.yaml
  planner check scenarios/*.yaml --json

Each problem is printed as `file.yaml: dotted.path: message`, e.g.
  my.yaml: fleet.pools[1].config: unknown configuration '2x4090'; known: 1xH100-PCIe, 2xRTX-4090
  my.yaml: routing.type: unknown routing policy 'least_outstandng'; known: round_robin, ...
and a good file as `file.yaml: ok (2 classes, 2 pools, 5 replicas)`.
Exit status: 0 when all files are fine, 2 when any has a problem.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="validate scenario files and list every problem",
        description="Validate scenario files: YAML syntax, schema, cross-references, model, trace files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML file(s)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {file, ok, problems} instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reports = [check_file(f) for f in args.files]
    if args.json:
        print(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        for r in reports:
            if r.ok:
                print(f"{r.file}: ok ({r.summary})")
            for line in r.problems:
                print(line)
    return 0 if all(r.ok for r in reports) else 2


@add_check
def weights_fit(loaded: LoadedScenario) -> list[str]:
    """Every serving configuration holds the model's weights and leaves room for KV cache (as vLLM checks)."""
    from sim.fleet import check_fits

    problems = check_fits(loaded)
    if problems:
        raise ScenarioError(problems)
    return []
