"""Where a TUI session keeps things: bundled scenarios, the recent-files list, the data folder.

- Bundled scenarios are the ``*.yaml`` files of the ``scenarios`` package folder.
- Recent files live in ``recent.json`` under the config folder: ``$XDG_CONFIG_HOME/fleet-planner``
  (``~/.config/fleet-planner`` by default).
- Plan state files (resumable runs) and exported reports go under the data folder:
  ``$XDG_DATA_HOME/fleet-planner`` (``~/.local/share/fleet-planner`` by default).

Both folders can be given explicitly (the app's arguments), which is what the tests do.
"""

from __future__ import annotations

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
