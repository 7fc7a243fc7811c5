"""The planning session: edit a scenario, simulate it, plan it, look at and compare the results.

One screen with tabs — Scenario (the form), Results (simulation tables), Plan (the planner's
answer), Plots, Compare — a run status line and the key bindings in the footer.  Runs happen in
background workers (:mod:`tui.screens.jobs`), never on the UI thread; the screen reacts to their
messages (:mod:`tui.messages`).  A run needs a valid scenario: with problems in the form, ``s`` and
``p`` say what to fix and run nothing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from scenarios.errors import FleetPlannerError
from scenarios.numbers import number
from scenarios.yamlfile import safe_load, unshared
from tui.editing import build_fields, scenario_yaml, set_value, validate
from tui.messages import PlanFinished, RunCancelled, RunFailed, RunProgress, SimFinished
from tui.paths import bundled_dir, os_reason, state_file, typed_path
from tui.runs import PlanOutcome, SimOutcome
from tui.screens.jobs import JobsMixin
from tui.widgets.compare import CompareView, Snapshot
from tui.widgets.form import FieldEdited, ScenarioForm
from tui.widgets.planview import PlanView
from tui.widgets.plots import PlotsView
from tui.widgets.results import ResultsView
from tui.widgets.status import RunStatus

TABS = ("tab-scenario", "tab-results", "tab-plan", "tab-plots", "tab-compare")


def notes_for(validation: Any) -> dict[str, str]:
    """Read-only facts shown under section titles: model and routing, the GPUs of the menu and where
    their step times come from (a calibrated profile, one derived from other TP sizes, or defaults)."""
    loaded = validation.loaded
    if loaded is None:
        return {}
    s = loaded.scenario
    gpus = s.gpu_catalogue()
    menu = []
    for c in s.configs:
        g = gpus.get(c.gpu)
        spec = (
            f"{g.memory_gb:g} GB, {number('{:,.0f}', g.mem_bw_gbps)} GB/s, {number('{:.0f}', g.tdp_w)} W"
            if g
            else "unknown GPU"
        )
        menu.append(f"{c.key}: {c.gpus}× {c.gpu} ({spec}), max {c.max_num_seqs} seqs, {_step_basis(c, loaded)}")
    return {
        "Scenario": f"model {s.model} · routing {s.routing.type} · "
        + (f"{n} classes" if (n := len(s.traffic.classes)) != 1 else "1 class"),
        "Hardware menu": "\n".join(menu),
        "Fleet": "grid intensity: g CO2e per kWh where the pool runs",
    }


def _step_basis(cfg: Any, loaded: Any) -> str:
    """Where a configuration's step times come from, in a few words."""
    from sim.profiles import DERIVED_SOURCE, resolve_profile
    from sim.service import ROOFLINE_SOURCE

    try:
        prof = resolve_profile(cfg.gpu, cfg.gpus, cfg.profile, loaded.base_dir)
    except FleetPlannerError:
        return "profile not found"
    if prof.source == ROOFLINE_SOURCE:
        return "uncalibrated (roofline defaults)"
    if prof.source.startswith(DERIVED_SOURCE):
        return "profile derived from other TP sizes"
    return "calibrated"


