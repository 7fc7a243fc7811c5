"""``planner tui``: interactive planning sessions in the terminal (a Textual app).

The app lives in the :mod:`tui` package, which depends on the planner; it is imported only when
the command runs, so the rest of ``planner`` never imports it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError

EPILOG = """\
examples:
  planner tui                                   # pick a bundled or recent scenario
  planner tui scenarios/hybrid-chat-batch.yaml
  planner tui my.yaml --requests 2000           # shorter simulations while exploring

Keys: s simulate, p plan, Esc cancel a run (or leave a field), b pin a result for comparison,
w save the scenario, e export the plan report, o open another scenario, 1-5 tabs, q quit.
Recent files are kept in $XDG_CONFIG_HOME/fleet-planner/recent.json (~/.config by default);
plan state files and reports go under $XDG_DATA_HOME/fleet-planner (~/.local/share by default).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tui",
        help="interactive planning session in the terminal: edit, simulate, plan, compare",
        description="Open a scenario in an interactive terminal UI (edit, simulate, plan, compare, save).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", nargs="?", metavar="FILE", help="scenario YAML file (default: choose in the app)")
    p.add_argument("--requests", type=int, metavar="N", help="requests per simulation (overrides the scenario)")
    p.add_argument("--config-dir", metavar="DIR", help="folder of recent.json (default: XDG config)")
    p.add_argument("--data-dir", metavar="DIR", help="folder of plan state and reports (default: XDG data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.requests is not None and args.requests < 1:
        raise FleetPlannerError(f"--requests(={args.requests}) must be >= 1")
    refuse_empty_paths([("FILE", args.scenario, "a scenario .yaml file (or leave it out to choose in the app)"),
                        ("--config-dir", args.config_dir, "a folder for recent.json"),
                        ("--data-dir", args.data_dir, "a folder for plan state and reports")])
    if args.scenario is not None and not Path(args.scenario).is_file():
        raise FleetPlannerError(f"{args.scenario}: file not found")
    from tui.app import FleetPlannerApp

    app = FleetPlannerApp(
        Path(args.scenario) if args.scenario else None,
        config=Path(args.config_dir) if args.config_dir else None,
        data=Path(args.data_dir) if args.data_dir else None,
        requests=args.requests,
    )
    app.run()
    return int(app.return_code or 0)
