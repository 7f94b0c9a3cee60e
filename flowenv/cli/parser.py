"""The ``flowenv`` argument parser: every command module registers its sub-command here.

Built only when the fast ``lock --check`` path (:mod:`flowenv.cli.fastpath`)
did not answer: argparse and the command modules are not free to import.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from flowenv import __version__

#: Command name -> module, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "lock": "flowenv.cli.lock_cmd",
    "show": "flowenv.cli.show_cmd",
    "sync": "flowenv.cli.sync_cmd",
    "hydrate": "flowenv.cli.hydrate_cmd",
    "run": "flowenv.cli.run_cmd",
    "cache": "flowenv.cli.cache_cmd",
    "store": "flowenv.cli.store_cmd",
    "import": "flowenv.cli.import_cmd",
    "diff": "flowenv.cli.diff_cmd",
    "export": "flowenv.cli.export_cmd",
    "git": "flowenv.cli.git_cmd",
    "server": "flowenv.cli.server_cmd",
}


EXIT_CODES_HELP = """\
exit codes:
  0  ok
  1  a check found something (stale lock, non-empty diff with --exit-code)
  2  usage, configuration or input error
  3  resolution failed (unsatisfiable, package missing)
  4  store or transfer failure"""

_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that the exit-code table keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EXIT_CODES_HELP:
            return text
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Imported here: flowenv.errors brings attrs, which the fast path never needs.
        from flowenv.errors import EXIT_USAGE

        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"flowenv: error: {_with_hint(message)}\n")


def _with_hint(message: str) -> str:
    """argparse's "invalid choice" message with a "did you mean" for the closest choice."""
    match = _INVALID_CHOICE.search(message)
    if not match:
        return message
    from flowenv.config.load import did_you_mean

    choices = [c.strip().strip("'") for c in match["choices"].split(",")]
    return message + did_you_mean(match["word"], choices)


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """-C, -c, -q: on the main parser and again on every command, so they go anywhere.

    On commands their default is SUPPRESS: an option given before the command
    is not overwritten by the command's parser when it is not repeated after it.
    """
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "-C",
        dest="directory",
        type=Path,
        metavar="DIR",
        help="run as if started in DIR (config discovery starts there)",
        **default,
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="use this flowenv.toml or pyproject.toml; no discovery, no fallback",
        **default,
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and results", **default
    )


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs when only global options precede it, else None ("unsure").

    With it, :func:`build_parser` registers that command alone: importing and
    building every other command's parser cost every command 3-7 ms (the
    lock's own parser takes under 4). ``-h``, ``--version``, an unknown option
    or word before the command, or none at all: None, and the whole parser
    answers.
    """
    from flowenv.cli.fastpath import split_globals

    parsed = split_globals(argv)
    if parsed is None or not parsed[3]:
        return None
    word = parsed[3][0]
    return word if word in COMMANDS else None


#: Parsers built by :func:`kept_parser`, by the command they were built for.
_KEPT: dict[str | None, argparse.ArgumentParser] = {}


def kept_parser(only: str | None) -> argparse.ArgumentParser:
    """:func:`build_parser` built once per process and kept (a parser is not changed by parsing).

    For a warm server's children: the server builds the lock's parser while it
    warms up, and each child parses with it (0.35 ms a lock). In-process
    callers (tests, embedding) build a new one each time, so a command module
    patched between calls is the one that runs.
    """
    if only not in _KEPT:
        _KEPT[only] = build_parser(only)
    return _KEPT[only]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; ``only``: register that command alone (see :func:`command_of`).

    Parsing the same arguments with either gives the same namespace, help and
    errors, as long as ``only`` is the command they name.
    """
    parser = _Parser(
        prog="flowenv",
        description="Reproducible per-step, per-platform environments for ML workflows.",
        epilog=EXIT_CODES_HELP,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowenv {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    for command in sub.choices.values():
        for each in (command, *_subcommands(command)):
            add_global_options(each, top=False)
            if each.epilog is None:
                each.epilog = EXIT_CODES_HELP
                each.formatter_class = _HelpFormatter
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of a command's own subcommands (``flowenv git textconv``)."""
    return [
        choice
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action.choices.values()
    ]
