"""The ``flowenv`` command line: argument parsing only, the work is in the library.

Each command is a module ``flowenv.cli.<name>`` with ``register(subparsers)``
and ``run(args) -> int``. Command modules import their heavy dependencies
inside ``run`` so that start-up (``lock --check`` above all) stays fast.
This is also the one place that maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from flowenv import __version__
from flowenv.errors import EXIT_USAGE, FlowenvError

#: Command name -> module, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "lock": "flowenv.cli.lock_cmd",
    "show": "flowenv.cli.show_cmd",
    "sync": "flowenv.cli.sync_cmd",
    "hydrate": "flowenv.cli.hydrate_cmd",
    "run": "flowenv.cli.run_cmd",
    "store": "flowenv.cli.store_cmd",
    "import": "flowenv.cli.import_cmd",
    "diff": "flowenv.cli.diff_cmd",
    "export": "flowenv.cli.export_cmd",
    "git": "flowenv.cli.git_cmd",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"flowenv: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flowenv",
        description="Reproducible per-step, per-platform environments for ML workflows.",
    )
    parser.add_argument("--version", action="version", version=f"flowenv {__version__}")
    parser.add_argument(
        "-C",
        dest="directory",
        type=Path,
        metavar="DIR",
        help="run as if started in DIR (config discovery starts there)",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="use this flowenv.toml or pyproject.toml; no discovery, no fallback",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and results")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None means this process is the ``flowenv`` program."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    finally:
        if argv is None:
            # The process ends next, and what is left (botocore's models,
            # aiohttp's sessions...) dies with it: without this, the final
            # garbage collections at exit cost 0.1-0.2 s of every store command.
            # Not when called in-process (tests, embedding): nothing would be
            # collected after.
            gc.freeze()


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args))
    except FlowenvError as exc:
        print(
            f"flowenv: error: {exc.message}"
            if "\n" not in exc.message
            else f"flowenv: error:\n{exc.message}",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("flowenv: interrupted", file=sys.stderr)
        return 130


def is_interactive() -> bool:
    """Progress displays only for a person at a terminal, never in CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
