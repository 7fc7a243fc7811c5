"""Messages a session's background worker posts to its screen (thread-safe ``post_message``).

A run is a ``simulate`` or a ``plan``; it reports :class:`RunProgress` while it works and ends with
exactly one of :class:`SimFinished`, :class:`PlanFinished`, :class:`RunFailed` or
:class:`RunCancelled`.  Each carries the run's number so that a late message of an older run
(one replaced by a newer run, or cancelled) is ignored.
"""

from __future__ import annotations

from textual.message import Message

from tui.runs import PlanOutcome, SimOutcome


class RunMessage(Message):
    def __init__(self, run_id: int, kind: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.kind = kind


class RunProgress(RunMessage):
    def __init__(self, run_id: int, kind: str, text: str, done: int = 0, total: int = 0) -> None:
        super().__init__(run_id, kind)
        self.text = text
        self.done = done
        self.total = total


class SimFinished(RunMessage):
    def __init__(self, run_id: int, outcome: SimOutcome) -> None:
        super().__init__(run_id, "simulate")
        self.outcome = outcome


class PlanFinished(RunMessage):
    def __init__(self, run_id: int, outcome: PlanOutcome) -> None:
        super().__init__(run_id, "plan")
        self.outcome = outcome


class RunFailed(RunMessage):
    def __init__(self, run_id: int, kind: str, error: str) -> None:
        super().__init__(run_id, kind)
        self.error = error


class RunCancelled(RunMessage):
    pass
