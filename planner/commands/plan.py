"""``planner plan``: the cheapest or greenest fleet that meets every traffic class's SLOs."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from scenarios.errors import FleetPlannerError
from scenarios.loader import load_scenario

EPILOG = """\
examples:
  planner plan scenarios/hybrid-chat-batch.yaml
  planner plan scenarios/paper-14b.yaml --objective carbon --json plan.json
  planner plan scenarios/hybrid-chat-batch.yaml --objective pareto --report out/plan

How it works: every fleet in the scenario's menu (plan.menu, default all configs) within its caps
(plan.max_replicas, plan.max_gpus, plan.max_total_replicas, plan.max_budget_usd_per_hour) is
screened with per-configuration capacities measured by short simulations; survivors are verified
in order of the objective by full simulations with several seeds (plan.seeds).  Only simulation
declares a fleet feasible.  Runs are cached in a state file as they finish (default
.fleet-planner/plan-<scenario>.jsonl), so an interrupted plan resumes; --fresh ignores the cache.
Prices come from the scenario's pricing section (default: seed-paper prices where quoted).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="find the cheapest (or greenest) fleet meeting the SLOs, with runners-up and the Pareto front",
        description="Plan a fleet: GPU mix, counts and routing that meet every class's SLOs at least cost/carbon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", metavar="FILE", help="scenario YAML file")
    p.add_argument("--objective", choices=("cost", "carbon", "pareto"), help="default: the scenario's plan.objective")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON ('-' for stdout)")
    p.add_argument("--report", metavar="DIR", help="write report.md, plan.json and PNG plots into DIR")
    p.add_argument("--state", metavar="PATH", help="state file for resuming (default under .fleet-planner/)")
    p.add_argument("--fresh", action="store_true", help="ignore (and overwrite) cached runs")
    p.add_argument("--max-verifications", type=int, default=60, metavar="N", help="simulate at most N candidates")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner.report import plan_json, print_report, write_report
    from planner.search import plan_fleet

    if args.max_verifications < 1:
        raise FleetPlannerError(f"--max-verifications(={args.max_verifications}) must be >= 1")
    loaded = load_scenario(args.scenario)
    state = Path(args.state) if args.state else _default_state(Path(args.scenario))
    if args.fresh and state.exists():
        state.unlink()
    console = Console(stderr=args.json == "-")
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("screening", total=None)

        def tell(msg: str, done: int, total: int) -> None:
            progress.update(task, description=msg, completed=done, total=total or None)

        result = plan_fleet(
            loaded, objective=args.objective, state=state, progress=tell, max_verifications=args.max_verifications
        )
    if args.json == "-":
        print(plan_json(result))
    else:
        if args.json:
            Path(args.json).write_text(plan_json(result) + "\n")
        print_report(result, console)
    if args.report:
        files = write_report(result, Path(args.report))
        if args.json != "-":
            console.print(f"report: {', '.join(str(f) for f in files)}")
    return 0 if result.recommended is not None else 3


def _default_state(scenario: Path) -> Path:
    digest = hashlib.sha256(str(scenario.resolve()).encode()).hexdigest()[:8]
    return Path(".fleet-planner") / f"plan-{scenario.stem}-{digest}.jsonl"
