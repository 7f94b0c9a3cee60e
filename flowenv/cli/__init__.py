"""The ``flowenv`` command line: argument parsing only, the work is in the library.

Each command is a module ``flowenv.cli.<name>`` with ``register(subparsers)``
and ``run(args) -> int``. Command modules import their heavy dependencies
inside ``run`` so that start-up (``lock --check`` above all) stays fast.
This is also the one place that maps errors to exit codes.
"""

from __future__ import annotations

import errno
import gc
import os
import sys

from flowenv.cli.fastpath import fast_lock_check

# Not `from typing import TYPE_CHECKING`: importing typing is a few ms of every
# `lock --check`, and type checkers honour any constant of this name.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The whole command line's parser (see :mod:`flowenv.cli.parser`)."""
    from flowenv.cli import parser

    return parser.build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None means this process is the ``flowenv`` program.

    As the program, ``flowenv lock`` goes to the warm server when one is
    running (:mod:`flowenv.warm`), before argparse and before the fast path
    (``lock --check`` tries the fast path first); an in-process ``lock``
    starts one for the next time.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is not None:
        return answer(args, program=False)
    from flowenv.warm import client

    # `lock --check`'s answer comes sooner from the fast path than through a
    # child; any other lock goes to the server first, whose child tries the
    # same fast path, warm (here its imports and record would be paid again
    # by every re-lock).
    fast_first = client.check_only(args)
    if not fast_first and (served := client.run_served(args)) is not None:
        client.exit_now(served)
    quick = fast_lock_check(args)
    if quick is not None:
        return quick
    if fast_first and (served := client.run_served(args)) is not None:
        client.exit_now(served)
    try:
        return run_command(args, program=True)
    finally:
        if client.is_lock(args):
            client.start_server()


def answer(args: Sequence[str], program: bool) -> int:
    """The fast path's answer when it has one (a fresh ``lock`` or ``lock --check``), else
    :func:`run_command`'s: what an in-process call and a warm server's child run."""
    quick = fast_lock_check(args)
    return quick if quick is not None else run_command(args, program=program)


def run_command(args: Sequence[str], program: bool) -> int:
    """Parse ``args`` and run the command: what ``flowenv`` and a warm server's child both run.

    ``program``: this process ends when the command does (``flowenv`` itself,
    or the warm server's child), not a caller that goes on (tests, embedding).
    """
    from flowenv.cli.parser import build_parser, command_of, kept_parser

    only = command_of(args)
    parser = kept_parser(only) if program else build_parser(only)
    parsed = parser.parse_args(args)
    if parsed.command is None:
        # Bare `flowenv`: the overview a newcomer needs, not an error.
        parser.print_help()
        return 0
    try:
        return _run(parsed)
    finally:
        if program:
            # The process ends next, and what is left (botocore's models,
            # aiohttp's sessions...) dies with it: without this, the final
            # garbage collections at exit cost 0.1-0.2 s of every store command.
            # Not when called in-process (tests, embedding): nothing would be
            # collected after.
            gc.freeze()


#: errno values that mean the machine ran out of something it limits, not a flowenv bug.
_LIMIT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EFBIG", "EMFILE", "ENFILE", "ENOSPC", "EDQUOT")
    if hasattr(errno, name)
)


def _run(args: argparse.Namespace) -> int:
    from flowenv.errors import FlowenvError

    try:
        return int(args.run(args))
    except FlowenvError as exc:
        from flowenv._subprocess import redact

        # The last line of defence: whatever a message quotes, no URL keeps its password.
        message = redact(exc.message)
        print(
            f"flowenv: error: {message}" if "\n" not in message else f"flowenv: error:\n{message}",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("flowenv: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Not a bug but this machine's limits (a full disk, `ulimit -f` or -n):
        # one message and the usage exit code, no traceback.
        if exc.errno not in _LIMIT_ERRNOS:
            raise
        from flowenv.errors import EXIT_USAGE

        where = f": {exc.filename}" if exc.filename else ""
        print(f"flowenv: error: {exc.strerror}{where} (a limit of this machine)", file=sys.stderr)
        return EXIT_USAGE


def is_interactive() -> bool:
    """Progress displays only for a person at a terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
