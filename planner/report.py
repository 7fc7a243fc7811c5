"""Presenting a plan: terminal report (rich), Markdown with PNG plots (:mod:`planner.plots`), and JSON.

Both the terminal and the Markdown report are built from the same tables: the recommended fleet and
its runners-up, per-class SLO attainment (with its confidence interval), per-pool and fleet cost,
energy and carbon (with the basis of each: price source, measured or modelled power, grid and
embodied carbon), the cost-carbon Pareto front, the closest fleet when none is feasible, and the
screening capacities of one replica of each configuration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from planner import plots
from planner.outcome import PlanResult, to_dict
from planner.verify import Verdict, pooled_classes
from scenarios.numbers import number
from sim.results import jsonable

#: runners-up listed in the terminal and Markdown reports (all of them are in the JSON)
RUNNERS_UP_SHOWN = 5
FLEET_COLUMNS = ["fleet", "routing", "$/h", "$/1M tok", "gCO2e/1M tok", "lowest SLO attainment (CI)"]

Rows = tuple[str, list[str], list[list[str]]]
"""(title, column names, rows) of one report table."""


def _money(v: float | None, digits: int = 3) -> str:
    return "-" if v is None or not math.isfinite(v) else number(f"${{:,.{digits}f}}", v)


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else number(f"{{:,.{digits}f}}", v)


def verdict_row(v: Verdict) -> list[str]:
    """One fleet as a table row (:data:`FLEET_COLUMNS`)."""
    t = v.economics["total"]
    name, a = min(v.attainment.items(), key=lambda kv: kv[1][0]) if v.attainment else ("-", (0.0, 0.0, 0.0))
    return [
        v.candidate.fleet.replace(",", " "),
        v.candidate.routing,
        _money(t["usd_per_hour"], 2),
        _money(t.get("usd_per_mtok")),
        _num(t.get("g_per_mtok")),
        f"{name} {a[0] * 100:.1f}% [{a[1] * 100:.1f}, {a[2] * 100:.1f}]",
    ]


def fleets_table(title: str, verdicts: list[Verdict]) -> Rows:
    """Fleets as rows; a routing column only when they differ in routing (else it goes in the title)."""
    routings = {v.candidate.routing for v in verdicts}
    rows = [verdict_row(v) for v in verdicts]
    if len(routings) != 1:
        return title, FLEET_COLUMNS, rows
    return f"{title}; routing {routings.pop()}", FLEET_COLUMNS[:1] + FLEET_COLUMNS[2:], [r[:1] + r[2:] for r in rows]


def classes_table(v: Verdict, confidence: float) -> Rows:
    """Per class and SLO bound: the achieved percentile, share within, and the class's attainment CI."""
    level = f"{confidence * 100:g}% CI"
    rows = []
    for name, cls in pooled_classes(v.runs).items():
        a = v.attainment.get(name, (math.nan, math.nan, math.nan))
        first = True
        for metric, m in cls["metrics"].items():
            share, value = m["share"], m["value_ms"]
            pct = f"p{cls['target'] * 100:g}"
            rows.append([
                name if first else "",
                f"{pct} {metric.upper()}",
                _num(value, 0),
                _num(m["bound_ms"], 0),
                f"{share * 100:.1f}% / {cls['target'] * 100:g}%",
                "yes" if share >= cls["target"] else "NO",
                f"{a[0] * 100:.1f}% [{a[1] * 100:.1f}, {a[2] * 100:.1f}]" if first else "",
            ])
            first = False
    cols = ["class", "SLO", "achieved ms", "bound ms", "within / target", "met", f"all met ({level})"]
    return f"per class: {v.candidate.fleet} ({len(v.runs)} seeds)", cols, rows


def pools_table(v: Verdict) -> Rows:
    """Per pool and for the fleet: $/h, throughput, power, kWh, $ and g CO2e per million tokens, busy share."""
    util = {p: sum(r.get("utilisation", {}).get(p, 0.0) for r in v.runs) / len(v.runs)
            for p in v.runs[0].get("utilisation", {})}
    rows = []
    econ = v.economics
    for p in [*econ["pools"], econ["total"]]:
        total = p is econ["total"]
        rows.append([
            "fleet" if total else p["name"],
            f"{p['replicas']} ({p['gpus']})",
            _money(p["usd_per_hour"], 2),
            _num(p["tokens_per_s"], 0),
            _num(p["power_w"], 0),
            _num(p.get("kwh_per_mtok"), 3),
            _money(p.get("usd_per_mtok")),
            _num(p.get("g_per_mtok")),
            "" if total else f"{util.get(p['name'], 0.0) * 100:.0f}%",
        ])
    cols = ["pool", "n (GPUs)", "$/h", "tok/s", "W", "kWh/Mtok", "$/Mtok", "g/Mtok", "busy"]
    return "per pool and fleet (Mtok: million prompt + output tokens; g: g CO2e)", cols, rows


