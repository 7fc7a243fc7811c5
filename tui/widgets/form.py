"""The scenario form: one compact input per editable value, its error shown beside it.

The form is built from :func:`tui.editing.build_fields` (a list of :class:`~tui.editing.FieldSpec`,
grouped into sections) and the scenario document.  Typing in an input posts :class:`FieldEdited`
with the parsed value; the session validates the whole document and hands the problems back with
:meth:`ScenarioForm.show_problems`, which writes each next to its input (problems that belong to
no input are listed at the top).  Read-only facts (model, routing, the GPUs of the hardware menu)
are shown as notes under their section titles.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from tui.editing import FieldSpec, Problem, get_value, parse_text, place, show_value


class FieldEdited(Message):
    """The user changed one value of the scenario."""

    def __init__(self, spec: FieldSpec, value: Any) -> None:
        super().__init__()
        self.spec = spec
        self.value = value


class FieldRow(Horizontal):
    """Label, input and error of one field."""

    def __init__(self, spec: FieldSpec, value: Any) -> None:
        super().__init__(classes="field-row")
        self.spec = spec
        self.value = value

    def compose(self) -> ComposeResult:
        yield Label(self.spec.label, classes="field-label")
        yield Input(
            show_value(self.value),
            placeholder=self.spec.placeholder,
            id=self.spec.widget_id,
            compact=True,
            classes="field-input",
        )
        yield Label("", classes="field-error")

    def set_error(self, messages: list[str]) -> None:
        error = self.query_one(".field-error", Label)
        error.update(escape("; ".join(messages)))
        self.set_class(bool(messages), "invalid")


class ScenarioForm(VerticalScroll):
    """All fields of the scenario, by section."""

    def __init__(self, fields: list[FieldSpec], data: Any, notes: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields
        self.data = data
        self.notes = notes
        self.rows: dict[str, FieldRow] = {}
        self.problem_count = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="form-problems")
        section = None
        for spec in self.fields:
            if spec.section != section:
                section = spec.section
                yield Label(section, classes="section-title")
                if section in self.notes:
                    yield Static(self.notes[section], classes="section-note", markup=False)
            row = FieldRow(spec, get_value(self.data, spec.path))
            self.rows[spec.dotted] = row
            yield row

    def on_input_changed(self, event: Input.Changed) -> None:
        row = next((r for r in event.input.ancestors if isinstance(r, FieldRow)), None)
        if row is None:
            return
        event.stop()
        value = parse_text(event.value, row.spec.numeric)
        if value != get_value(self.data, row.spec.path):
            self.post_message(FieldEdited(row.spec, value))

    def input_for(self, dotted: str) -> Input:
        return self.rows[dotted].query_one(Input)

    def error_for(self, dotted: str) -> str:
        return str(self.rows[dotted].query_one(".field-error", Label).content)

    def focus_first_problem(self) -> None:
        """Move the cursor to the first field with an error (the top of the form if none has)."""
        row = next((r for r in self.rows.values() if r.has_class("invalid")), None)
        if row is None:
            self.scroll_home(animate=False)
            return
        self.scroll_to_widget(row, animate=False)
        row.query_one(Input).focus()

    def show_problems(self, problems: list[Problem]) -> None:
        placed, loose = place(problems, self.fields)
        for dotted, row in self.rows.items():
            row.set_error(placed.get(dotted, []))
        self.problem_count = len(problems)
        summary = self.query_one("#form-problems", Static)
        if not problems:
            summary.update("[green]✓ valid[/] — the same checks as `planner check`")
            summary.remove_class("invalid")
            return
        lines = [f"[b red]✗ {len(problems)} problem{'s' if len(problems) != 1 else ''}[/] (fix before running)"]
        lines += [f"  {escape(str(p))}" for p in loose]
        summary.update("\n".join(lines))
        summary.add_class("invalid")
