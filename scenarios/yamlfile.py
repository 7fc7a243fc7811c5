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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, whose integers beyond Python's int-string limit (4300 digits) are a YAML
    error with their position rather than a bare ValueError."""


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, f"an integer of {len(node.value):,} characters is too "
                                                "large to read", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def safe_load(text: str) -> Any:
    """``yaml.safe_load``, but a number too large to read is a :class:`yaml.YAMLError` with its line."""
    return yaml.load(text, Loader=_Loader)


def unshared(data: Any) -> Any:
    """``data`` with every mapping and list copied where it occurs: YAML aliases (``*anchor``) become
    separate values, so editing one occurrence leaves the others as written."""
    if isinstance(data, dict):
        return {k: unshared(v) for k, v in data.items()}
    if isinstance(data, list):
        return [unshared(v) for v in data]
    return data


def read_yaml(path: Path, prefix: str) -> Any:
    """The parsed document; a failure raises ``{prefix}{why}`` (``prefix`` names the file)."""
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetPlannerError(f"{prefix}file not found") from None
    except UnicodeDecodeError as exc:
        raise FleetPlannerError(f"{prefix}not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise FleetPlannerError(f"{prefix}{yaml_problem(exc)}") from None
    except OSError as exc:
        raise FleetPlannerError(f"{prefix}{exc.strerror or exc}") from None
