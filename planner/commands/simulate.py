"""``planner simulate``: run one scenario's fleet through the simulator and summarise it."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from planner.commands.check import locate
from planner.variants import total_rate
from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError, ScenarioError
from scenarios.loader import LoadedScenario, load_scenario, parse_fleet_spec
from scenarios.outputs import check_output_file, write_output
from scenarios.traffic import MAX_REQUESTS, TraceArrival
from sim.notes import extrapolation_notes

EPILOG = """\
examples:
  planner simulate scenarios/paper-14b.yaml
  planner simulate scenarios/hybrid-chat-batch.yaml --requests 20000 --seed 7
  planner simulate scenarios/paper-14b.yaml --fleet 1xH100-PCIe:2,2xRTX-4090:3 --json out.json
  planner simulate scenarios/bench-1m.yaml --csv requests.csv

--fleet replaces the scenario's fleet: a comma-separated list of GPUSxGPU:REPLICAS or CONFIG:REPLICAS,
CONFIG the name of one of the scenario's configurations (e.g. a region's, r-se:2); configurations of
the scenario's menu keep their engine settings and their pool's grid intensity, and a class-affinity
map follows the pools it still names (a note says what changed).
Latencies are in milliseconds; percentiles as vLLM's benchmark client reports them.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a scenario's fleet and print latency, throughput and SLO attainment",
        description="Simulate a scenario's fleet (vLLM-like replicas behind its routing policy).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", metavar="FILE", help="scenario YAML file")
    p.add_argument("--requests", type=int, metavar="N", help="number of requests (overrides the scenario)")
    p.add_argument("--duration", type=float, metavar="S", help="simulate arrivals over S seconds instead")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default: the scenario's)")
    p.add_argument("--fleet", metavar="SPEC", help="override the fleet, e.g. 1xH100-PCIe:2,2xRTX-4090:3 or CONFIG:2 "
                   "(a configuration of the scenario by name)")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON ('-' for stdout)")
    p.add_argument("--csv", metavar="PATH", help="write one row per request as CSV ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="print no table")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace, notes: list[str]) -> tuple[LoadedScenario, int]:
    """The scenario (with ``--fleet``'s pools) and how many of its configurations its file names."""
    loaded = load_scenario(args.scenario)
    own = len(loaded.scenario.configs)
    if args.fleet is not None:
        scenario = parse_fleet_spec(args.fleet, loaded.scenario, notes)
        loaded = LoadedScenario(scenario, loaded.model, loaded.path)
    return loaded, own


def print_note(text: str) -> None:
    """A note about the inputs, on stderr whatever goes to stdout (and with ``--quiet``)."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[yellow]note: {escape(text)}[/]")


def trace_shortfall(loaded: LoadedScenario, requested: int, got: int | None, asked: str,
                    window: float | None = None) -> str | None:
    """Why a run holds ``got`` requests, not the ``requested`` (``asked`` says who asked): every class replays
    a trace (which is not looped) and the traces, all ending within the ``window`` (seconds, if any), hold
    fewer.  ``got=None``: whether a run would.  None where that is not so."""
    from sim.arrivals import build_arrivals

    classes = loaded.scenario.traffic.classes
    if not all(isinstance(c.arrival, TraceArrival) for c in classes):
        return None  # a class that is no trace supplies requests without end
    processes = build_arrivals(loaded)
    rows = [p.trace.times.size if p.trace is not None else 0 for p in processes]
    if sum(rows) >= requested or (got is not None and got >= requested):
        return None
    if window is not None and window < max(p.end_s for p in processes):
        return None  # the window ends before the traces do: it, not they, cut the run short
    files = "; ".join(f"traffic.classes[{i}] ({c.name}) replays {c.arrival.path}, which has only {n:,}"
                      for i, (c, n) in enumerate(zip(classes, rows, strict=True))
                      if isinstance(c.arrival, TraceArrival))
    have = f"the run has {got:,}" if got is not None else f"each run has at most {sum(rows):,}"
    return f"{have} requests, not the {requested:,} asked for ({asked}): a trace is not looped; {files}"


def _check_count(loaded: LoadedScenario, args: argparse.Namespace, got: int) -> None:
    """A run of no requests is an error (a window too short); one short of the count asked for because the
    traces ran out gets a note.  ``simulate()`` takes the scenario's limits where neither option is given."""
    flags = args.requests is not None or args.duration is not None
    requested = args.requests if flags else loaded.scenario.simulation.resolved_requests()
    window = args.duration if flags else loaded.scenario.simulation.duration_s
    if got == 0 and window is not None:
        where = "--duration" if args.duration is not None else f"{args.scenario}: simulation.duration_s"
        rate = total_rate(loaded.scenario)
        hint = f", e.g. --duration {100 / rate:.3g} for about 100 requests at {rate:.3g} req/s" if rate > 0 else ""
        alternative = ", or --requests N" if args.requests is None else ""
        raise FleetPlannerError(f"{where}(={window:g}): no request arrives within {window:g} s, so there is nothing "
                                f"to simulate; give a longer --duration{hint}{alternative}")
    if got == 0:
        raise FleetPlannerError("the simulation has no requests")
    if requested is not None:
        asked = "--requests" if args.requests is not None else f"{args.scenario}: simulation.requests"
        if short := trace_shortfall(loaded, requested, got, asked, window):
            print_note(short)


def _blame_fleet(exc: ScenarioError, loaded: LoadedScenario, own: int) -> ScenarioError:
    """Problems of configurations ``--fleet`` added (beyond the file's ``own``) named as ``--fleet``'s."""
    def rewrite(problem: str) -> str:
        m = re.match(r"^.*?: configs\[(\d+)\](?:\.\w+)?: ", problem)
        if m is None or int(m.group(1)) < own:
            return problem
        return f"--fleet {loaded.scenario.configs[int(m.group(1))].key}: {problem[m.end():]}"
    return ScenarioError([rewrite(p) for p in exc.problems])


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from planner.costing import priced_pools
    from sim.results import class_summary, summary_dict
    from sim.simulation import simulate
    from sim.stability import scenario_growth

    if args.requests is not None and not 1 <= args.requests <= MAX_REQUESTS:
        raise FleetPlannerError(f"--requests(={args.requests}) must be in 1..{MAX_REQUESTS:,}")
    if args.duration is not None and not args.duration > 0:
        raise FleetPlannerError(f"--duration(={args.duration}) must be > 0")
    if args.seed is not None and args.seed < 0:
        raise FleetPlannerError(f"--seed(={args.seed}) must be >= 0")
    refuse_empty_paths([("--json", args.json, "a file to write (or - for stdout)"),
                        ("--csv", args.csv, "a file to write (or - for stdout)")])
    check_output_file("--json", args.json)
    check_output_file("--csv", args.csv)
    if args.json == "-" and args.csv == "-":
        raise FleetPlannerError("--json - and --csv -: only one of them can go to stdout")
    to_stdout = "-" in (args.json, args.csv)
    fleet_notes: list[str] = []
    loaded, own = _load(args, fleet_notes)
    for text in fleet_notes:
        print_note(text)
    console = Console(stderr=to_stdout)
    with console.status("simulating ...", spinner="dots"):
        try:
            result = simulate(loaded, seed=args.seed, requests=args.requests, duration_s=args.duration)
        except FleetPlannerError as exc:  # a broken profile or price list named as planner check names it
            located = locate(loaded, exc)
            if not isinstance(located, ScenarioError):
                raise
            raise _blame_fleet(located, loaded, own) from None
    _check_count(loaded, args, len(result.requests))
    growth = scenario_growth(result.requests, loaded.scenario)
    if growth is not None and not growth.keeps_up:
        print_note(growth.describe())
    pools = priced_pools(result, loaded)  # the scenario's prices, power model and PUE, as plan's
    if args.csv:
        write_output("--csv", args.csv, lambda stream: result.requests.to_csv(stream, index=False))
    if args.json:
        summary = {**summary_dict(result, pools), "backlog_growth": None if growth is None else growth.share}
        write_output("--json", args.json, json.dumps(summary, indent=2) + "\n")
    if not args.quiet and not to_stdout:
        _print(console, result, class_summary(result), pools)
        replicas = (p.replica for p in result.pools)
        notes = (extrapolation_notes(r.profile, r.model, r.config.tp_size) for r in replicas)
        for note in dict.fromkeys(n for pool_notes in notes for n in pool_notes):
            console.print(f"[yellow]note: {note}[/]")
    return 0


def _print(console: Console, result: Any, classes: Any, pools: Any) -> None:
    console.print(
        f"[bold]{escape(result.scenario)}[/]: {len(result.requests):,} requests, seed {result.seed}, "
        f"{result.makespan:,.1f} s simulated in {result.wall_s:.2f} s"
    )
    t = Table(title="per traffic class (ms)", show_lines=False)
    for col in (
        "class",
        "done",
        "rej",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "TPOT p99",
        "ITL p99",
        "E2E p99",
        "req/s",
        "goodput",
        "SLO",
    ):
        t.add_column(col, justify="right" if col != "class" else "left")
    for row in classes.to_dict("records"):
        verdict = row.get("slo_pass")
        slo = "-" if verdict is None else ("[green]pass[/]" if verdict else "[red]FAIL[/]")
        t.add_row(
            str(row["class"]),
            f"{row['completed']:,}",
            str(row["rejected"]),
            _fmt(row["ttft_p50_ms"]),
            _fmt(row["ttft_p99_ms"]),
            _fmt(row["tpot_p50_ms"]),
            _fmt(row["tpot_p99_ms"]),
            _fmt(row["itl_p99_ms"]),
            _fmt(row["e2e_p99_ms"]),
            _fmt(row["request_throughput"], 2),
            _fmt(row["goodput"], 2),
            f"{slo} {row['slo_attainment'] * 100:.1f}%",
        )
    console.print(t)
    p = Table(title="per pool")
    for col in (
        "pool",
        "replicas",
        "requests",
        "util",
        "KV",
        "queue",
        "preempt",
        "GPU-h",
        "USD",
        "kWh",
        "profile",
    ):
        p.add_column(col, justify="left" if col in ("pool", "profile") else "right")
    for row in pools.to_dict("records"):
        p.add_row(
            row["pool"],
            str(row["replicas"]),
            f"{row['requests']:,}",
            f"{row['utilisation'] * 100:.0f}%",
            f"{row['mean_kv_frac'] * 100:.0f}%",
            _fmt(row["mean_queue"]),
            str(row["preemptions"]),
            _fmt(row["gpu_hours"], 2),
            _fmt(row["cost_usd"], 2),
            _fmt(row["energy_kwh"], 2),
            row["profile"],
        )
    console.print(p)
