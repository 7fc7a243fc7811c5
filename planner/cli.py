"""The ``planner`` command: check scenarios, simulate fleets, plan them (and validate, browse in a TUI).

Each sub-command lives in its own module under :mod:`planner.commands` and exposes
``register(subparsers)``; :mod:`scenarios.cliutil` wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scenarios.cliutil import build_parser as _build
from scenarios.cliutil import run_cli

#: sub-command modules, in the order ``planner --help`` lists them
COMMANDS = ("check", "simulate", "plan", "tui", "validate")

DESCRIPTION = """\
fleet-planner: capacity planning for hybrid LLM inference fleets (H100 + RTX 4090 ...).

A scenario file (YAML) describes the served model, the traffic classes with their SLOs, the
hardware menu and the fleet.  Typical session:

  planner check scenarios/hybrid-chat-batch.yaml        # validate, print every problem
  planner simulate scenarios/paper-14b.yaml --requests 5000
  planner simulate scenarios/paper-14b.yaml --fleet 1xH100-PCIe:2,2xRTX-4090:3 --json out.json
  planner plan scenarios/hybrid-chat-batch.yaml         # cheapest fleet meeting every class's SLOs
  planner plan scenarios/paper-14b.yaml --objective pareto --report out/plan

Run `planner COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    return _build("planner", DESCRIPTION, "planner.commands", COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
