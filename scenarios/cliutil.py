"""Shared plumbing for the ``planner`` and ``calibrate`` console commands.

Each command is a set of sub-command modules; every module exposes ``register(subparsers)`` which
adds its parser and sets ``func`` to a callable taking the parsed namespace and returning an exit
status.  :func:`run_cli` builds the parser, dispatches, and turns
:class:`~scenarios.errors.FleetPlannerError` into ``error: ...`` on stderr with exit status 2, so bad
input never shows a traceback.  :func:`refuse_empty_paths` is the commands' check that no path option was
given as an empty string (which would otherwise read as "not given" or as the current folder).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence

from scenarios.errors import FleetPlannerError


def build_parser(
    prog: str, description: str, package: str, commands: Sequence[str]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        module = importlib.import_module(f"{package}.{name}")
        module.register(sub)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FleetPlannerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `planner check --json f.yaml | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


#: a path option's value as parsed: a string, a list of them (``action="append"``, ``nargs``), or None
PathValue = str | Sequence[str] | None


def refuse_empty_paths(options: Iterable[tuple[str, PathValue, str]]) -> None:
    """Each ``(flag, value, expected)`` whose value is given (not None) but empty or blank is an error
    ``flag: empty path; expected <expected>``; in a list, any empty item is.  Pass values as typed:
    ``Path("")`` is already ``.``, so an option read with ``type=Path`` cannot be checked."""
    for flag, value, expected in options:
        values = [value] if value is None or isinstance(value, str) else list(value)
        if any(v is not None and not str(v).strip() for v in values):
            raise FleetPlannerError(f"{flag}: empty path; expected {expected}")
