"""Output paths of the commands (``planner``'s and ``calibrate``'s), checked before the work rather than after it.

A simulation, a replay, a search or a fit may run for minutes; a path its results cannot be written to (a
folder where a file should be, a folder that does not exist or cannot be created, a file where a folder
should be) is named at once with its option, and a write that fails all the same is one line, not a
traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from scenarios.errors import FleetPlannerError


def check_output_file(flag: str, path: str | Path | None, *, what: str = "a file",
                      create_folder: bool = False) -> None:
    """``path`` (None or ``-``: nothing, or stdout) can be written as a file: ``what`` names it in the
    message when ``path`` is a folder; its folder must exist, or is created with ``create_folder``."""
    if path is None or str(path) in ("", "-"):
        return
    p = Path(path)
    if p.is_dir():
        raise FleetPlannerError(f"{flag} {path}: is a folder; name {what} to write")
    if create_folder:
        check_output_folder(f"{flag} {path}", p.parent)
    elif not p.parent.is_dir():
        state = "is not a folder" if p.parent.exists() else "does not exist"
        raise FleetPlannerError(f"{flag} {path}: folder {p.parent} {state}")
    if not os.access(p.parent, os.W_OK):
        raise FleetPlannerError(f"{flag} {path}: folder {p.parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise FleetPlannerError(f"{flag} {path}: not writable")
    try:  # a folder that takes no new file although access() says it may (a read-only mount, /proc as root)
        fd, trial = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        os.close(fd)
        os.unlink(trial)
    except OSError as exc:
        raise FleetPlannerError(f"{flag} {path}: cannot write in folder {p.parent}: {exc.strerror or exc}") from None


def check_output_folder(flag: str, folder: Path) -> None:
    """``folder`` exists as a folder (created where missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FleetPlannerError(f"{flag}: cannot create folder {folder}: {exc.strerror or exc}") from None


def write_output(flag: str, path: str | Path, text: str | Callable[[TextIO], object]) -> None:
    """Write ``text`` to ``path`` (``-``: stdout), or let ``text(stream)`` write it there (a large table
    streams to the file rather than being built in memory first); a failure is an error naming the option."""
    try:
        if str(path) == "-":
            _write(sys.stdout, text)
            return
        with open(path, "w", encoding="utf-8") as stream:
            _write(stream, text)
    except OSError as exc:
        raise FleetPlannerError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None


def _write(stream: TextIO, text: str | Callable[[TextIO], object]) -> None:
    if isinstance(text, str):
        stream.write(text)
    else:
        text(stream)
