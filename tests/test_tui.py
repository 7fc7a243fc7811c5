"""Pilot tests of the TUI (``planner tui``): open, edit, validate, simulate, plan, cancel, compare, save.

Every app gets its config and data folders in ``tmp_path`` (recent files, plan state, reports), and
the scenarios are tiny (``tests/fixtures/tui_*.yaml``: 300 requests, a plan of at most 2 replicas
with one seed), so the whole module runs in seconds.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, TabbedContent

from planner.commands.check import check_file
from tui.app import FleetPlannerApp
from tui.screens.picker import PickerScreen
from tui.screens.session import SessionScreen
from tui.widgets.compare import CompareView
from tui.widgets.form import ScenarioForm
from tui.widgets.results import ResultsView

TINY = ROOT / "tests" / "fixtures" / "tui_tiny.yaml"
LONG = ROOT / "tests" / "fixtures" / "tui_long.yaml"
RATE = "traffic.classes[0].rate"



def pilot_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body with asyncio (no async pytest plugin needed); fixtures pass through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def make_app(tmp_path: Path, scenario: Path | None = TINY) -> FleetPlannerApp:
    return FleetPlannerApp(scenario, config=tmp_path / "config", data=tmp_path / "data")


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``cond()`` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await asyncio.sleep(0.05)
    await pilot.pause()


async def type_into(pilot: Pilot[Any], app: FleetPlannerApp, dotted: str, text: str) -> None:
    """Replace a form field's text by typing it, then leave the field (Esc)."""
    session = app.screen
    assert isinstance(session, SessionScreen)
    session.query_one("#tabs", TabbedContent).active = "tab-scenario"
    await pilot.pause()
    field = session.form.input_for(dotted)
    field.focus()
    field.value = ""
    await pilot.press(*text)
    await pilot.press("escape")
    await pilot.pause()


async def simulate(pilot: Pilot[Any], app: FleetPlannerApp) -> SessionScreen:
    session = app.screen
    assert isinstance(session, SessionScreen)
    before = session.run_id
    await pilot.press("s")
    assert session.run_id == before + 1, session.status.text
    await app.workers.wait_for_complete()
    await until(pilot, lambda: session.running is None)
    return session


@pilot_test
async def test_edit_rate_and_simulate_shows_new_numbers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = await simulate(pilot, app)
        results = session.query_one(ResultsView)
        done_before = int(results.cell("chat", "done").replace(",", ""))
        ttft_before = results.cell("chat", "TTFT p90")
        assert session.query_one("#tabs", TabbedContent).active == "tab-results"

        await type_into(pilot, app, RATE, "30")
        assert session.data["traffic"]["classes"][0]["rate"] == 30
        assert session.validation.ok
        await simulate(pilot, app)
        done_after = int(results.cell("chat", "done").replace(",", ""))
        # 30 req/s of chat against 1 of batch: chat's share of the 300 requests grows from ~3/4 to ~30/31
        assert done_after > done_before
        assert done_after >= 280
        assert results.cell("chat", "TTFT p90") != ttft_before
        assert "every class meets its SLO" in session.status.text or "SLO missed" in session.status.text


@pilot_test
async def test_bad_value_shows_its_error_and_blocks_the_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(TINY.read_text())
    data["traffic"]["classes"][0]["rate"] = -3
    bad.write_text(yaml.safe_dump(data))
    expected = [p.split(": ", 2)[2] for p in check_file(bad).problems]

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        form = session.query_one(ScenarioForm)
        assert form.error_for(RATE) == ""
        await type_into(pilot, app, RATE, "-3")
        assert form.error_for(RATE) == expected[0]  # the message `planner check` prints
        assert "greater than 0" in form.error_for(RATE)
        assert form.rows[RATE].has_class("invalid")
        await pilot.press("s")
        await pilot.press("p")
        await pilot.pause()
        assert session.run_id == 0 and session.running is None  # nothing ran
        assert session.sim_outcome is None

        # a cross-reference problem lands next to its own field too
        await type_into(pilot, app, RATE, "3")
        assert form.error_for(RATE) == ""
        await type_into(pilot, app, "fleet.pools[1].config", "2x4090")
        assert "unknown configuration '2x4090'" in form.error_for("fleet.pools[1].config")
        await type_into(pilot, app, "fleet.pools[1].config", "1xRTX-4090")
        assert form.problem_count == 0
        await simulate(pilot, app)
        assert session.sim_outcome is not None


