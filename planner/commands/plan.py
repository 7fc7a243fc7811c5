"""``planner plan``: the cheapest or greenest fleet that meets every traffic class's SLOs."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from planner.commands.check import locate
from planner.commands.simulate import print_note, trace_shortfall
from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario, load_scenario
from scenarios.outputs import check_output_file, check_output_folder, write_output

EPILOG = """\
examples:
  planner plan scenarios/hybrid-chat-batch.yaml                 # cheapest fleet meeting every SLO
  planner plan scenarios/paper-14b.yaml --objective carbon --json plan.json
  planner plan scenarios/hybrid-chat-batch.yaml --objective pareto --report out/plan
  planner plan my.yaml --json - | jq .recommended.fleet         # JSON on stdout, progress on stderr

what it prints: the recommended fleet (replicas per serving configuration) and routing, its $/hour,
$ and g CO2e per million tokens, per-class SLO attainment with a confidence interval over seeds and
requests, per-pool cost/power/kWh/carbon (saying whether power was measured or modelled), the
runners-up, the cost-carbon Pareto front and one replica's capacity per configuration, and a stress
test: whether the recommended fleet still meets every SLO with every engine step --stress % (the
scenario's plan.stress_pct, 10 by default) slower than the profiles say.  If no fleet meets the SLOs:
"no fleet meets the SLOs; closest is X, missing Y by Z" and exit status 3.

the scenario's optional sections steer it (planner check validates them):
  plan:    {objective: cost|carbon|pareto, menu: [1xH100-PCIe, ...], max_replicas: {2xRTX-4090: 4},
            max_gpus: {RTX-4090: 8}, max_total_replicas: 16, max_budget_usd_per_hour: 20,
            routing: [least_outstanding, class_affinity], seeds: 3, verify_top: 6, requests: 6000,
            stress_pct: 10}
  pricing: {catalogue: alternative-2025-05 | hyperscaler-2025-05 | runpod-2026-03 | FILE.yaml,
            kind: on_demand|spot, overrides: {H100-PCIe: 1.8}, owned: {RTX-4090: {purchase_usd: 1600}}}
  power:   {model: measured|linear|full_tdp, board_w: {H100-PCIe: 700}}   # full_tdp: seed 000's Table 3
  carbon:  {grid_g_per_kwh: 242, hourly_profile: [24 factors], already_owned: [RTX-4090] | {RTX-4090: 2}}

how it works: every fleet of the menu within the caps is screened with per-configuration capacities
measured by short simulations; survivors are verified in order of the objective by full simulations
with several seeds.  Only simulation declares a fleet feasible, and only one that keeps up: its
backlog must not grow over the runs' second halves (a short run can flatter an overloaded fleet).
Runs are cached in a state file as they finish (default .fleet-planner/plan-<scenario>-<hash>.jsonl),
so an interrupted plan resumes; runs are reused only under the same scenario, GPU specs and step-time
profiles; --fresh ignores the cache.
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
    p.add_argument("--stress", type=float, metavar="PCT",
                   help="verify the recommended fleet again with every engine step PCT%% slower than the profiles "
                        "say (default: the scenario's plan.stress_pct, 10 unless set: about a calibrated profile's "
                        "held-out error; 0: skip)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner.report import plan_json, print_report, write_report
    from planner.search import plan_fleet

    if args.max_verifications < 1:
        raise FleetPlannerError(f"--max-verifications(={args.max_verifications}) must be >= 1")
    if args.stress is not None and not 0 <= args.stress <= 100:
        raise FleetPlannerError(f"--stress(={args.stress}) must be between 0 and 100 (percent)")
    refuse_empty_paths([("--json", args.json, "a file to write (or - for stdout)"),
                        ("--report", args.report, "a folder to write report.md, plan.json and the plots into"),
                        ("--state", args.state, "a state file (.jsonl) to write")])
    loaded = load_scenario(args.scenario)
    state = Path(args.state) if args.state else _default_state(Path(args.scenario))
    _check_outputs(args, state)
    _note_short_traces(loaded, args.scenario)
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

        try:
            result = plan_fleet(
                loaded, objective=args.objective, state=state, progress=tell, max_verifications=args.max_verifications,
                stress_pct=args.stress,
            )
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted; finished runs are kept in {state}: run the same command to resume[/]")
            raise
        except FleetPlannerError as exc:  # a broken profile or price list named as planner check names it
            located = locate(loaded, exc)
            if located is exc:
                raise
            raise located from None
    try:
        if args.json:
            write_output("--json", args.json, plan_json(result) + "\n")
        if args.json != "-":
            print_report(result, console)
        if args.report:
            files = write_report(result, Path(args.report))
            if args.json != "-":
                console.print(f"report: {', '.join(str(f) for f in files)}")
    except OSError as exc:
        raise FleetPlannerError(f"cannot write the plan's output: {exc}") from None
    if args.json != "-":
        console.print(f"[dim]simulation runs cached in {state} (--fresh to recompute)[/]")
    return 0 if result.recommended is not None else 3


def _note_short_traces(loaded: LoadedScenario, file: str) -> None:
    """A note where the traces hold fewer requests than a verification run asks for."""
    from planner.search import verify_requests

    settings, requested = loaded.scenario.plan, verify_requests(loaded.scenario)
    if settings.requests:
        asked = f"{file}: plan.requests, per verification run"
    elif requested == loaded.scenario.simulation.resolved_requests():
        asked = f"{file}: simulation.requests, per verification run"
    else:
        asked = "the planner's verification runs"
    if short := trace_shortfall(loaded, requested, None, asked):
        print_note(short)


def _check_outputs(args: argparse.Namespace, state: Path) -> None:
    """Refuse unwritable output paths before the search, not after it."""
    check_output_file("--state", state, what="the state file (.jsonl)", create_folder=True)
    check_output_file("--json", args.json)
    if args.report:
        check_output_folder("--report", Path(args.report))


def _default_state(scenario: Path) -> Path:
    digest = hashlib.sha256(str(scenario.resolve()).encode()).hexdigest()[:8]
    return Path(".fleet-planner") / f"plan-{scenario.stem}-{digest}.jsonl"
