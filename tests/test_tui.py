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
from textual.widgets import DataTable, Input, OptionList, TabbedContent

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


async def plan(pilot: Pilot[Any], app: FleetPlannerApp) -> SessionScreen:
    session = app.screen
    assert isinstance(session, SessionScreen)
    await pilot.press("p")
    await app.workers.wait_for_complete()
    await until(pilot, lambda: session.plan_outcome is not None)
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
async def test_cancel_a_long_simulation_stops_its_work(tmp_path: Path) -> None:
    # a million requests take tens of seconds on a CI machine; the cancel must end the work itself,
    # not just hide it (an abandoned simulation would keep a core busy and slow the next run)
    app = FleetPlannerApp(LONG, config=tmp_path / "config", data=tmp_path / "data", requests=1_000_000)
    async with app.run_test(size=(80, 24)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        await pilot.press("s")
        assert session.running == "simulate"
        assert "1,000,000 requests (Esc cancels)" in session.status.text
        name = f"tui-simulate-{session.run_id}"
        await until(pilot, lambda: any(t.name == name for t in threading.enumerate()))
        await asyncio.sleep(1.0)  # well into the run
        # Esc in a form field only leaves the field: editing while a run works must not cancel it
        session.query_one("#tabs", TabbedContent).active = "tab-scenario"
        field = session.form.input_for("fleet.pools[0].config")

        def focused() -> bool:
            if session.focused is not field:
                field.focus()  # again: on a busy machine the tab may not have been shown yet
            return session.focused is field

        await until(pilot, focused)
        assert session.running == "simulate"
        await pilot.press("escape")
        assert session.running == "simulate" and not isinstance(session.focused, Input)
        started = time.monotonic()
        await pilot.press("escape")
        assert session.running is None and session.status.text == "simulate cancelled"
        await until(pilot, lambda: not any(t.name == name for t in threading.enumerate()), timeout=5)
        assert time.monotonic() - started < 5
        await until(pilot, lambda: session.run_id in session.stopped_runs)
        assert session.sim_outcome is None
        assert session.query_one(ResultsView).outcome is None
        # the app goes on: a normal-sized simulation runs and shows its table
        session.requests = None
        await simulate(pilot, app)
        assert session.sim_outcome is not None and session.sim_outcome.requests == 3000
        assert session.query_one(ResultsView).cell("chat", "done") == "3,000"


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

    # a result the screen cannot show (say, a figure the planner stopped reporting) is no crash either
    monkeypatch.undo()
    monkeypatch.setattr(ResultsView, "show", boom)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        session = await simulate(pilot, app)
        assert session.status.text == "simulate finished, but its results cannot be shown"
        assert any("fell over" in n.message for n in app._notifications)
        assert app.is_running
        await pilot.press("2", "5", "1")  # the tabs still work
        assert session.query_one("#tabs", TabbedContent).active == "tab-scenario"


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
        table = compare.query_one("#compare-table", DataTable)
        shown = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert shown[: len(differing)] == differing  # what changed comes first
        assert len(shown) > len(differing)  # ... and what did not is still listed (batch TPOT, say)
        assert f"{len(differing)} of {len(shown)} figures differ" in str(compare.query_one("#compare-title").render())
        assert compare.pinned.metrics["$/hour"].value < compare.current.metrics["$/hour"].value  # type: ignore[operator]
        assert "traffic.classes[0].rate" in str(session.query_one("#compare-diff").render())

        # plan, then export the report as `planner plan --report` does
        await pilot.press("p")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: session.plan_outcome is not None)
        assert session.query_one("#tabs", TabbedContent).active == "tab-plan"
        assert list((tmp_path / "data" / "plans").glob("*.jsonl"))  # the resumable state file
        out = tmp_path / "data" / "reports" / "tui-tiny"  # the default: under the data folder
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one("#dialog-input", Input).value == str(out)
        await pilot.press("enter")
        await until(pilot, lambda: (out / "report.md").exists(), timeout=60)
        await app.workers.wait_for_complete()
        assert (out / "plan.json").exists()


