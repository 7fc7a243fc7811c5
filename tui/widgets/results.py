"""Results of a simulation of the current fleet: latency per class, economics, utilisation per pool.

The class table colours each latency percentile green or red by whether the class's SLO bound on
that metric is met (the share of requests within the bound reaches the SLO percentile, as
``planner simulate`` judges it) and shows the verdict.  Below it: the fleet's cost, energy and
carbon per hour and per million tokens (:func:`planner.costing.fleet_economics`), then one row per
pool with utilisation, KV-cache use, queue, and its share of the bill.
"""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from scenarios.numbers import number
from tui.runs import SimOutcome

CLASS_COLUMNS = ("class", "done", "TTFT p50", "TTFT p90", "TPOT p90", "E2E p90", "SLO ok", "SLO")
POOL_COLUMNS = ("pool", "config", "n", "util", "KV", "queue", "$/h", "kWh/h", "gCO2e/h")


def fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return number(f"{{:,.{digits}f}}", v)
    return str(v)


def _judged(row: dict[str, Any], metric: str, value: Any) -> Text:
    share = row.get(f"slo_{metric}_share")
    text = Text(fmt(value), justify="right")
    if row.get("requests") == 0:  # no requests: nothing to judge (the simulator's share of none is 0)
        return text
    if share is not None and isinstance(share, float) and math.isfinite(share):
        text.stylize("green" if share >= row.get("slo_percentile", 90.0) / 100.0 else "bold red")
    return text


def class_rows(outcome: SimOutcome) -> list[list[Text]]:
    rows = []
    for row in outcome.classes:
        verdict = row.get("slo_pass")
        slo = Text("-") if verdict is None else Text("pass", "bold green") if verdict else Text("FAIL", "bold red")
        rows.append(
            [
                Text(str(row["class"]), "bold" if row["class"] == "ALL" else ""),
                Text(f"{row['completed']:,}", justify="right"),
                Text(fmt(row["ttft_p50_ms"]), justify="right"),
                _judged(row, "ttft", row["ttft_p90_ms"]),
                _judged(row, "tpot", row["tpot_p90_ms"]),
                _judged(row, "e2e", row["e2e_p90_ms"]),
                Text("-" if row.get("requests") == 0 else f"{row['slo_attainment'] * 100:.1f}%", justify="right"),
                slo,
            ]
        )
    return rows


def economics_line(outcome: SimOutcome) -> str:
    t = outcome.economics["total"]
    carbon = t["carbon_g_per_hour"] + t["embodied_g_per_hour"]
    per_tok = "-" if t.get("usd_per_mtok") is None else number("${:,.3f}", t["usd_per_mtok"])
    g_tok = "-" if t.get("g_per_mtok") is None else number("{:,.1f}", t["g_per_mtok"])
    return (
        f"[b]cost[/] {number('${:,.2f}', t['usd_per_hour'])}/h ({per_tok}/1M tok)  "
        f"[b]energy[/] {number('{:,.2f}', t['kwh_per_hour'])} kWh/h  "
        f"[b]carbon[/] {number('{:,.0f}', carbon)} gCO2e/h ({g_tok} g/1M tok)  "
        f"[b]throughput[/] {number('{:,.0f}', t['tokens_per_s'])} tok/s"
    )


class ResultsView(VerticalScroll):
    """Tables of the latest simulation (empty until one has run)."""

    outcome: SimOutcome | None = None

    def compose(self) -> ComposeResult:
        yield Static("No simulation yet: press [b]s[/] to simulate the current fleet.", id="sim-title")
        table: DataTable[Any] = DataTable(id="class-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*CLASS_COLUMNS)
        yield table
        yield Static("", id="economics")
        pools: DataTable[Any] = DataTable(id="pool-table", cursor_type="row", zebra_stripes=True)
        pools.add_columns(*POOL_COLUMNS)
        yield pools

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            table.display = False

    def show(self, outcome: SimOutcome) -> None:
        self.outcome = outcome
        for table in self.query(DataTable):
            table.display = True
        self.query_one("#sim-title", Static).update(
            f"[b]{outcome.scenario}[/]: fleet {outcome.fleet} · {outcome.requests:,} requests, seed {outcome.seed}, "
            f"{number('{:,.0f}', outcome.makespan_s)} s simulated · latencies in ms"
        )
        table = self.query_one("#class-table", DataTable)
        table.clear()
        for row in class_rows(outcome):
            table.add_row(*row)
        notes = "".join(f"\n[yellow]note: {escape(n)}[/]" for n in outcome.notes)
        self.query_one("#economics", Static).update(economics_line(outcome) + notes)
        pools = self.query_one("#pool-table", DataTable)
        pools.clear()
        for p in outcome.pools:
            pools.add_row(
                p["pool"],
                p["config"],
                str(p["replicas"]),
                Text(f"{p['utilisation'] * 100:.0f}%", justify="right"),
                Text(f"{p['mean_kv_frac'] * 100:.0f}%", justify="right"),
                Text(fmt(p["mean_queue"]), justify="right"),
                Text(fmt(p["usd_per_hour"], 2), justify="right"),
                Text(fmt(p["kwh_per_hour"], 2), justify="right"),
                Text(fmt(p["g_per_hour"], 0), justify="right"),
            )

    def cell(self, cls: str, column: str) -> str:
        """Text of one cell of the class table (for tests and the comparison)."""
        table = self.query_one("#class-table", DataTable)
        col = CLASS_COLUMNS.index(column)
        for r in range(table.row_count):
            row = table.get_row_at(r)
            if str(row[0]) == cls:
                return str(row[col])
        raise KeyError(cls)
