"""Presenting a plan: terminal report (rich), Markdown with PNG plots, and the JSON form.

The plots are the ones people would rather look at than read: latency versus load for each
serving configuration (from screening), the cost-carbon plane of every verified fleet with the
Pareto front, and the utilisation of each pool of the recommended fleet.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from planner.search import PlanResult, to_dict
from planner.verify import Verdict

HEADER = "| fleet | routing | $/h | $/1M tok | gCO2e/1M tok | lowest SLO attainment (CI) |"


def _money(v: float | None, digits: int = 3) -> str:
    return "-" if v is None or not math.isfinite(v) else f"${v:,.{digits}f}"


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:,.{digits}f}"


def verdict_row(v: Verdict) -> list[str]:
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


def print_report(result: PlanResult, console: Console) -> None:
    """The readable terminal report."""
    style = "bold green" if result.recommended else "bold red"
    console.print(f"[{style}]{result.message()}[/]")
    console.print(
        f"objective {result.objective}; offered load {result.offered_rps:.2f} req/s; candidates: "
        f"{result.enumerated:,} enumerated, {result.screened:,} passed screening, {len(result.verified)} simulated "
        f"({result.elapsed_s:.1f} s)"
    )
    cols = ["fleet", "routing", "$/h", "$/1M tok", "gCO2e/1M tok", "lowest SLO attainment (CI)"]
    if result.recommended:
        table = Table(title="recommended and runners-up")
        for c in cols:
            table.add_column(c)
        table.add_row(*verdict_row(result.recommended), style="green")
        for v in result.runners_up:
            table.add_row(*verdict_row(v))
        console.print(table)
        _print_classes(result.recommended, console)
        _print_pools(result.recommended, console)
    if len(result.pareto) > 1:
        front = Table(title="cost-carbon Pareto front (feasible fleets)")
        for c in cols:
            front.add_column(c)
        for v in result.pareto:
            front.add_row(*verdict_row(v))
        console.print(front)
    if result.closest is not None:
        console.print(f"closest fleet: {result.closest.candidate.fleet} ({result.closest.candidate.routing})")
        _print_classes(result.closest, console)
    curves = Table(title="screening: one replica of each configuration")
    for col in ("configuration", "saturation req/s", "SLO-compliant req/s"):
        curves.add_column(col)
    for name, curve in result.curves.items():
        curves.add_row(name, _num(curve.capacity_rps, 2), _num(curve.slo_rps, 2))
    console.print(curves)


def _print_classes(v: Verdict, console: Console) -> None:
    t = Table(title=f"per class: {v.candidate.fleet} ({len(v.runs)} seeds)")
    for c in ("class", "bound", "p-value (ms)", "bound (ms)", "within", "target", "ok"):
        t.add_column(c)
    for name, cls in v.runs[0]["classes"].items():
        for metric, m in cls["metrics"].items():
            share = sum(r["classes"][name]["metrics"][metric]["share"] for r in v.runs) / len(v.runs)
            value = sum(r["classes"][name]["metrics"][metric]["value_ms"] for r in v.runs) / len(v.runs)
            ok = share >= cls["target"]
            t.add_row(
                name,
                metric.upper(),
                _num(value, 0),
                _num(m["bound_ms"], 0),
                f"{share * 100:.1f}%",
                f"{cls['target'] * 100:g}%",
                "[green]yes[/]" if ok else "[red]no[/]",
            )
    console.print(t)


def _print_pools(v: Verdict, console: Console) -> None:
    t = Table(title="per pool")
    for c in (
        "pool",
        "replicas",
        "GPUs",
        "$/h",
        "power W",
        "tok/s",
        "$/1M tok",
        "gCO2e/1M tok",
        "utilisation",
    ):
        t.add_column(c)
    util = v.runs[0].get("utilisation", {})
    for p in v.economics["pools"]:
        t.add_row(
            p["name"],
            str(p["replicas"]),
            str(p["gpus"]),
            _money(p["usd_per_hour"], 2),
            _num(p["power_w"], 0),
            _num(p["tokens_per_s"], 0),
            _money(p.get("usd_per_mtok")),
            _num(p.get("g_per_mtok")),
            f"{util.get(p['name'], 0.0) * 100:.0f}%",
        )
    console.print(t)
    console.print(
        f"[dim]cost: {v.economics['pools'][0]['cost_basis']}; power: {v.economics['pools'][0]['power_basis']}[/]"
    )


def write_report(result: PlanResult, out: Path) -> list[Path]:
    """Markdown report plus PNG plots in ``out``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = []
    data = to_dict(result)
    (out / "plan.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    files.append(out / "plan.json")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in result.curves.items():
        xs = [p["rate"] for p in curve.points]
        ys = [p["classes"]["ALL"]["ttft_p90_ms"] for p in curve.points]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("offered load per replica (req/s)")
    ax.set_ylabel("p90 TTFT (ms)")
    ax.set_yscale("log")
    ax.set_title("latency vs load, one replica per configuration")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency_vs_load.png", dpi=110)
    plt.close(fig)
    files.append(out / "latency_vs_load.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v in result.verified:
        t = v.economics["total"]
        ax.scatter(
            t["usd_per_hour"],
            (t["carbon_g_per_hour"] + t["embodied_g_per_hour"]) / 1000,
            c="tab:green" if v.feasible else "tab:gray",
            s=30,
            alpha=0.8,
        )
    if result.pareto:
        pts = sorted(
            (
                v.economics["total"]["usd_per_hour"],
                (v.economics["total"]["carbon_g_per_hour"] + v.economics["total"]["embodied_g_per_hour"]) / 1000,
            )
            for v in result.pareto
        )
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "g-", label="Pareto front")
        ax.legend()
    ax.set_xlabel("cost ($/hour)")
    ax.set_ylabel("carbon (kg CO2e/hour)")
    ax.set_title("verified fleets (green: meet all SLOs)")
    fig.tight_layout()
    fig.savefig(out / "cost_carbon.png", dpi=110)
    plt.close(fig)
    files.append(out / "cost_carbon.png")

    best = result.recommended or result.closest
    if best is not None:
        util = best.runs[0].get("utilisation", {})
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(list(util), [u * 100 for u in util.values()], color="tab:blue")
        ax.set_ylabel("utilisation (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"utilisation per pool: {best.candidate.fleet}")
        fig.tight_layout()
        fig.savefig(out / "utilisation.png", dpi=110)
        plt.close(fig)
        files.append(out / "utilisation.png")

    md = [
        f"# Fleet plan\n\n**{result.message()}**\n",
        f"Objective: {result.objective}. Offered load: {result.offered_rps:.2f} req/s. "
        f"Candidates: {result.enumerated:,} enumerated, {result.screened:,} screened, "
        f"{len(result.verified)} simulated.\n",
        HEADER,
        "|---|---|---|---|---|---|",
    ]
    rows = ([result.recommended] if result.recommended else []) + result.runners_up
    md += ["| " + " | ".join(verdict_row(v)) + " |" for v in rows]
    if result.closest is not None:
        md.append(f"\nClosest fleet: {result.closest.candidate.fleet}; missing {result.closest.worst}.\n")
    md += [
        "\n## Pareto front\n",
        HEADER,
        "|---|---|---|---|---|---|",
    ]
    md += ["| " + " | ".join(verdict_row(v)) + " |" for v in result.pareto]
    md += [
        "\n## Plots\n",
        "![latency vs load](latency_vs_load.png)\n",
        "![cost vs carbon](cost_carbon.png)\n",
    ]
    if best is not None:
        md.append("![utilisation](utilisation.png)\n")
    (out / "report.md").write_text("\n".join(md) + "\n")
    files.append(out / "report.md")
    return files


def plan_json(result: PlanResult) -> str:
    return json.dumps(to_dict(result), indent=2, default=str)


def summary_for(result: PlanResult) -> dict[str, Any]:
    return to_dict(result)
