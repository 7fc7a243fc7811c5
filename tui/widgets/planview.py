"""The planner's answer: the recommended fleet, runners-up, the Pareto front, or the closest miss.

Rows carry what ``planner plan`` prints (:func:`planner.report.verdict_row`): fleet, $/h,
$/1M tokens, gCO2e/1M tokens and the lowest class's SLO attainment (its confidence interval is
left out to fit 80 columns); the routing policy gets a column only when the plan tried several.
The recommended row is green; Pareto-optimal fleets are marked with ★.  Notes below say where the
answer is less sure: a routing map that changes nothing on the fleet, requests the fleet rejects,
classes the runs could not judge, step times extrapolated beyond a profile's fitted models or taken
from uncalibrated roofline defaults, and whether the recommended fleet survives the stress test
(every engine step ``plan.stress_pct`` % slower).
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from tui.runs import PlanOutcome

PLAN_COLUMNS = ("", "fleet", "routing", "$/h", "$/1M tok", "g/1M tok", "min SLO")


class PlanView(VerticalScroll):
    """Tables of the latest plan (empty until one has finished)."""

    outcome: PlanOutcome | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            "No plan yet: press [b]p[/] to search for the best fleet (plan.* settings in the form).",
            id="plan-title",
        )
        table: DataTable[Any] = DataTable(id="plan-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*PLAN_COLUMNS)
        yield table
        yield Static("", id="plan-notes")

    def on_mount(self) -> None:
        self.query_one("#plan-table", DataTable).display = False

    def show(self, outcome: PlanOutcome) -> None:
        from planner.costing import service_note
        from planner.report import stress_line, verdict_row

        self.outcome = outcome
        r = outcome.result
        colour = "green" if r.recommended else "red"
        pareto = {v.candidate.key for v in r.pareto}
        rows = ([r.recommended] if r.recommended else []) + list(r.runners_up)
        rows += [v for v in r.pareto if v not in rows]
        if r.closest is not None and not rows:
            rows = [r.closest]
        routings = {v.candidate.routing for v in rows}
        self.query_one("#plan-title", Static).update(
            f"[b {colour}]{escape(r.message())}[/]\n"
            f"objective {r.objective} · offered {r.offered_rps:.2f} req/s · {r.enumerated:,} fleets enumerated, "
            f"{r.screened:,} screened, {len(r.verified)} simulated"
            + (f" · routing {next(iter(routings))}" if len(routings) == 1 else "")
        )
        table = self.query_one("#plan-table", DataTable)
        table.display = bool(rows)
        table.clear(columns=True)
        table.add_columns(*(c for c in PLAN_COLUMNS if c != "routing" or len(routings) > 1))
        for i, v in enumerate(rows):
            mark = "★" if v.candidate.key in pareto else ""
            style = "bold green" if i == 0 and r.recommended else ""
            cells = verdict_row(v)
            cells[-1] = cells[-1].split(" [")[0]  # "chat 99.1%" without the interval
            if len(routings) <= 1:
                del cells[1]
            table.add_row(mark, *(Text(c, style) for c in cells))
        notes = []
        if r.closest is not None:
            notes.append(f"closest fleet {r.closest.candidate.fleet}: missing {r.closest.worst}")
        best = r.recommended or r.closest
        if best is not None:
            # how sure the answer is: routing that changes nothing, step times extrapolated or uncalibrated
            notes += r.fleet_notes(best)  # routing that changes nothing, rejected requests, unverified classes
            for pool in best.economics["pools"]:
                if note := service_note(str(pool.get("service_basis") or "")):
                    notes.append(f"{pool['name']}: {note}")
        if line := stress_line(r):
            notes.append(line)
        if r.pareto:
            notes.append("★ = on the cost–carbon Pareto front (see Plots)")
        self.query_one("#plan-notes", Static).update(escape("\n".join(notes)))
