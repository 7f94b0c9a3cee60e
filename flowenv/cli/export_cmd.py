"""``flowenv export``: one env × platform lock as requirements.txt, @EXPLICIT or environment.yml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowenv.cli.common import config_from_args
from flowenv.errors import UsageError

_FORMATS = ("requirements", "explicit", "environment-yml")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="export a lock as requirements.txt, a conda @EXPLICIT list or environment.yml",
        description="Write one environment's lock for one platform in another tool's format.",
    )
    parser.add_argument("env", metavar="ENV", help="the environment to export")
    parser.add_argument(
        "-p", "--platform", metavar="P", help="the platform (default: the project's only platform)"
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="requirements",
        help="requirements (pip-tools style, with --hash), explicit (conda), environment-yml",
    )
    parser.add_argument(
        "--category",
        action="append",
        metavar="NAME",
        help="a conda-lock category to include beside main (repeatable), as conda-lock renders",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here, not to stdout"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flowenv._atomic import write_atomic
    from flowenv.export import export, export_target
    from flowenv.lockfiles.layout import is_fresh

    config = config_from_args(args)
    platform = args.platform
    if platform is None:
        if len(config.project.platforms) != 1:
            raise UsageError(
                f"--platform is required: the project locks {', '.join(config.project.platforms)}"
            )
        platform = config.project.platforms[0]
    text = export(config, args.env, platform, args.format, tuple(args.category or ("main",)))
    target = export_target(config, args.env, platform)
    if not is_fresh(target) and not args.quiet:
        print(
            f"flowenv: warning: the lock of {target.label} is stale; exported as it is "
            "(run `flowenv lock` to update it)",
            file=sys.stderr,
        )
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.output, text)
    return 0