class SessionScreen(JobsMixin):
    """Edit, run, inspect, compare, save."""

    CSS_PATH = "session.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s,f5", "simulate", "Simulate"),
        Binding("p,f6", "plan", "Plan"),
        Binding("escape", "cancel", "Cancel"),
        Binding("b", "pin", "Pin"),
        Binding("w,ctrl+s", "save", "Save"),
        Binding("e", "export", "Export"),
        Binding("o", "open", "Open"),
        Binding("q", "app.quit", "Quit"),
        *(Binding(str(i + 1), f"tab('{tab}')", show=False) for i, tab in enumerate(TABS)),
    ]

    def __init__(self, path: Path | None, data: dict[str, Any], *, data_dir: Path, requests: int | None = None):
        super().__init__()
        self.path = path
        self.data = data
        self.data_dir = data_dir
        self.requests = requests
        self.validation = validate(data, path)
        self.fields = build_fields(data, self.validation.loaded)
        self.latest: Snapshot | None = None
        self.run_doc: dict[str, Any] = {}
        """The scenario document the current run was started with (edits during a run don't count)."""

    # ------------------------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="tab-scenario", id="tabs"):
            with TabPane("1 Scenario", id="tab-scenario"):
                yield ScenarioForm(self.fields, self.data, notes_for(self.validation), id="form")
            with TabPane("2 Results", id="tab-results"):
                yield ResultsView(id="results")
            with TabPane("3 Plan", id="tab-plan"):
                yield PlanView(id="plan")
            with TabPane("4 Plots", id="tab-plots"):
                yield PlotsView(id="plots")
            with TabPane("5 Compare", id="tab-compare"):
                yield CompareView(id="compare")
        yield RunStatus(id="status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._titles()
        self.query_one(ScenarioForm).show_problems(self.validation.problems)

    def _titles(self) -> None:
        name = self.data.get("name") if isinstance(self.data.get("name"), str) else "scenario"
        self.title = "fleet-planner"
        self.sub_title = f"{name} ({self.path.name})" if self.path else str(name)

    @property
    def status(self) -> RunStatus:
        return self.query_one(RunStatus)

    @property
    def form(self) -> ScenarioForm:
        return self.query_one(ScenarioForm)

    # ----------------------------------------------------------------------------------- editing
    def on_field_edited(self, event: FieldEdited) -> None:
        set_value(self.data, event.spec.path, event.value)
        self.revalidate()

    def revalidate(self) -> None:
        self.validation = validate(self.data, self.path)
        self.form.show_problems(self.validation.problems)
        self._titles()

    def ready(self, what: str) -> bool:
        """Whether a run may start; says why not."""
        if self.running:
            self.notify(f"a {self.running} is running — press Esc to cancel it first", severity="warning")
            return False
        if not self.validation.ok:
            n = len(self.validation.problems)
            first = self.validation.problems[0] if self.validation.problems else "the scenario does not load"
            self.notify(
                f"{n} problem{'s' if n != 1 else ''} in the scenario; first: {escape(str(first))}",
                title=f"cannot {what}",
                severity="error",
            )
            self.query_one(TabbedContent).active = "tab-scenario"
            self.form.focus_first_problem()
            return False
        return True

    # ----------------------------------------------------------------------------------- actions
    def action_simulate(self) -> None:
        if self.ready("simulate") and self.validation.loaded is not None:
            self.run_doc = copy.deepcopy(self.data)
            self.start_simulation(self.validation.loaded, self.requests)

    def action_plan(self) -> None:
        if self.ready("plan") and self.validation.loaded is not None:
            loaded = self.validation.loaded
            self.run_doc = copy.deepcopy(self.data)
            self.start_plan(loaded, state_file(self.data_dir, self.path, loaded.scenario.name))

    def action_cancel(self) -> None:
        """Esc leaves a form field first (typing goes on while a run works); then cancels the run."""
        if isinstance(self.focused, Input):
            self.set_focus(None)
            if self.running:
                self.notify(f"left the field; Esc again cancels the {self.running}")
        elif self.running:
            self.cancel_run()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_pin(self) -> None:
        if self.latest is None:
            self.notify("nothing to pin yet: simulate (s) or plan (p) first", severity="warning")
            return
        self.query_one(CompareView).pin(self.latest)
        self.notify(f"pinned {self.latest.label}; change a knob and run again to compare (tab 5)")

    def action_open(self) -> None:
        from tui.screens.picker import PickerScreen

        recent = getattr(self.app, "recent", None)
        self.app.push_screen(PickerScreen(recent.load() if recent else []))

    def action_save(self) -> None:
        loaded = self.validation.loaded
        if loaded is None or not self.validation.ok:
            self.notify("fix the scenario's problems before saving", title="cannot save", severity="error")
            return
        if self.path is not None and self.path.resolve().parent != bundled_dir().resolve():
            default = str(self.path)
        else:
            default = f"{loaded.scenario.name}.yaml"
        from tui.screens.dialogs import PathDialog

        self.app.push_screen(
            PathDialog("Save scenario as (YAML):", default, "your settings as edited; comments are not kept"),
            self.save_to,
        )

    def save_to(self, target: str | None) -> None:
        """Write the document as edited, if ``planner check`` will accept it where it is written."""
        if not target or not self.validation.ok:
            return
        path = typed_path(target)
        if isinstance(path, str):
            self.notify(escape(path), title="not saved", severity="error")
            return
        there = validate(self.data, path)  # relative paths in the scenario resolve from its folder
        if not there.ok:
            first = there.problems[0] if there.problems else "the scenario does not load"
            self.notify(
                f"{escape(str(path))} would not pass `planner check`: {escape(str(first))}",
                title="not saved",
                severity="error",
                timeout=10,
            )
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(scenario_yaml(self.data))
        except OSError as exc:  # the OS's text can mislead ("File exists" for /dev/null/x.yaml): say what is wrong
            why = os_reason(path, exc)
            self.notify(escape(f"cannot save to {path}: {why}"), title="not saved", severity="error", timeout=10)
            return
        self.path = path
        self.data = unshared(safe_load(path.read_text()))
        self.form.data = self.data
        recent = getattr(self.app, "recent", None)
        if recent is not None:
            recent.add(path)
        self.revalidate()
        self.notify(f"saved {escape(str(path))}")

    def action_export(self) -> None:
        if self.plan_outcome is None:
            self.notify("no plan to export: run plan (p) first", severity="warning")
            return
        from tui.screens.dialogs import PathDialog

        default = self.data_dir / "reports" / self.plan_outcome.scenario
        self.app.push_screen(
            PathDialog("Export the plan report to folder:", str(default), "report.md, plan.json and PNG plots"),
            self.export_to,
        )

    def export_to(self, target: str | None) -> None:
        if target and self.plan_outcome is not None:
            path = typed_path(target)
            if isinstance(path, str):
                self.notify(escape(path), title="not exported", severity="error")
                return
            self.start_export(self.plan_outcome, path)

    # ---------------------------------------------------------------------------------- results
    def _snapshot(self, kind: str, label: str, metrics: Any) -> None:
        self.latest = Snapshot(f"#{self.run_id} {kind} {label}", metrics, self.run_doc, kind)
        compare = self.query_one(CompareView)
        if compare.pinned is not None and compare.pinned.kind == kind:
            compare.set_current(self.latest)

    def on_run_progress(self, message: RunProgress) -> None:
        if message.run_id == self.run_id and self.running:
            self.status.progress(message.text, message.done, message.total)

    def on_sim_finished(self, message: SimFinished) -> None:
        if message.run_id != self.run_id:
            return
        self.running = None
        try:
            self._show_sim(message.outcome)
        except Exception as exc:  # results the views cannot show are reported, never a crash
            self._cannot_show("simulate", exc)

    def _show_sim(self, outcome: SimOutcome) -> None:
        self.sim_outcome = outcome
        self.query_one(ResultsView).show(outcome)
        self.query_one(PlotsView).show_sim(outcome)
        self._snapshot("simulate", outcome.fleet, outcome.metrics())
        failing = [r["class"] for r in outcome.classes if r["class"] != "ALL" and r.get("slo_pass") is False]
        verdict = f"SLO missed by {', '.join(failing)}" if failing else "every class meets its SLO"
        if idle := [r["class"] for r in outcome.classes if r["class"] != "ALL" and r.get("requests") == 0]:
            verdict += f" (no requests for {', '.join(idle)})"
        self.status.finish(f"simulated {outcome.fleet}: {verdict}")
        self.query_one(TabbedContent).active = "tab-results"

    def on_plan_finished(self, message: PlanFinished) -> None:
        if message.run_id != self.run_id:
            return
        self.running = None
        try:
            self._show_plan(message.outcome)
        except Exception as exc:
            self._cannot_show("plan", exc)

    def _show_plan(self, outcome: PlanOutcome) -> None:
        self.plan_outcome = outcome
        self.query_one(PlanView).show(outcome)
        self.query_one(PlotsView).show_plan(outcome)
        best = outcome.result.recommended or outcome.result.closest
        self._snapshot("plan", best.candidate.fleet if best else "no fleet", outcome.metrics())
        self.status.finish(outcome.result.message())
        self.query_one(TabbedContent).active = "tab-plan"

    def _cannot_show(self, kind: str, exc: Exception) -> None:
        self.status.finish(f"{kind} finished, but its results cannot be shown")
        error = escape(f"{type(exc).__name__}: {exc}")
        self.notify(error, title=f"cannot show the {kind} results", severity="error", timeout=10)

    def on_run_failed(self, message: RunFailed) -> None:
        if message.run_id != self.run_id:
            return
        self.running = None
        self.status.finish(f"{message.kind} failed")
        self.notify(escape(message.error), title=f"{message.kind} failed", severity="error", timeout=10)

    def on_run_cancelled(self, message: RunCancelled) -> None:
        self.stopped_runs.add(message.run_id)
        if message.run_id == self.run_id and message.kind == "plan":
            self.status.finish("plan cancelled; finished runs are cached, p resumes")
