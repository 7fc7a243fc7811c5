"""Terminal plots (textual-plotext): queue length over time, latency vs load, the cost–carbon front.

- Queue: requests waiting per pool over simulated time (:attr:`sim.simulation.SimResult.timeseries`).
- Latency vs load: p90 TTFT of one replica of each serving configuration at increasing offered load
  (the planner's screening curves, :attr:`planner.outcome.PlanResult.curves`), log scale.
- Cost–carbon: every verified fleet ($/h vs kg CO2e/h; ``o`` meets the SLOs, ``x`` misses them) and
  the Pareto front (``★``) joining the feasible fleets no other beats on both.

Each plot keeps its data and redraws on resize; before a run it shows what will appear there.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import TabbedContent, TabPane
from textual_plotext import PlotextPlot

from tui.runs import PlanOutcome, SimOutcome, cost_carbon, latency_curves


class _Plot(PlotextPlot):
    def blank(self, title: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        self.refresh()


class QueuePlot(_Plot):
    def on_mount(self) -> None:
        self.blank("queue length over time: run simulate (s)")

    def show(self, outcome: SimOutcome) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        ts = outcome.timeseries
        for pool in dict.fromkeys(ts["pool"]):
            g = ts[ts["pool"] == pool]
            plt.plot(g["time"].tolist(), g["waiting"].tolist(), label=str(pool))
        plt.title(f"requests waiting per pool: {outcome.fleet}")
        plt.xlabel("simulated time (s)")
        self.refresh()


class LatencyPlot(_Plot):
    def on_mount(self) -> None:
        self.blank("latency vs load per configuration: run plan (p)")

    def show(self, outcome: PlanOutcome) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # log10 of the latency on a linear axis, ticks labelled in ms: plotext's own log scale fails to
        # redraw at some terminal sizes (an IndexError or a math domain error inside its renderer)
        decades: list[float] = []
        for name, (xs, ys) in latency_curves(outcome.result).items():
            pts = [(x, math.log10(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(y) and y > 0]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=name, marker="braille")
                decades += [p[1] for p in pts]
        if decades:  # ticks at 1, 2 and 5 x 10^k ms within the range
            lo, hi = min(decades), max(decades)
            ms = [m * 10.0**k for k in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)]
            ms = [v for v in ms if lo <= math.log10(v) <= hi]
            plt.yticks([math.log10(v) for v in ms], [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in ms])
        plt.title("p90 TTFT (ms, log scale) vs offered load per replica")
        plt.xlabel("req/s per replica")
        self.refresh()


class ParetoPlot(_Plot):
    def on_mount(self) -> None:
        self.blank("cost vs carbon of verified fleets: run plan (p)")

    def show(self, outcome: PlanOutcome) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        pts, front = cost_carbon(outcome.result)
        bad = [(c, g) for c, g, ok in pts if not ok]
        good = [(c, g) for c, g, ok in pts if ok]
        if bad:
            plt.scatter([p[0] for p in bad], [p[1] for p in bad], label="misses SLO", color="gray", marker="x")
        if good:
            plt.scatter([p[0] for p in good], [p[1] for p in good], label="meets SLO", color="green", marker="o")
        if len(front) > 1:
            plt.plot([p[0] for p in front], [p[1] for p in front], color="cyan", marker="braille")
        if front:  # a marker per fleet on it: a front of one fleet is a point
            plt.scatter([p[0] for p in front], [p[1] for p in front], label="Pareto front", color="cyan", marker="★")
        plt.title("cost vs carbon of the simulated fleets")
        plt.xlabel("$/h")
        plt.ylabel("kg CO2e/h")
        self.refresh()


class PlotsView(Vertical):
    """The three plots, one per tab."""

    def compose(self) -> ComposeResult:
        with TabbedContent(id="plot-tabs"):
            with TabPane("Queue", id="plot-queue"):
                yield QueuePlot(id="queue-plot")
            with TabPane("Latency vs load", id="plot-latency"):
                yield LatencyPlot(id="latency-plot")
            with TabPane("Cost–carbon", id="plot-pareto"):
                yield ParetoPlot(id="pareto-plot")

    def show_sim(self, outcome: SimOutcome) -> None:
        self.query_one(QueuePlot).show(outcome)

    def show_plan(self, outcome: PlanOutcome) -> None:
        self.query_one(LatencyPlot).show(outcome)
        self.query_one(ParetoPlot).show(outcome)
