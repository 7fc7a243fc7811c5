"""Shared plumbing for the ``planner`` and ``calibrate`` console commands.

Each command is a set of sub-command modules; every module exposes ``register(subparsers)`` which
adds its parser and sets ``func`` to a callable taking the parsed namespace and returning an exit
status.  :func:`run_cli` builds the parser, dispatches, and turns
:class:`~scenarios.errors.FleetPlannerError` into ``error: ...`` on stderr with exit status 2, so bad
input never shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

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
