"""``flowenv diff``: what changed in the lock files between two git revisions, for review."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from flowenv.errors import EXIT_CHECK_FAILED, EXIT_OK

# Literal here, not imported from flowenv.diff.render: every command module is
# imported to build the parser, and `lock --check` must stay fast.
_FORMATS = ("text", "markdown", "json")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "diff",
        help="show lock changes between two git revisions",
        description=(
            "Compare lock files between git revisions: HEAD and the working tree by default, "
            "REV and the working tree, or REV and REV2. Leading arguments that name commits are "
            "revisions; the rest are environments to restrict the report to."
        ),
    )
    parser.add_argument(
        "arguments",
        nargs="*",
        metavar="[REV [REV2]] [ENV ...]",
        help="revisions, then environments (default: HEAD, every environment)",
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="text",
        help="text (aligned, for a terminal), markdown (a PR comment), json (tools)",
    )
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when there are changes, like git diff --exit-code",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour text output (auto: on a terminal unless NO_COLOR is set)",
    )
    parser.set_defaults(run=run)


def use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def run(args: argparse.Namespace) -> int:
    from flowenv.config.discover import discover_config
    from flowenv.diff import diff_project
    from flowenv.diff.render import render

    config_path = discover_config(start=args.directory, explicit=args.config)
    diff = diff_project(config_path, args.arguments)
    sys.stdout.write(render(diff, args.format, color=use_color(args.color)))
    return EXIT_CHECK_FAILED if args.exit_code and diff else EXIT_OK
