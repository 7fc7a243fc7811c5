"""The run status line: what the background worker is doing, with a progress bar.

Shown at the bottom of the session screen.  Indeterminate while a run has no step count (a
simulation, the planner's screening), a proper bar once the planner counts verified candidates.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


class RunStatus(Horizontal):
    """``Label`` (message) + ``ProgressBar``; the bar is hidden when nothing runs."""

    def compose(self) -> ComposeResult:
        yield Label("ready: s simulate · p plan", id="run-msg")
        yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="run-bar")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    text = "ready"
    """The message shown (plain text; tests read it)."""

    def _say(self, text: str) -> None:
        self.text = text
        self.query_one("#run-msg", Label).update(text)

    def start(self, text: str) -> None:
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.add_class("running")
        self._say(text)

    def progress(self, text: str, done: int, total: int) -> None:
        bar = self.query_one(ProgressBar)
        if total > 0:
            bar.update(total=total, progress=done)
        else:
            bar.update(total=None)
        self._say(text)

    def finish(self, text: str) -> None:
        self.query_one(ProgressBar).display = False
        self.remove_class("running")
        self._say(text)
