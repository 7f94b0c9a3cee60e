"""``flowenv hydrate``: build an env from the store, offline; works without a flowenv.toml."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_hydrate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "env",
        metavar="ENV",
        help="environment name, or a step name (hydrates the environment the step runs in)",
    )
    parser.add_argument(
        "-p", "--platform", default="auto", metavar="P", help="platform (default: auto)"
    )
    parser.add_argument(
        "--store", metavar="URL", help="store URL (default: $FLOWENV_STORE, else project.store)"
    )
    parser.add_argument(
        "--project",
        metavar="NAME",
        help="project name (default: the configuration's, else $FLOWENV_PROJECT)",
    )
    parser.add_argument(
        "--env-id",
        metavar="ID",
        help="build exactly this env id (as `flowenv sync` prints it) instead of the one the "
        "local lock or the store's alias names; ENV is then only a label",
    )
    parser.add_argument(
        "--tag",
        metavar="NAME",
        help="build the env id tagged NAME (`flowenv store tag ENV NAME`) instead of the one "
        "the local lock or the store's alias names",
    )
    parser.add_argument(
        "--prefix",
        type=Path,
        metavar="DIR",
        help="build the env in DIR (default: in the cache, by env id)",
    )
    parser.add_argument(
        "--ignore-system-requirements",
        action="store_true",
        help="build even if this machine lacks the env's cuda/glibc/macos requirements "
        "(a builder without the GPU the env runs on; also $FLOWENV_IGNORE_SYSTEM_REQUIREMENTS=1)",
    )


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "hydrate",
        help="build an environment from the store alone (on an executor)",
        description="Download and verify every artifact of ENV from the store, then build it "
        "offline. Prints the interpreter path.",
    )
    add_hydrate_options(parser)
    parser.add_argument(
        "--json", action="store_true", help="print env id, prefix, python... as JSON"
    )
    parser.set_defaults(run=run)


def optional_config(args: argparse.Namespace) -> Any:
    """The project's configuration, or None when there is none (an executor with only a store)."""
    from flowenv.config.discover import discover_config
    from flowenv.config.load import load_config
    from flowenv.errors import ConfigError

    if args.config is None:
        try:
            path = discover_config(start=args.directory)
        except ConfigError:
            return None
    else:
        path = discover_config(start=args.directory, explicit=args.config)
    from flowenv.lockfiles.recorded_sources import recorded_source_hash

    # From the store alone: an executor's checkout may lack local package sources.
    return load_config(path, missing_source=recorded_source_hash)


def hydrate_from_args(args: argparse.Namespace) -> Any:
    from flowenv.hydrate import hydrate

    env = hydrate(
        optional_config(args),
        args.env,
        platform=args.platform,
        store_url=args.store,
        prefix=args.prefix,
        project=args.project,
        env_id=args.env_id,
        tag=args.tag,
        ignore_system_requirements=args.ignore_system_requirements,
    )
    if env.env != args.env and args.env_id is None and not args.quiet:
        # A step name (or a typo of an env name, which runs in base like any undeclared step).
        print(f"flowenv: step '{args.env}' runs in env '{env.env}'", file=sys.stderr)
    return env


def run(args: argparse.Namespace) -> int:
    env = hydrate_from_args(args)
    print(json.dumps(env.to_dict(), indent=1, sort_keys=True) if args.json else env.python)
    return 0
