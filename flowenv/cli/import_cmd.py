"""``flowenv import FLOW.py``: write the flowenv.toml equivalent to a flow's decorators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowenv.cli.common import add_platform_option


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "import",
        help="translate a Metaflow flow's @pypi/@conda decorators into a flowenv.toml",
        description="Read @pypi, @conda, @pypi_base and @conda_base from FLOW's source (never "
        "importing or running it) and write the equivalent flowenv.toml. Decorators that cannot "
        "be translated are listed with file:line and nothing is written unless --force.",
    )
    parser.add_argument("flow", type=Path, metavar="FLOW.py", help="the flow's source file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to write (default: flowenv.toml beside FLOW.py; '-' for stdout)",
    )
    parser.add_argument(
        "--flow",
        dest="flow_name",
        metavar="NAME",
        help="the FlowSpec class to read when the file defines several",
    )
    add_platform_option(
        parser, "project.platforms to write (repeatable; default: linux-64 and this machine's)"
    )
    parser.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="write even when some decorators could not be translated, and "
        "overwrite an existing file",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flowenv.importer import import_flow

    # Paths stay as the user wrote them (messages then quote them back), unless -C moves us.
    def located(path: Path) -> Path:
        return path if path.is_absolute() or args.directory is None else args.directory / path

    flow = located(args.flow)
    to_stdout = args.output == Path("-")
    output = (
        None
        if to_stdout
        else (located(args.output) if args.output else flow.parent / "flowenv.toml")
    )
    result = import_flow(
        flow, output, flow=args.flow_name, force=args.force, platforms=tuple(args.platforms) or None
    )
    if to_stdout:
        sys.stdout.write(result.text)
    for gap in result.gaps:
        print(f"flowenv: not translated: {gap.render()}", file=sys.stderr)
    for note in result.notes:
        print(f"flowenv: note: {note}", file=sys.stderr)
    if result.written and not args.quiet:
        print(f"wrote {result.output} from {result.flow}")
    return 0
