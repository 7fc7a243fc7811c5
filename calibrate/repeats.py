"""Runs given twice: the same result record in one file or in two, and the same file or bundle named twice.

A record of a vLLM result describes one run; the same record twice (a JSON Lines file appended to
twice, a file copied beside its original, a folder given together with a file in it) is still that one
run, and counting it twice would weigh it double in a fit.  :class:`Repeats` follows what one
:func:`calibrate.importer.load_runs` call has read: records with the same content (the same keys and
values, in any order and spacing) after the first are dropped, and so are files and bundles read already;
each drop is said in a note naming the file and line.  Records that differ in anything are all kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calibrate.resultfields import spot_of

#: dropped records a note lists by place, per file (the rest as a count)
NOTE_PLACES = 5


def _content(obj: Any) -> str | None:
    """The record's content as one text (keys sorted); None where it cannot be written back (too deep)."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError):
        return None


class Repeats:
    """What one load has read so far (records, files, bundles), and notes on what it dropped."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[str, str]] = {}  # content -> (where, file) of its first record
        self._paths: dict[Path, str] = {}  # resolved file or bundle -> the path it was read by
        self._dropped: dict[str, list[str]] = {}  # file -> its dropped records, as "line 3 repeats line 1"
        self._files: list[str] = []  # files and bundles read twice: their notes, in order

    def first_time(self, path: Path) -> bool:
        """Whether the file or bundle ``path`` is new to this load (a note says so where it is not)."""
        try:
            key = path.resolve()
        except (OSError, RuntimeError):  # a link loop: the reader names the problem
            return True
        first = self._paths.get(key)
        if first is None:
            self._paths[key] = str(path)
            return True
        note = (f"{path}: given more than once; read once" if first == str(path) else
                f"{path}: the same {'bundle' if path.is_dir() else 'file'} as {first}; read once")
        if note not in self._files:
            self._files.append(note)
        return False

    def fresh(self, file: str, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """``items`` (``(where, record)`` of one file) less the records read before, in this file or another."""
        out = []
        for where, obj in items:
            content = _content(obj)
            if content is None or content not in self._records:
                if content is not None:
                    self._records[content] = (where, file)
                out.append((where, obj))
                continue
            first_where, first_file = self._records[content]
            spot, first_spot = spot_of(where, file), spot_of(first_where, first_file)
            if first_file != file:
                first_spot = f"{first_spot} of {first_file}" if first_spot else first_file
            self._dropped.setdefault(file, []).append(f"{spot} repeats {first_spot}" if spot else
                                                      f"repeats {first_spot}")
        return out

    def notes(self) -> list[str]:
        """One line per file that had records dropped, and per file or bundle read twice."""
        out = list(self._files)
        for file, parts in self._dropped.items():
            listed = ", ".join(parts[:NOTE_PLACES])
            more = f" (+{len(parts) - NOTE_PLACES} more)" if len(parts) > NOTE_PLACES else ""
            out.append(f"{file}: {listed}{more}; {'each ' if len(parts) > 1 else ''}imported once")
        return out
