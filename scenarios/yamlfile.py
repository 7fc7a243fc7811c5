"""Reading a YAML file a user names beside a scenario (a profile file, a price list).

Every way such a read can fail (no such file, a folder, bytes that are not UTF-8, a YAML syntax error)
becomes one :class:`~scenarios.errors.FleetPlannerError` line that names the file, and for a syntax
error its line and column.  What the file must hold is its reader's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scenarios.errors import FleetPlannerError, yaml_problem


def read_yaml(path: Path, prefix: str) -> Any:
    """The parsed document; a failure raises ``{prefix}{why}`` (``prefix`` names the file)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetPlannerError(f"{prefix}file not found") from None
    except UnicodeDecodeError as exc:
        raise FleetPlannerError(f"{prefix}not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise FleetPlannerError(f"{prefix}{yaml_problem(exc)}") from None
    except OSError as exc:
        raise FleetPlannerError(f"{prefix}{exc.strerror or exc}") from None
