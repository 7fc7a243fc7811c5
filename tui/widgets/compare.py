"""Side-by-side comparison: a pinned result against the latest one, differences highlighted.

Pin a result (``b``), change a knob in the form — a class's rate, a GPU's price override, a pool's
grid intensity, an SLO bound — and run again.  The table lists every figure of both (the
simulation's per-class latencies and SLO verdicts, cost, energy, carbon, utilisation; the plan's
recommended fleet and its cost), with the change: better in green, worse in red, a changed text in
yellow; the figures that changed come first, the unchanged ones are dimmed.  Above it, the scenario
settings that differ between the two runs (as they were when each run started).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from scenarios.numbers import number
from tui.editing import diff
from tui.runs import Metric

COMPARE_COLUMNS = ("metric", "pinned", "current", "change")


@dataclass
class Snapshot:
    """A result to compare: its metrics and the scenario document it came from."""

    label: str
    metrics: dict[str, Metric]
    data: Any
    kind: str = ""
    """``simulate`` or ``plan``: only results of the same kind are compared."""


def change(old: Metric | None, new: Metric | None) -> Text:
    """The change column: absolute and relative difference, coloured by direction."""
    if old is None or new is None:
        return Text("new" if old is None else "gone", "yellow")
    a, b = old.value, new.value
    if new.text() == old.text():  # equal as shown: no change worth a colour
        return Text("=", "dim")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        delta = float(b) - float(a)
        rel = f" ({number('{:+.0f}', delta / abs(float(a)) * 100)}%)" if a else ""
        good = (delta < 0) == (new.better == "low")
        style = "yellow" if new.better is None else ("bold green" if good else "bold red")
        plain = new.fmt.replace("{:+", "{:")
        return Text(("-" if delta < 0 else "+") + number(plain, abs(delta)) + rel, style)
    return Text("changed", "bold yellow")


def _val(v: Any) -> str:
    return "(unset)" if v is None else str(v)


class CompareView(VerticalScroll):
    """Pinned vs current."""

    pinned: Snapshot | None = None
    current: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static("Nothing pinned: run, press [b]b[/] to pin, change a knob, run again.", id="compare-title")
        yield Static("", id="compare-diff")
        table: DataTable[Any] = DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COMPARE_COLUMNS)
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).display = False

    def pin(self, snap: Snapshot) -> None:
        self.pinned = snap
        self.refresh_table()

    def set_current(self, snap: Snapshot) -> None:
        self.current = snap
        self.refresh_table()

    def differing(self) -> list[str]:
        """Metrics whose value differs between pinned and current."""
        if self.pinned is None or self.current is None:
            return []
        names = list(self.pinned.metrics) + [k for k in self.current.metrics if k not in self.pinned.metrics]
        return [
            k
            for k in names
            if str(change(self.pinned.metrics.get(k), self.current.metrics.get(k))) != "="
        ]

    def refresh_table(self) -> None:
        title = self.query_one("#compare-title", Static)
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        table.display = self.pinned is not None
        if self.pinned is None:
            return
        cur = self.current if self.current is not None and self.current is not self.pinned else None
        settings = diff(self.pinned.data, cur.data) if cur else []
        lines = [f"  {escape(k)}: {escape(_val(a))} → [b yellow]{escape(_val(b))}[/]" for k, a, b in settings[:8]]
        if len(settings) > 8:
            lines.append(f"  … and {len(settings) - 8} more")
        self.query_one("#compare-diff", Static).update(
            ("[b]changed settings[/]\n" + "\n".join(lines)) if lines else ("same settings" if cur else "")
        )
        names = list(self.pinned.metrics)
        if cur:
            names += [k for k in cur.metrics if k not in self.pinned.metrics]
        rows: list[tuple[bool, Text, Text, Text, Text]] = []
        for name in names:
            old = self.pinned.metrics.get(name)
            new = cur.metrics.get(name) if cur else None
            delta = change(old, new) if cur else Text("")
            differs = cur is not None and str(delta) != "="
            style = "bold" if differs else ("dim" if cur else "")
            rows.append(
                (
                    differs,
                    Text(name, style),
                    Text(old.text() if old else "-", style, justify="right"),
                    Text(new.text() if new else "-", style, justify="right"),
                    delta,
                )
            )
        rows.sort(key=lambda row: not row[0])  # the figures that changed first, each group in its order
        changed = sum(1 for row in rows if row[0])
        title.update(
            f"[b]pinned[/] {escape(self.pinned.label)}  vs  [b]current[/] "
            + (
                f"{escape(cur.label)}\n{changed} of {len(rows)} figures differ (listed first)"
                if cur
                else "(run again after changing a knob)"
            )
        )
        for row in rows:
            table.add_row(*row[1:])
