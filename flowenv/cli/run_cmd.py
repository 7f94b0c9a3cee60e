"""``flowenv run ENV -- CMD...``: hydrate ENV (or reuse it) and run CMD inside it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from flowenv.cli.hydrate_cmd import add_hydrate_options, hydrate_from_args
from flowenv.cli.parser import add_global_options


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


USAGE = "flowenv run ENV [OPTIONS] -- CMD..."


class _LateOptions(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from flowenv.errors import UsageError

        raise UsageError(message)


def split_command(args: argparse.Namespace) -> tuple[argparse.Namespace, list[str]]:
    """``args`` with the options given after ENV applied, and the command to run.

    argparse drops a ``--`` that directly follows ENV (``run ENV -- CMD``) but
    keeps it after options (``run ENV --store URL -- CMD``): a remainder that
    starts with an option holds options up to ``--``; any other remainder is
    the command itself (``run ENV CMD`` works too).
    """
    from flowenv.errors import UsageError

    tokens = list(args.cmd)
    if not tokens or not tokens[0].startswith("-"):
        return args, tokens
    if "--" not in tokens:
        raise UsageError(f"no command: {USAGE}")
    split = tokens.index("--")
    # The same options as before ENV (hydrate's), parsed from what follows it; only
    # those given there are applied, so options given before ENV stay.
    late = _LateOptions(prog="flowenv run ENV", add_help=False, exit_on_error=False)
    add_hydrate_options(late)
    # Global options go anywhere, after ENV too (`run ENV -q -- CMD`).
    add_global_options(late, top=True)
    try:
        parsed = late.parse_args(["ENV", *tokens[:split]])
    except argparse.ArgumentError as exc:
        raise UsageError(str(exc)) from None
    for name, value in vars(parsed).items():
        if name != "env" and value != late.get_default(name):
            setattr(args, name, value)
    return args, tokens[split + 1 :]


def run(args: argparse.Namespace) -> int:
    from flowenv.errors import UsageError
    from flowenv.hydrate import command_env

    args, cmd = split_command(args)
    if not cmd:
        raise UsageError(f"no command: {USAGE}")
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