@pilot_test
async def test_plan_notes_say_where_the_answer_is_less_sure(tmp_path: Path) -> None:
    """A fleet of a GPU without a calibrated profile, under a class-affinity map that names the only
    pool: the plan tab says both (uncalibrated step times; routing that changes nothing)."""
    data = yaml.safe_load(TINY.read_text())
    data["configs"] = [{"gpu": "L40S", "gpus": 1}]
    data["fleet"] = {"pools": [{"config": "1xL40S", "count": 1, "name": "l40s"}]}
    data["routing"] = {"type": "class_affinity", "affinity": {"chat": ["l40s"]}}
    data["plan"]["routing"] = ["class_affinity"]
    path = tmp_path / "l40s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    app = make_app(tmp_path, path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = await plan(pilot, app)
        notes = " ".join(str(session.query_one("#plan-notes").render()).split())
        assert "routed over the whole fleet" in notes
        assert "no calibrated profile for 1xL40S" in notes
        # the stress test of the recommended fleet (the scenario's plan.stress_pct, 10 by default)
        outcome = session.plan_outcome
        assert outcome is not None and outcome.result.stress is not None
        assert "stress test: with every engine step 10% slower than the profiles say, 1xL40S:" in notes
        verdict = "holds" if outcome.result.stress.feasible else "fails"
        assert outcome.metrics()["plan stress test"].value == f"{verdict} at +10% step time"


@pilot_test
async def test_a_result_keeps_the_scenario_its_run_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui.screens.jobs as jobs

    gate = threading.Event()
    real = jobs.run_simulation

    def held(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "run_simulation", held)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        gate.set()
        await simulate(pilot, app)
        await pilot.press("b")
        gate.clear()
        await pilot.press("s")  # a run of rate 3 ...
        session.form.input_for(RATE).value = "6"  # ... while the rate is edited (Esc would cancel the run)
        await pilot.pause()
        assert session.running == "simulate" and session.data["traffic"]["classes"][0]["rate"] == 6
        gate.set()
        await app.workers.wait_for_complete()
        await until(pilot, lambda: session.running is None)
        assert session.latest is not None and session.latest.data["traffic"]["classes"][0]["rate"] == 3
        compare = session.query_one(CompareView)
        assert compare.current is session.latest
        assert compare.differing() == []  # the same scenario, the same seed: the same numbers
        assert str(compare.query_one("#compare-diff").render()) == "same settings"
        await simulate(pilot, app)  # now with rate 6
        assert "traffic.classes[0].rate: 3.0 → 6" in str(compare.query_one("#compare-diff").render())
        assert "chat SLO attainment %" in compare.differing() or "chat TTFT p90 ms" in compare.differing()


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
    original = yaml.safe_load(TINY.read_text())
    assert list(saved) == list(original)  # the document as edited: its own keys and order, no defaults added
    original["traffic"]["classes"][0]["rate"] = 5
    original["traffic"]["classes"][0]["slo"]["ttft_ms"] = 250
    assert saved == original


