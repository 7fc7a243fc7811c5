"""Where a TUI session keeps things: bundled scenarios, the recent-files list, the data folder.

- Bundled scenarios are the ``*.yaml`` files of the ``scenarios`` package folder.
- Recent files live in ``recent.json`` under the config folder: ``$XDG_CONFIG_HOME/fleet-planner``
  (``~/.config/fleet-planner`` by default).
- Plan state files (resumable runs) and exported reports go under the data folder:
  ``$XDG_DATA_HOME/fleet-planner`` (``~/.local/share/fleet-planner`` by default).

Both folders can be given explicitly (the app's arguments), which is what the tests do.

:func:`os_reason` says why a file could not be read or written, naming the path at fault: the OS's own
text can mislead (creating the folder of ``/dev/null/x.yaml`` fails with "File exists").
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

import scenarios
from scenarios.yamlfile import safe_load

#: most recent files remembered
MAX_RECENT = 10


def config_dir(explicit: Path | None = None) -> Path:
    """Folder of the recent-files list."""
    if explicit is not None:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fleet-planner"


def data_dir(explicit: Path | None = None) -> Path:
    """Folder of plan state files and exported reports."""
    if explicit is not None:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleet-planner"


def bundled_dir() -> Path:
    return Path(scenarios.__file__).parent


@dataclass(frozen=True)
class ScenarioFile:
    """A scenario file offered by the picker."""

    path: Path
    title: str
    """The scenario's ``name:`` (or the file name when it cannot be read)."""
    description: str


def describe(path: Path) -> ScenarioFile:
    """Name and first line of the description of a scenario file, never raising."""
    try:
        data = safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    if not isinstance(data, dict):
        return ScenarioFile(path, path.stem, "")
    desc = " ".join(str(data.get("description") or "").split())
    return ScenarioFile(path, str(data.get("name") or path.stem), desc)


def bundled_scenarios() -> list[ScenarioFile]:
    """The YAML files shipped in the ``scenarios`` package, by file name."""
    return [describe(p) for p in sorted(bundled_dir().glob("*.yaml"))]


def state_file(data: Path, scenario: Path | None, name: str) -> Path:
    """Plan state file of a scenario (one per file; its runs are keyed by the scenario's content)."""
    where = str(scenario.resolve()) if scenario else name
    digest = hashlib.sha256(where.encode()).hexdigest()[:8]
    return data / "plans" / f"plan-{name}-{digest}.jsonl"


class RecentFiles:
    """The recent-files list: a small JSON document ``{"recent": [absolute paths, newest first]}``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "recent.json"

    def load(self) -> list[Path]:
        """Remembered files that still exist; an unreadable list counts as empty."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        items = data.get("recent", []) if isinstance(data, dict) else []
        return [Path(p) for p in items if isinstance(p, str) and Path(p).is_file()][:MAX_RECENT]

    def add(self, path: Path) -> None:
        """Put ``path`` first; failures to write are ignored (a read-only home is no error)."""
        p = path.resolve()
        items = [p, *(q for q in self.load() if q.resolve() != p)][:MAX_RECENT]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"recent": [str(q) for q in items]}, indent=2) + "\n")
        except OSError:
            pass


def typed_path(text: str) -> Path | str:
    """The path a user typed (``~`` and ``~user`` expanded), or why it is not one: an unknown user, a NUL
    character (which no file name can hold)."""
    if "\0" in text:
        return "a path cannot hold a NUL character"
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # ~nosuchuser
        return f"{text.split('/', 1)[0]}: {exc}"


def _on_the_way(path: Path, itself: bool) -> list[Path]:
    """``path`` (when ``itself``) and its folders, nearest first."""
    return ([path] if itself else []) + list(path.parents)


def _nearest(path: Path, itself: bool = False) -> Path | None:
    """The nearest of ``path`` (when ``itself``) and its folders that exists."""
    return next((p for p in _on_the_way(path, itself) if os.path.exists(p)), None)


def not_a_folder(path: Path, itself: bool = False) -> Path | None:
    """The file that stands where a folder on the way to ``path`` should be (``/dev/null`` of
    ``/dev/null/x.yaml``); with ``itself``, ``path`` too must be a folder.  ``None`` if there is none."""
    near = _nearest(path, itself)
    return near if near is not None and not os.path.isdir(near) else None


def os_reason(path: Path, exc: OSError, *, writing: bool = True, folder: bool = False) -> str:
    """Why reading or writing the file ``path`` (a folder to write into, with ``folder``) failed with
    ``exc``, in words that name the path at fault: a file where a folder should be, a folder where a
    file should be, no permission, a broken link, a missing file or folder, else the OS's own text."""
    failed = Path(os.fsdecode(exc.filename)) if isinstance(exc.filename, (str, bytes)) else path
    for where, itself in ((path, folder), (failed, False)):
        if (blocker := not_a_folder(where, itself)) is not None:
            return f"{blocker} is not a directory"
    if isinstance(exc, IsADirectoryError):
        return f"{failed} is a directory"
    if not folder and os.path.isdir(path):
        return f"{path} is a directory"
    if isinstance(exc, PermissionError):
        if not writing:
            return f"no permission to read {failed}"
        if os.path.exists(failed):
            return f"no permission to write {failed}"
        return f"no permission to write in {_nearest(failed) or failed.parent}"
    dangling = (p for p in _on_the_way(failed, True) if os.path.islink(p) and not os.path.exists(p))
    if (link := next(dangling, None)) is not None:
        return f"{link} is a link to a path that does not exist"
    why = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        missing = [p for p in _on_the_way(failed, True) if not os.path.exists(p)]
        return f"{missing[-1]} does not exist" if missing else why
    return why if failed == path else f"{failed}: {why}"


def os_error_text(exc: OSError) -> str:
    """An OS error as ``file: reason`` (:func:`os_reason`), for errors of runs that may have been reading
    or writing; the OS's own text when it names no file."""
    if not isinstance(exc.filename, (str, bytes)):
        return exc.strerror or str(exc) or type(exc).__name__
    path = Path(os.fsdecode(exc.filename))
    return f"{path}: {'permission denied' if isinstance(exc, PermissionError) else os_reason(path, exc)}"


def not_a_file(path: Path) -> str:
    """Why ``path`` is no file to open: a folder, a special file, or (:func:`os_reason`) missing."""
    if os.path.exists(path):
        return f"{path} is a directory" if os.path.isdir(path) else f"{path} is not a regular file"
    missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    return os_reason(path, missing, writing=False)