def bases(v: Verdict) -> list[str]:
    """Where each pool's figures come from: price source, measured or modelled power, carbon, step-time profile."""
    out = []
    for p in v.economics["pools"]:
        line = f"{p['name']}: cost {p['cost_basis']}; power {p['power_basis']}; carbon {p['carbon_basis']}"
        if p.get("service_basis"):
            line += f"; step times {p['service_basis']}"
        out.append(line)
    return out


def stress_line(result: PlanResult) -> str | None:
    """The stress test of the recommended fleet in words (None if it was not run)."""
    v, best = result.stress, result.recommended
    if v is None or best is None:
        return None
    what = (f"stress test: with every engine step {result.stress_pct:g}% slower than the profiles say, "
            f"{best.candidate.fleet}")
    if v.feasible:
        return f"{what} still meets every SLO (tightest: {v.worst})"
    return f"{what} would miss {v.worst}: a runner-up leaves more room"


def screening_table(result: PlanResult) -> Rows:
    rows = [[name, _num(c.capacity_rps, 2), _num(c.slo_rps, 2)] for name, c in result.curves.items()]
    cols = ["configuration", "saturation req/s", "SLO-compliant req/s"]
    return "screening: one replica of each configuration under the scenario's mix", cols, rows


def _summary(result: PlanResult) -> str:
    text = (
        f"objective {result.objective}; offered load {result.offered_rps:.2f} req/s; candidates: "
        f"{result.enumerated:,} enumerated, {result.screened:,} passed screening, {len(result.verified)} simulated "
        f"({result.elapsed_s:.1f} s)"
    )
    for note in result.peaks:
        text += f"; {note}"
    if result.truncated:
        text += (
            "; the search stopped at --max-verifications before a feasible fleet in objective order, so "
            "untried fleets may meet the SLOs (or cost less)"
        )
    return text


def _sections(result: PlanResult) -> list[Rows | str]:
    out: list[Rows | str] = []
    best = result.recommended
    if best is not None:
        shown = result.runners_up[:RUNNERS_UP_SHOWN]
        more = len(result.runners_up) - len(shown)
        title = "recommended (first row) and runners-up" + (f" (+{more} more in --json)" if more > 0 else "")
        out.append(fleets_table(title, [best, *shown]))
        out.append(classes_table(best, result.confidence))
        out.append(pools_table(best))
        out += bases(best)
        out += result.fleet_notes(best)
        if line := stress_line(result):
            out.append(line)
    if len(result.pareto) > 1 or (result.pareto and result.objective == "pareto"):
        out.append(fleets_table("cost-carbon Pareto front (fleets that meet every SLO)", result.pareto))
    if result.closest is not None:
        out.append(f"closest fleet: {result.closest.candidate.fleet} ({result.closest.candidate.routing})")
        out.append(classes_table(result.closest, result.confidence))
        out.append(pools_table(result.closest))
        out += result.fleet_notes(result.closest)
    out.append(screening_table(result))
    return out


def print_report(result: PlanResult, console: Console) -> None:
    """The readable terminal report."""
    style = "bold green" if result.recommended else "bold red"
    console.print(f"[{style}]{escape(result.message())}[/]")
    console.print(_summary(result))
    for item in _sections(result):
        if isinstance(item, str):
            console.print(f"[dim]{escape(item)}[/]")
            continue
        title, cols, rows = item
        table = Table(title=title, title_justify="left")
        for c in cols:
            table.add_column(c, overflow="fold")  # narrow terminals: fold, never hide digits behind an ellipsis
        highlight = title.startswith("recommended")
        for i, row in enumerate(rows):
            table.add_row(*(escape(c) for c in row), style="green" if i == 0 and highlight else None)
        console.print(table)


def _md_table(item: Rows) -> list[str]:
    title, cols, rows = item
    lines = [f"\n### {title}\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def write_report(result: PlanResult, out: Path) -> list[Path]:
    """Markdown report plus PNG plots in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(plan_json(result) + "\n")
    files = [out / "plan.json", plots.latency_vs_load(result, out / "latency_vs_load.png"),
             plots.cost_carbon(result, out / "cost_carbon.png")]
    best = result.recommended or result.closest
    if best is not None:
        files.append(plots.utilisation(best, out / "utilisation.png"))
    md = [f"# Fleet plan\n\n**{result.message()}**\n", _summary(result) + ".\n"]
    for item in _sections(result):
        md += [f"\n- {item}"] if isinstance(item, str) else _md_table(item)
    md += ["\n## Plots\n", "![latency vs load per configuration](latency_vs_load.png)\n",
           "![cost vs carbon of the simulated fleets](cost_carbon.png)\n"]
    if best is not None:
        md.append("![utilisation per pool](utilisation.png)\n")
    (out / "report.md").write_text("\n".join(md) + "\n")
    files.append(out / "report.md")
    return files


def plan_json(result: PlanResult) -> str:
    """The result as JSON; a figure that is not finite (an unbounded margin, an infinite intensity) is null,
    as JSON has no Infinity or NaN."""
    return json.dumps(jsonable(to_dict(result)), indent=2, default=str)


def summary_for(result: PlanResult) -> dict[str, Any]:
    return to_dict(result)