@pilot_test
async def test_cancel_a_long_plan(tmp_path: Path) -> None:
    app = make_app(tmp_path, LONG)
    async with app.run_test(size=(120, 40)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        await pilot.press("p")
        assert session.running == "plan"
        # the planner itself has reported progress (not just the status set when the run started)
        await until(pilot, lambda: session.status.text.startswith(("screening ", "verifying ")))
        await pilot.press("escape")
        assert session.running is None
        assert "cancelled" in session.status.text
        await until(pilot, lambda: session.run_id in session.stopped_runs)
        # plan_fleet itself stops at its next progress report (its thread ends long before the plan would)
        name = f"tui-plan-{session.run_id}"
        await until(pilot, lambda: not any(t.name == name for t in threading.enumerate()), timeout=5)
        assert session.plan_outcome is None
        assert app.is_running
        # a new run may start at once
        await simulate(pilot, app)
        assert session.sim_outcome is not None


@pilot_test
async def test_a_failing_run_is_a_notification_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.screens.jobs as jobs

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the simulator fell over")

    monkeypatch.setattr(jobs, "run_simulation", boom)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        session = await simulate(pilot, app)
        assert session.status.text == "simulate failed"
        assert any("fell over" in n.message for n in app._notifications)
        assert app.is_running


@pilot_test
async def test_plan_pin_compare_and_export(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = await simulate(pilot, app)
        await pilot.press("b")
        compare = session.query_one(CompareView)
        assert compare.pinned is not None and compare.pinned.kind == "simulate"

        # knobs: chat rate +50%, the RTX 4090's price, the H100 pool's grid intensity
        await type_into(pilot, app, RATE, "4.5")
        await type_into(pilot, app, "pricing.overrides.RTX-4090", "0.9")
        await type_into(pilot, app, "fleet.pools[0].grid_g_per_kwh", "50")
        await simulate(pilot, app)
        assert compare.current is not None and compare.current is not compare.pinned
        differing = compare.differing()
        assert "$/hour" in differing and "gCO2e/hour" in differing and "chat TTFT p90 ms" in differing
        assert compare.pinned.metrics["$/hour"].value < compare.current.metrics["$/hour"].value  # type: ignore[operator]
        assert "traffic.classes[0].rate" in str(session.query_one("#compare-diff").render())

        # plan, then export the report as `planner plan --report` does
        await pilot.press("p")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: session.plan_outcome is not None)
        assert session.query_one("#tabs", TabbedContent).active == "tab-plan"
        assert list((tmp_path / "data" / "plans").glob("*.jsonl"))  # the resumable state file
        out = tmp_path / "report"
        await pilot.press("e")
        await pilot.pause()
        dialog_input = app.screen.query_one("#dialog-input", Input)
        dialog_input.value = str(out)
        await pilot.press("enter")
        await until(pilot, lambda: (out / "report.md").exists(), timeout=60)
        await app.workers.wait_for_complete()
        assert (out / "plan.json").exists()


@pilot_test
async def test_save_round_trips_through_planner_check(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    target = tmp_path / "saved" / "edited.yaml"
    async with app.run_test(size=(80, 24)) as pilot:
        await type_into(pilot, app, RATE, "5")
        await type_into(pilot, app, "traffic.classes[0].slo.ttft_ms", "250")
        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#dialog-input", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
    report = check_file(target)
    assert report.ok, report.problems
    saved = yaml.safe_load(target.read_text())
    assert saved["traffic"]["classes"][0]["rate"] == 5
    assert saved["traffic"]["classes"][0]["slo"]["ttft_ms"] == 250
    assert list(saved)[:3] == ["name", "description", "model"]  # schema order, not sorted


@pilot_test
async def test_picker_opens_a_file_and_remembers_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, None)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, PickerScreen)
        options = app.screen.query_one("#scenario-list", OptionList)
        listed = [str(options.get_option_at_index(i).id) for i in range(options.option_count)]
        assert any(p.endswith("hybrid-chat-batch.yaml") for p in listed)
        path_input = app.screen.query_one("#path-input", Input)
        path_input.focus()
        path_input.value = str(TINY)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert app.screen.sub_title == "tui-tiny (tui_tiny.yaml)"
        await pilot.press("q")
    assert app.recent.load() == [TINY.resolve()]
    again = make_app(tmp_path, None)
    async with again.run_test(size=(80, 24)):
        first = again.screen.query_one("#scenario-list", OptionList).get_option_at_index(0)
        assert first.id == str(TINY.resolve())


def test_tui_subcommand_is_registered() -> None:
    from planner.cli import build_parser

    args = build_parser().parse_args(["tui", str(TINY), "--requests", "300"])
    assert args.command == "tui" and args.requests == 300 and callable(args.func)
