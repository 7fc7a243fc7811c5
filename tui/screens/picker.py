"""The scenario picker: bundled scenarios, recent files, or any path typed in.

Bundled scenarios are the YAML files of the ``scenarios`` package; recent files come from
``recent.json`` in the config folder (:class:`tui.paths.RecentFiles`).  Choosing one asks the app
to open it in a planning session.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.paths import ScenarioFile, bundled_scenarios, describe, not_a_file, typed_path


def _option(item: ScenarioFile, kind: str, shown: str) -> Option:
    text = Text.assemble((f"{item.title}", "bold"), f"  {shown}  ", (kind, "dim"))
    if item.description:
        desc = item.description if len(item.description) <= 72 else item.description[:71].rstrip() + "…"
        text.append("\n  " + desc, "dim")
    return Option(text, id=str(item.path))


class PickerScreen(Screen[None]):
    """Choose a scenario to open."""

    class Chosen(Message):
        """The user picked a scenario file (handled by the app)."""

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, recent: list[Path]) -> None:
        super().__init__()
        self.recent = recent

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Open a scenario — recent files and bundled examples (↑↓, Enter):", id="picker-title")
        options: list[Option] = []
        for path in self.recent:
            options.append(_option(describe(path), "recent", path.name))
        seen = {p.resolve() for p in self.recent}
        for item in bundled_scenarios():
            if item.path.resolve() not in seen:
                options.append(_option(item, "bundled", item.path.name))
        yield OptionList(*options, id="scenario-list")
        yield Input(placeholder="…or type a path to a scenario YAML and press Enter", id="path-input")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self._open(Path(event.option.id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            path = typed_path(event.value.strip())
            if isinstance(path, str):
                self.notify(escape(path), severity="error")
                return
            self._open(path)

    def _open(self, path: Path) -> None:
        if not path.is_file():
            self.notify(escape(f"cannot open {path}: {not_a_file(path)}"), severity="error")
            return
        self.post_message(self.Chosen(path))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # only when the picker was opened from a session
            return len(self.app.screen_stack) > 2
        return True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
