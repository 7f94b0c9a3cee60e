"""``flowenv run ENV -- CMD...``: hydrate ENV (or reuse it) and run CMD inside it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from flowenv.cli.hydrate_cmd import add_hydrate_options, hydrate_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run a command inside a hydrated environment",
        description="Hydrate ENV from the store (reusing it when already built), then replace this "
        "process with CMD, its PATH starting with the env's bin directory.",
    )
    add_hydrate_options(parser)
    parser.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command to run"
    )
    parser.set_defaults(run=run)


class _LateOptions(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from flowenv.errors import UsageError

        raise UsageError(message)


def run(args: argparse.Namespace) -> int:
    from flowenv.errors import UsageError
    from flowenv.hydrate import command_env

    # argparse hands everything after ENV to the remainder, options included:
    # parse those up to "--" here, so `run ENV --store URL -- CMD` works too.
    tokens = list(args.cmd)
    split = tokens.index("--") if "--" in tokens else None
    if split is None:
        raise UsageError("no command: flowenv run ENV [OPTIONS] -- CMD...")
    if split:
        late = _LateOptions(prog="flowenv run ENV", add_help=False, exit_on_error=False)
        for option in ("--platform", "--store", "--project", "--env-id", "--tag", "--prefix"):
            late.add_argument(option, default=argparse.SUPPRESS)
        try:
            parsed = late.parse_args(tokens[:split])
        except argparse.ArgumentError as exc:
            raise UsageError(str(exc)) from None
        for name, value in vars(parsed).items():
            setattr(args, name, Path(value) if name == "prefix" else value)
    cmd = tokens[split + 1 :]
    if not cmd:
        raise UsageError("no command: flowenv run ENV [OPTIONS] -- CMD...")
    env = hydrate_from_args(args)
    environ = command_env(env)
    if cmd[0] == "python":
        cmd = [str(env.python), *cmd[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # exec, not a child: signals and the exit status belong to CMD.
        os.execvpe(cmd[0], cmd, environ)
    except OSError as exc:
        raise UsageError(f"cannot run {cmd[0]}: {exc.strerror}") from None
