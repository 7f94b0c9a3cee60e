"""``flowenv show``: each step's effective, merged spec and the lock it uses."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flowenv.cli.common import config_from_args
from flowenv.errors import UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser("show", help="show each step's effective environment and its lock",
                            description="Show each step's effective (merged) environment.")
    parser.add_argument("steps", nargs="*", metavar="STEP", help="steps to show (default: all declared)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flowenv.show import describe_steps

    config = config_from_args(args)
    try:
        described = describe_steps(config, tuple(args.steps))
    except KeyError as exc:
        raise UsageError(f"no step named {exc}") from None
    if args.json:
        print(json.dumps(described, indent=2, sort_keys=True))
        return 0
    for step in described["steps"]:
        env = step["env"]
        if env is None:
            print(f"{step['step']}: disabled (system environment, no lock)")
            continue
        print(f"{step['step']}: env {env['name']} ({env['kind']}, python {env['python']})")
        for req in env["pypi"]:
            print(f"    pypi   {req}")
        for req in env["conda"]:
            print(f"    conda  {req}")
        for platform, path in sorted(env["locks"].items()):
            print(f"    lock   {platform}: {path} ({env['lock-status'][platform]})")
    return 0
