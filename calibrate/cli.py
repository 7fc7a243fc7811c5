"""The ``calibrate`` command: measure a real vLLM server, import results, fit profiles.

Each sub-command lives in its own module under :mod:`calibrate.commands` and exposes
``register(subparsers)``; :mod:`scenarios.cliutil` wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scenarios.cliutil import build_parser as _build
from scenarios.cliutil import run_cli

#: sub-command modules, in the order ``calibrate --help`` lists them
COMMANDS = ("run", "import_", "fit", "show")

DESCRIPTION = """\
calibrate: turn real vLLM measurements into service-time profiles for the simulator.

On a GPU host (pip install "fleet-planner[gpu]"):
  calibrate run --model /path/to/model --tp 2 --out bundle/     # serve, sweep load, sample power

Run `calibrate COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    return _build("calibrate", DESCRIPTION, "calibrate.commands", COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
