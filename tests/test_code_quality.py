"""The code base stays clean under the linters configured in pyproject.toml (ruff, mypy)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install '.[test]')")
def test_ruff_is_clean() -> None:
    proc = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sim_never_imports_planner_or_tui() -> None:
    """Data flows one way: sim must not depend on planner or tui; nothing imports tui.

    The one exception is ``planner/commands/tui.py``, the ``planner tui`` command, which imports
    the app lazily inside the function that runs it.
    """
    offenders = []
    for pkg in ("sim", "scenarios", "calibrate", "planner"):
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text()
            rel = path.relative_to(ROOT).as_posix()
            banned = [] if rel == "planner/commands/tui.py" else ["import tui", "from tui"]
            if pkg in ("sim", "scenarios"):
                banned += ["import planner", "from planner"]
            if pkg == "scenarios":
                banned += ["import sim", "from sim"]
            offenders += [f"{path.relative_to(ROOT)}: {b}" for b in banned if b in text]
    assert offenders == []