@pilot_test
async def test_save_refuses_a_place_where_the_scenario_would_not_check(tmp_path: Path) -> None:
    """A scenario with a relative trace path cannot be saved to another folder (the trace is not there)."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "trace.csv").write_text("timestamp\n" + "".join(f"{i * 0.5}\n" for i in range(100)))
    data = yaml.safe_load(TINY.read_text())
    data["traffic"]["classes"][1]["arrival"] = {"type": "trace", "path": "trace.csv"}
    del data["traffic"]["classes"][1]["rate"]
    source = here / "traced.yaml"
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    assert check_file(source).ok
    elsewhere = tmp_path / "elsewhere" / "traced.yaml"
    same_folder = here / "traced-copy.yaml"
    app = make_app(tmp_path, source)
    async with app.run_test(size=(80, 24)) as pilot:
        for target in (elsewhere, same_folder):
            await pilot.press("w")
            await pilot.pause()
            app.screen.query_one("#dialog-input", Input).value = str(target)
            await pilot.press("enter")
            await pilot.pause()
        assert any("trace file not found" in n.message for n in app._notifications)
    assert not elsewhere.exists()
    assert check_file(same_folder).ok


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
    async with again.run_test(size=(80, 24)) as pilot:
        options = again.screen.query_one("#scenario-list", OptionList)
        assert options.get_option_at_index(0).id == str(TINY.resolve())
        ids = [str(options.get_option_at_index(i).id) for i in range(options.option_count)]
        target = next(i for i, p in enumerate(ids) if p.endswith("hybrid-chat-batch.yaml"))
        await pilot.press(*["down"] * target, "enter")
        await pilot.pause()
        assert isinstance(again.screen, SessionScreen)
        assert again.screen.path is not None and again.screen.path.name == "hybrid-chat-batch.yaml"
        assert again.screen.validation.ok
        await pilot.press("o")  # back to the picker, and Esc returns to the session
        assert isinstance(again.screen, PickerScreen)
        await pilot.press("escape")
        assert isinstance(again.screen, SessionScreen)


def test_tui_subcommand_is_registered() -> None:
    from planner.cli import build_parser

    args = build_parser().parse_args(["tui", str(TINY), "--requests", "300"])
    assert args.command == "tui" and args.requests == 300 and callable(args.func)


def test_hardware_menu_says_where_step_times_come_from() -> None:
    from tui.editing import validate
    from tui.screens.session import notes_for

    data = yaml.safe_load((ROOT / "scenarios" / "hybrid-chat-batch.yaml").read_text())
    data["configs"].append({"gpu": "H100-PCIe", "gpus": 4})
    menu = notes_for(validate(data, None))["Hardware menu"].splitlines()
    basis = {line.split(":")[0]: line.rsplit(", ", 1)[1] for line in menu}
    assert basis == {"1xH100-PCIe": "calibrated", "1xRTX-4090": "calibrated", "2xRTX-4090": "calibrated",
                     "1xL40S": "uncalibrated (roofline defaults)", "4xH100-PCIe": "profile derived from other TP sizes"}


@pilot_test
async def test_the_latency_plot_survives_a_resize(tmp_path: Path) -> None:
    # plotext's log scale raised inside its renderer when the plot redrew at another size, killing the app
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        session = await plan(pilot, app)
        await pilot.press("4")
        await pilot.pause()
        session.query_one("#plot-tabs", TabbedContent).active = "plot-latency"
        await pilot.pause()
        for size in ((80, 24), (120, 40), (99, 30), (100, 29)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await asyncio.sleep(0.2)
            assert app.is_running


@pilot_test
async def test_odd_input_is_a_notification_not_a_crash(tmp_path: Path) -> None:
    # a number beyond Python's 4300-digit limit, a save path of an unknown user or with a NUL character,
    # and a scenario whose classes share an SLO through a YAML alias (editing one had changed both)
    aliased = tmp_path / "alias.yaml"
    text = TINY.read_text().replace("slo: {ttft_ms: 500, tpot_ms: 60, percentile: 90}", "slo: &s {ttft_ms: 500}")
    aliased.write_text(text.replace("slo: {e2e_ms: 60000, percentile: 90}", "slo: *s"))
    app = make_app(tmp_path, aliased)
    async with app.run_test(size=(100, 30)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        await type_into(pilot, app, "traffic.classes[0].slo.ttft_ms", "123")
        classes = session.data["traffic"]["classes"]
        assert classes[0]["slo"]["ttft_ms"] == 123 and classes[1]["slo"]["ttft_ms"] == 500
        session.form.input_for("simulation.seed").value = "9" * 5000
        await pilot.pause()
        assert app.is_running and not session.validation.ok
        await type_into(pilot, app, "simulation.seed", "1")
        for target, why in (("~nosuchuser-fp/x.yaml", "~nosuchuser-fp"), ("/tmp/a\x00.yaml", "NUL character")):
            await pilot.press("w")
            await pilot.pause()
            app.screen.query_one("#dialog-input", Input).value = target
            await pilot.press("enter")
            await pilot.pause()
            assert app.is_running
            assert any(why in str(n.message) for n in app._notifications), [n.message for n in app._notifications]


def test_a_number_too_large_to_read_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(TINY.read_text().replace("seed: 1", "seed: " + "9" * 5000))
    report = check_file(path)
    assert not report.ok and "line" in report.problems[0] and "too large to read" in report.problems[0]


def notes(app: FleetPlannerApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pilot_test
async def test_save_export_open_and_plan_errors_name_the_path_and_the_reason(tmp_path: Path) -> None:
    # the OS says "File exists" when the folder of /dev/null/x.yaml cannot be made: the TUI says what is wrong
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        targets = [(afile / "x.yaml", f"{afile} is not a directory"), (tmp_path, f"{tmp_path} is a directory")]
        if Path("/dev/null").exists():
            targets.append((Path("/dev/null/x.yaml"), "/dev/null is not a directory"))
        for target, why in targets:
            await pilot.press("w")
            await pilot.pause()
            app.screen.query_one("#dialog-input", Input).value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            assert f"cannot save to {target}: {why}" in notes(app)
        # the report goes to a folder: a file in its way is named (write_report fails before it reads the plan)
        from tui.runs import PlanOutcome

        session.plan_outcome = PlanOutcome(None, "tui-tiny")
        for target in (afile / "report", afile):
            session.export_to(str(target))
            await app.workers.wait_for_complete()
            said = f"cannot export to {target}:"
            await until(pilot, lambda said=said: any(n.startswith(said) for n in notes(app)))
            assert f"{said} {afile} is not a directory" in notes(app), notes(app)
        await pilot.press("o")  # the picker: a typed path that is no scenario file says why
        assert isinstance(app.screen, PickerScreen)
        path_input = app.screen.query_one("#path-input", Input)
        for target, why in ((afile / "x.yaml", f"{afile} is not a directory"), (tmp_path, "is a directory")):
            path_input.focus()
            path_input.value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            assert any(n.startswith(f"cannot open {target}: ") and why in n for n in notes(app)), notes(app)
        assert app.is_running

    # a data folder that is a file: the plan's state file cannot be written, and the notification says why
    app = FleetPlannerApp(TINY, config=tmp_path / "config", data=afile)
    async with app.run_test(size=(100, 30)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        await pilot.press("p")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: session.running is None)
        assert session.status.text == "plan failed"
        assert any(f"{afile} is not a directory" in n for n in notes(app)), notes(app)


def test_os_errors_are_explained_with_the_path_at_fault(tmp_path: Path) -> None:
    import errno
    import os

    from scenarios.errors import ScenarioError
    from tui.editing import read_document
    from tui.paths import os_reason

    def err(cls: type[OSError], code: int, path: Path) -> OSError:
        return cls(code, os.strerror(code), str(path))

    new = tmp_path / "new.yaml"
    assert os_reason(new, err(PermissionError, errno.EACCES, new)) == f"no permission to write in {tmp_path}"
    new.write_text("x")
    assert os_reason(new, err(PermissionError, errno.EACCES, new)) == f"no permission to write {new}"
    assert os_reason(new, err(PermissionError, errno.EACCES, new), writing=False) == f"no permission to read {new}"
    deep = tmp_path / "a" / "b" / "c.yaml"
    assert os_reason(deep, err(FileNotFoundError, errno.ENOENT, deep)) == f"{tmp_path / 'a'} does not exist"
    assert os_reason(tmp_path, err(IsADirectoryError, errno.EISDIR, tmp_path)) == f"{tmp_path} is a directory"
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")  # a folder that was moved away: mkdir says "File exists"
    assert os_reason(link / "x.yaml", err(FileExistsError, errno.EEXIST, link)).startswith(f"{link} is a link to a")
    with pytest.raises(ScenarioError) as exc:
        read_document(new / "x.yaml")
    assert exc.value.problems == [f"{new / 'x.yaml'}: cannot read: {new} is not a directory"]


def test_huge_numbers_are_written_with_an_exponent() -> None:
    from scenarios.numbers import number
    from tui.runs import Metric
    from tui.widgets.compare import change

    # ordinary figures exactly as before
    assert number("${:,.2f}", 1234.5) == "$1,234.50" and number("{:+.1f}", -3.25) == "-3.2"
    assert number("{:,.0f}", 999_999_999_999.0) == "999,999,999,999"
    assert number("${:,.2f}", 1e308) == "$1e+308"
    assert number("{:+.1f}", 1.23456e15) == "+1.235e+15"
    assert number("{:,.0f}", 10**400) == "1e+400"  # an int beyond float range too
    assert Metric(1e308, "${:,.2f}").text() == "$1e+308"
    delta = change(Metric(1e308, "${:,.2f}"), Metric(1e306, "${:,.2f}"))
    assert str(delta) == "-$9.9e+307 (-99%)"
    assert str(change(Metric(1e-300, "{:,.1f}"), Metric(1.0, "{:,.1f}"))) == "+1.0 (+1e+302%)"


@pilot_test
async def test_a_huge_price_is_shown_with_an_exponent(tmp_path: Path) -> None:
    data = yaml.safe_load(TINY.read_text())
    data["pricing"] = {"overrides": {"RTX-4090": 1e308, "H100-PCIe": 1e300}}
    path = tmp_path / "pricey.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    app = make_app(tmp_path, path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        price = "pricing.overrides.RTX-4090"
        assert session.form.input_for(price).value == "1e+308"
        await simulate(pilot, app)
        economics = str(session.query_one("#economics").render())
        assert "cost $1e+308/h" in economics and len(economics) < 200
        pools = session.query_one("#pool-table", DataTable)
        rtx = next(pools.get_row_at(i) for i in range(pools.row_count) if pools.get_row_at(i)[0] == "rtx4090")
        assert str(rtx[6]) == "1e+308"
        assert session.sim_outcome is not None and session.sim_outcome.metrics()["$/hour"].text() == "$1e+308"
        await plan(pilot, app)
        table = session.query_one("#plan-table", DataTable)
        cells = [str(c) for i in range(table.row_count) for c in table.get_row_at(i)]
        assert "$1e+300" in cells and max(len(c) for c in cells) < 20, cells
        await pilot.press("4")
        session.query_one("#plot-tabs", TabbedContent).active = "plot-pareto"
        await pilot.pause()
        assert app.is_running


@pilot_test
async def test_a_class_without_requests_has_no_slo_verdict(tmp_path: Path) -> None:
    # at 1e-6 req/s beside chat's 3, batch gets none of the 300 requests: nothing to judge, not a FAIL
    data = yaml.safe_load(TINY.read_text())
    data["traffic"]["classes"][1]["rate"] = 1e-6
    path = tmp_path / "idle.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    app = make_app(tmp_path, path)
    async with app.run_test(size=(120, 40)) as pilot:
        session = await simulate(pilot, app)
        results = session.query_one(ResultsView)
        assert results.cell("batch", "done") == "0"
        assert results.cell("batch", "SLO") == "-" and results.cell("batch", "SLO ok") == "-"
        assert results.cell("ALL", "SLO") == results.cell("chat", "SLO") != "-"  # chat's verdict alone
        assert "batch" not in session.status.text.split("(")[0] and "no requests for batch" in session.status.text
        assert session.sim_outcome is not None
        metrics = session.sim_outcome.metrics()
        assert metrics["batch SLO"].text() == "-" and metrics["batch SLO attainment %"].text() == "-"


@pilot_test
async def test_a_fleet_that_does_not_keep_up_says_so_beside_its_figures(tmp_path: Path) -> None:
    """80 req/s of chat on one H100 and one 4090: the requests in the fleet grow by ~29% of the arrivals, which
    the figures of a short run understate; the results say so, as planner simulate does.  At the scenario's own
    load they say nothing of it."""
    data = yaml.safe_load(TINY.read_text())
    data["traffic"]["classes"][0]["rate"] = 80.0
    data["simulation"] = {"requests": 3000, "seed": 1}
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for scenario, grows in ((path, True), (TINY, False)):
        app = make_app(tmp_path, scenario)
        async with app.run_test(size=(120, 40)) as pilot:
            session = await simulate(pilot, app)
            economics = str(session.query_one("#economics").render())
            assert ("does not keep up with this load" in economics) == grows, economics
            assert session.sim_outcome is not None and bool(session.sim_outcome.notes) == grows


def test_a_stop_the_run_drops_is_raised_again() -> None:
    """A stop raised into a run's thread while it runs a garbage-collector callback or a finalizer is dropped
    there ("Exception ignored in ..."): the worker raises it again until the run ends (seen in CI: once a
    hypothesis gc callback took it, and only the plan's own progress check stopped the run)."""
    from tui.screens.jobs import STOP_WAIT_S, RunStopped, _stoppable

    inside = threading.Event()
    dropped: list[float] = []

    def run() -> None:
        try:
            inside.set()
            while True:
                pass
        except RunStopped:  # as a gc callback would: dropped, and the run goes on
            dropped.append(time.monotonic())
        n = 0
        while True:
            n += 1

    class Cancelled:
        @property
        def is_cancelled(self) -> bool:
            return inside.is_set()

    name = "test-stop-dropped"
    started = time.monotonic()
    assert _stoppable(Cancelled(), name, run) == {}  # type: ignore[arg-type]
    assert len(dropped) == 1
    assert not any(t.name == name for t in threading.enumerate())
    assert time.monotonic() - started < STOP_WAIT_S
