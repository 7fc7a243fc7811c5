"""Background work of a session: simulate, plan and export in ``@work(thread=True)`` workers.

Each run gets a number; its worker posts :mod:`tui.messages` tagged with it, so the screen can
ignore a run it has cancelled or replaced.  Cancelling sets the worker's flag: a plan stops at
its next progress report (the planner has cached every finished simulation in the session's state
file, so planning again resumes); a simulation cannot be interrupted, so it runs in a daemon thread
that the cancelled worker abandons (its result is never shown, and quitting does not wait for it).
Every exception becomes a :class:`~tui.messages.RunFailed` message, shown as a notification — a
failed run never takes the app down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from scenarios.loader import LoadedScenario
from tui.messages import PlanFinished, RunCancelled, RunFailed, RunProgress, SimFinished
from tui.runs import PlanOutcome, SimOutcome, fleet_spec, run_plan, run_simulation


def _abandonable(worker: Worker[Any], name: str, fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` in a daemon thread until it ends or ``worker`` is cancelled.

    Returns ``{"outcome": ...}``, ``{"error": "Type: message"}``, or ``{}`` when abandoned.  The
    simulator cannot be interrupted (and a plan only stops at its next progress report), so the
    work runs in a daemon thread that a cancelled worker leaves behind: neither a cancel nor
    quitting the app waits for it.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = fn()
        except Exception as exc:  # shown as a notification, never a crash
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    while thread.is_alive() and not worker.is_cancelled:
        thread.join(0.05)
    return dict(box) if not thread.is_alive() else {}


class JobsMixin(Screen[None]):
    """Starting, tracking and cancelling the session's runs."""

    run_id = 0
    running: str | None = None
    """``simulate`` or ``plan`` while a run is going."""

    def __init__(self) -> None:
        super().__init__()
        self.job: Worker[Any] | None = None
        self.sim_outcome: SimOutcome | None = None
        self.plan_outcome: PlanOutcome | None = None
        self.stopped_runs: set[int] = set()
        """Runs whose worker reported the cancellation (the screen has let go of them)."""

    @property
    def status(self) -> Any:  # the screen's RunStatus
        raise NotImplementedError

    def start_simulation(self, loaded: LoadedScenario, requests: int | None) -> None:
        self.run_id += 1
        self.running = "simulate"
        n = requests or loaded.scenario.simulation.resolved_requests()
        self.status.start(f"simulating {n or 'the'} requests on {fleet_spec(loaded)} … (Esc cancels)")
        self.job = self._simulate(self.run_id, loaded, requests)

    def start_plan(self, loaded: LoadedScenario, state: Path) -> None:
        self.run_id += 1
        self.running = "plan"
        self.status.start("planning: screening the configurations … (Esc cancels)")
        self.job = self._plan(self.run_id, loaded, state)

    def cancel_run(self) -> None:
        kind = self.running
        self.running = None
        if self.job is not None:
            self.job.cancel()
        self.status.finish(f"{kind} cancelled" + ("; stopping at the next step …" if kind == "plan" else ""))

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _simulate(self, run_id: int, loaded: LoadedScenario, requests: int | None) -> None:
        worker = get_current_worker()
        box = _abandonable(worker, f"tui-simulate-{run_id}", lambda: run_simulation(loaded, requests))
        if worker.is_cancelled:
            self.post_message(RunCancelled(run_id, "simulate"))
        elif "error" in box:
            self.post_message(RunFailed(run_id, "simulate", box["error"]))
        else:
            self.post_message(SimFinished(run_id, box["outcome"]))

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _plan(self, run_id: int, loaded: LoadedScenario, state: Path) -> None:
        worker = get_current_worker()

        def progress(text: str, done: int, total: int) -> None:
            self.post_message(RunProgress(run_id, "plan", text, done, total))

        box = _abandonable(
            worker, f"tui-plan-{run_id}", lambda: run_plan(loaded, state, progress, lambda: worker.is_cancelled)
        )
        if "error" in box:
            self.post_message(RunFailed(run_id, "plan", box["error"]))
        elif box.get("outcome") is None or worker.is_cancelled:
            self.post_message(RunCancelled(run_id, "plan"))
        else:
            self.post_message(PlanFinished(run_id, box["outcome"]))

    def start_export(self, outcome: PlanOutcome, folder: Path) -> None:
        self.notify(f"exporting the report to {folder} …")
        self._export(outcome, folder)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, outcome: PlanOutcome, folder: Path) -> None:
        from planner.report import write_report

        try:
            files = write_report(outcome.result, folder)
        except Exception as exc:
            self.app.call_from_thread(
                self.notify, f"{type(exc).__name__}: {exc}", title="export failed", severity="error"
            )
            return
        self.app.call_from_thread(self.notify, f"wrote {len(files)} files to {folder}", title="report exported")
