"""Background work of a session: simulate, plan and export in ``@work(thread=True)`` workers.

Each run gets a number; its worker posts :mod:`tui.messages` tagged with it, so the screen can
ignore a run it has cancelled or replaced.  The run itself (the simulator or the planner, plain
Python that knows nothing of Textual) goes in a thread of its own that the worker watches.
Cancelling stops it for real: the worker raises :class:`RunStopped` inside that thread at its next
Python instruction (CPython's ``PyThreadState_SetAsyncExc``), so a cancelled simulation does not
keep a core busy in the background.  A plan also stops at its next progress report; the planner
has cached every finished simulation in the session's state file (a line cut short is skipped on
reading), so planning again resumes.  Every exception becomes a :class:`~tui.messages.RunFailed`
message, shown as a notification — a failed run never takes the app down.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from scenarios.loader import LoadedScenario
from tui.messages import PlanFinished, RunCancelled, RunFailed, RunProgress, SimFinished
from tui.paths import os_error_text, os_reason
from tui.runs import PlanOutcome, SimOutcome, fleet_spec, run_plan, run_simulation


class RunStopped(BaseException):
    """Raised inside a run's thread to stop it (a ``BaseException``: no ``except Exception`` eats it)."""


#: how long a cancelled worker waits for its run's thread to stop before leaving it behind
STOP_WAIT_S = 2.0
#: how often it raises the stop again meanwhile: an exception raised into a thread while that thread runs a
#: garbage-collector callback or a finalizer is dropped there ("Exception ignored in ..."), and the run goes on
STOP_RETRY_S = 0.2


def _raise_in(thread: threading.Thread) -> bool:
    """Raise :class:`RunStopped` in ``thread`` at its next Python instruction; False if impossible."""
    set_async_exc = getattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", None)
    if thread.ident is None or set_async_exc is None:
        return False
    return int(set_async_exc(ctypes.c_ulong(thread.ident), ctypes.py_object(RunStopped))) == 1


def _checkpoint() -> None:
    """A Python call: a pending :class:`RunStopped` is delivered here at the latest."""


def _stoppable(worker: Worker[Any], name: str, fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` in a thread of its own until it ends, or stop it when ``worker`` is cancelled.

    Returns ``{"outcome": ...}`` or ``{"error": "Type: message"}``; ``{}`` when cancelled.  On a
    cancel the thread is stopped by :func:`_raise_in` (a long C call, e.g. in numpy, finishes
    first), again every :data:`STOP_RETRY_S` while it runs on, for up to :data:`STOP_WAIT_S`; a thread
    that outlasts that is a daemon, so neither the next run nor quitting the app waits for it.
    """
    box: dict[str, Any] = {}
    lock = threading.Lock()
    finished = False

    def target() -> None:
        nonlocal finished
        try:
            try:
                box["outcome"] = fn()
            except RunStopped:
                pass
            except OSError as exc:  # a file of the run (the plan's state file, a trace): which, and why
                box["error"] = f"{type(exc).__name__}: {os_error_text(exc)}"
            except Exception as exc:  # shown as a notification, never a crash
                box["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                with lock:
                    finished = True
            _checkpoint()
        except RunStopped:  # a stop that arrived as the run was ending
            pass

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    while thread.is_alive() and not worker.is_cancelled:
        thread.join(0.05)
    if not worker.is_cancelled:
        return dict(box)
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        with lock:
            if not finished:
                _raise_in(thread)
        thread.join(STOP_RETRY_S)
        if not thread.is_alive() or time.monotonic() >= deadline:
            return {}


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
        self.status.start(f"simulating {f'{n:,}' if n else 'the'} requests (Esc cancels) on {fleet_spec(loaded)} …")
        self.job = self._simulate(self.run_id, loaded, requests)

    def start_plan(self, loaded: LoadedScenario, state: Path) -> None:
        self.run_id += 1
        self.running = "plan"
        self.status.start("planning (Esc cancels): screening the configurations …")
        self.job = self._plan(self.run_id, loaded, state)

    def cancel_run(self) -> None:
        kind = self.running
        self.running = None
        if self.job is not None:
            self.job.cancel()
        self.status.finish(f"{kind} cancelled")

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _simulate(self, run_id: int, loaded: LoadedScenario, requests: int | None) -> None:
        worker = get_current_worker()
        box = _stoppable(worker, f"tui-simulate-{run_id}", lambda: run_simulation(loaded, requests))
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

        box = _stoppable(
            worker, f"tui-plan-{run_id}", lambda: run_plan(loaded, state, progress, lambda: worker.is_cancelled)
        )
        if "error" in box:
            self.post_message(RunFailed(run_id, "plan", box["error"]))
        elif box.get("outcome") is None or worker.is_cancelled:
            self.post_message(RunCancelled(run_id, "plan"))
        else:
            self.post_message(PlanFinished(run_id, box["outcome"]))

    def start_export(self, outcome: PlanOutcome, folder: Path) -> None:
        self.notify(escape(f"exporting the report to {folder} …"))
        self._export(outcome, folder)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, outcome: PlanOutcome, folder: Path) -> None:
        from planner.report import write_report

        try:
            files = write_report(outcome.result, folder)
        except OSError as exc:  # name the path at fault and the real reason, not just the OS's text
            why = os_reason(folder, exc, folder=True)
            self.app.call_from_thread(
                self.notify, escape(f"cannot export to {folder}: {why}"), title="export failed", severity="error"
            )
            return
        except Exception as exc:
            self.app.call_from_thread(
                self.notify, escape(f"{type(exc).__name__}: {exc}"), title="export failed", severity="error"
            )
            return
        self.app.call_from_thread(self.notify, escape(f"wrote {len(files)} files to {folder}"), title="report exported")
