"""``flowenv import FILE``: write a flowenv.toml from a flow's decorators or an existing input file.

FILE is a Metaflow flow (``.py``), a requirements file (``.txt``/``.in``), a
conda ``environment.yml`` or a ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowenv.cli.common import add_platform_option


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "import",
        help="write a flowenv.toml from a flow's decorators, a requirements file, an "
        "environment.yml or a pyproject.toml",
        description="Read @pypi, @conda, @pypi_base and @conda_base from FLOW's source (never "
        "importing or running it) and write the equivalent flowenv.toml. Decorators that cannot "
        "be translated are listed with file:line and nothing is written unless --force. "
        "Given a requirements file, an environment.yml or a pyproject.toml instead, write a "
        "flowenv.toml whose base environment reads that file.",
    )
    parser.add_argument(
        "flow",
        type=Path,
        metavar="FILE",
        help="the flow's source (.py), or requirements .txt/.in, environment.yml, pyproject.toml",
    )
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
    parser.add_argument(
        "--extra",
        dest="extras",
        action="append",
        default=[],
        metavar="NAME",
        help="with a pyproject.toml: an extra to include (repeatable)",
    )
    parser.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        metavar="NAME",
        help="with a pyproject.toml: a dependency group to include (repeatable)",
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
    from flowenv.metaflow.flow_import import import_flow

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
    if flow.suffix == ".py":
        result = import_flow(
            flow,
            output,
            flow=args.flow_name,
            force=args.force,
            platforms=tuple(args.platforms) or None,
        )
    else:
        from flowenv.inputs.importer import import_input_file

        result = import_input_file(
            flow,
            output,
            force=args.force,
            platforms=tuple(args.platforms) or None,
            extras=tuple(args.extras),
            groups=tuple(args.groups),
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
