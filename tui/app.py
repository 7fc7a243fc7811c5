"""The Textual application behind ``planner tui``: opens scenarios into planning sessions.

The app itself is thin: it knows its folders (recent-files list, data folder for plan state and
reports), opens a scenario file into a :class:`~tui.screens.session.SessionScreen`, and shows the
:class:`~tui.screens.picker.PickerScreen` when started without one (or on ``o``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual.app import App
from textual.binding import Binding, BindingType

from scenarios.errors import ScenarioError
from tui.editing import read_document
from tui.paths import RecentFiles, config_dir, data_dir
from tui.screens.picker import PickerScreen
from tui.screens.session import SessionScreen


class FleetPlannerApp(App[None]):
    """Interactive capacity planning in the terminal."""

    CSS_PATH = "app.tcss"
    TITLE = "fleet-planner"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit", show=False)]

    def __init__(
        self,
        scenario: Path | None = None,
        *,
        config: Path | None = None,
        data: Path | None = None,
        requests: int | None = None,
    ) -> None:
        super().__init__()
        self.scenario_path = scenario
        self.recent = RecentFiles(config_dir(config))
        self.data_dir = data_dir(data)
        self.requests = requests

    def on_mount(self) -> None:
        if self.scenario_path is not None and self.open_scenario(self.scenario_path):
            return
        self.push_screen(PickerScreen(self.recent.load()))

    def on_picker_screen_chosen(self, message: PickerScreen.Chosen) -> None:
        self.open_scenario(message.path)

    def open_scenario(self, path: Path) -> bool:
        """Open a scenario file in a new session (replacing the current one); False if unreadable."""
        try:
            data = read_document(path)
        except ScenarioError as exc:
            self.notify(escape("\n".join(exc.problems)), title="cannot open", severity="error", timeout=10)
            return False
        self.recent.add(path)
        session = SessionScreen(path, data, data_dir=self.data_dir, requests=self.requests)
        while isinstance(self.screen, PickerScreen):
            self.pop_screen()
        if isinstance(self.screen, SessionScreen):
            self.switch_screen(session)
        else:
            self.push_screen(session)
        return True
