"""The ``flowenv`` argument parser: every command module registers its sub-command here.

Built only when the fast ``lock --check`` path (:mod:`flowenv.cli.fastpath`)
did not answer: argparse and the command modules are not free to import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import NoReturn

from flowenv import __version__

#: Command name -> module, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "lock": "flowenv.cli.lock_cmd",
    "show": "flowenv.cli.show_cmd",
    "sync": "flowenv.cli.sync_cmd",
    "hydrate": "flowenv.cli.hydrate_cmd",
    "run": "flowenv.cli.run_cmd",
    "cache": "flowenv.cli.cache_cmd",
    "import": "flowenv.cli.import_cmd",
    "diff": "flowenv.cli.diff_cmd",
    "export": "flowenv.cli.export_cmd",
    "git": "flowenv.cli.git_cmd",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Imported here: flowenv.errors brings attrs, which the fast path never needs.
        from flowenv.errors import EXIT_USAGE

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
