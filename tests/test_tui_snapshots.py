"""Snapshot tests of the TUI's main screens at 80×24 and 120×40 (pytest-textual-snapshot).

Deterministic by construction: the tiny fixture scenario (fixed seed, 300 requests, a plan of at
most 2 replicas with one seed), config and data folders in ``tmp_path`` (no recent files, a fresh
plan state), and nothing on screen that depends on the clock or the checkout's location.
Regenerate after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and review the SVGs under ``tests/__snapshots__/test_tui_snapshots/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from tui.app import FleetPlannerApp

TINY = ROOT / "tests" / "fixtures" / "tui_tiny.yaml"
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def app_for(tmp_path: Path, scenario: Path | None = TINY) -> FleetPlannerApp:
    return FleetPlannerApp(scenario, config=tmp_path / "config", data=tmp_path / "data")


async def _run(pilot: Any, key: str) -> None:
    await pilot.press(key)
    await pilot.app.workers.wait_for_complete()
    for _ in range(100):  # the worker's last message may still be on its way
        if not pilot.app.screen.running:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def _close_toasts(pilot: Any) -> None:
    pilot.app.clear_notifications()


@pytest.mark.parametrize("size", SIZES)
def test_picker(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(tmp_path, None), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_scenario_form(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(tmp_path), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_form_with_an_error(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def edit(pilot: Any) -> None:
        field = pilot.app.screen.form.input_for("traffic.classes[0].rate")
        field.value = "-3"
        await pilot.pause()
        pilot.app.screen.form.scroll_to_widget(field, animate=False)
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=edit)


@pytest.mark.parametrize("size", SIZES)
def test_results(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await _run(pilot, "s")

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_plan(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await _run(pilot, "p")

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=run)


@pytest.mark.parametrize(
    ("plot", "size"),
    [
        pytest.param("plot-queue", (80, 24), id="queue-80x24"),
        pytest.param("plot-queue", (120, 40), id="queue-120x40"),
        pytest.param("plot-latency", (80, 24), id="latency-80x24"),
        pytest.param("plot-latency", (120, 40), id="latency-120x40"),
        pytest.param("plot-pareto", (80, 24), id="pareto-80x24"),
        pytest.param("plot-pareto", (120, 40), id="pareto-120x40"),
    ],
)
def test_plots(snap_compare: Any, tmp_path: Path, plot: str, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await _run(pilot, "s" if plot == "plot-queue" else "p")
        await pilot.press("4")
        pilot.app.screen.query_one("#plot-tabs").active = plot
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def run(pilot: Any) -> None:
        await _run(pilot, "s")
        await pilot.press("b")
        form = pilot.app.screen.form
        form.input_for("traffic.classes[0].rate").value = "4.5"
        form.input_for("pricing.overrides.RTX-4090").value = "0.9"
        await pilot.pause()
        await _run(pilot, "s")
        await pilot.press("5")
        _close_toasts(pilot)
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_save_dialog(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def ask(pilot: Any) -> None:
        await pilot.press("w")
        await pilot.pause()

    # the dialog proposes the scenario's own path: open it relative to its folder, so that the
    # snapshot does not depend on where the checkout lives
    monkeypatch.chdir(TINY.parent)
    assert snap_compare(app_for(tmp_path, Path(TINY.name)), terminal_size=size, run_before=ask)
