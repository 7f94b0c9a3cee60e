"""``flowenv show``: each step's effective, merged spec and the lock it uses."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flowenv.cli.common import config_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "show",
        help="show each step's effective environment and its lock",
        description="Show each step's effective (merged) environment.",
    )
    parser.add_argument(
        "steps", nargs="*", metavar="STEP", help="steps to show (default: all declared)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--conflicts",
        action="store_true",
        help="list packages locked at different versions in different envs, per platform "
        "(objects pickled in one step may not load in another)",
    )
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help="with --conflicts: exit 1 when any package differs or any lock was not compared",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.conflicts:
        return _conflicts(args)
    from flowenv.show import describe_steps, render_text

    described = describe_steps(config_from_args(args), tuple(args.steps))
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
    else:
        sys.stdout.write(render_text(described))
    return 0


def _conflicts(args: argparse.Namespace) -> int:
    from flowenv.conflicts import find_conflicts, render_conflicts

    report = find_conflicts(config_from_args(args))
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_conflicts(report))
    # A gate that could not look must not pass: an uncompared lock fails it too.
    return 1 if args.exit_code and (report.conflicts or report.unchecked) else 0
