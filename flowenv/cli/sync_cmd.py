"""``flowenv sync``: upload locked artifacts and manifests to the project's store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowenv.cli.common import add_selection, config_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sync",
        help="upload locked environments to the store (before deploying)",
        description="Fetch every locked artifact (verifying its sha256), upload what the store "
        "lacks, then write each env's manifest and alias. Safe to interrupt and re-run.",
    )
    add_selection(parser)
    parser.add_argument(
        "--store", metavar="URL", help="store URL (default: $FLOWENV_STORE, else project.store)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be uploaded; change nothing"
    )
    parser.add_argument(
        "--no-python",
        dest="python",
        action="store_false",
        help="do not store the CPython build of PyPI envs (executors then need a local Python)",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=None, metavar="N", help="transfers at once (default: 16)"
    )
    parser.set_defaults(run=run)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    from flowenv.cli import is_interactive
    from flowenv.errors import UsageError
    from flowenv.sync import Selection, sync

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    config = config_from_args(args)
    selection = Selection(envs=tuple(args.envs), platforms=tuple(args.platforms))
    kwargs = {
        "selection": selection,
        "store_url": args.store,
        "jobs": args.jobs,
        "dry_run": args.dry_run,
        "python": args.python,
    }
    if is_interactive() and not args.quiet and not args.dry_run:
        with _Bar() as bar:
            summary = sync(config, on_progress=bar.update, **kwargs)
    else:
        summary = sync(config, **kwargs)
    if args.dry_run:
        print(
            f"would upload {_count(summary.uploaded, 'artifact')} to {summary.store}, "
            f"{summary.present} already there"
        )
        for env in summary.envs:
            print(f"  {env.env} · {env.platform}  {env.env_id}")
        return 0
    if not args.quiet:
        for env in summary.envs:
            print(f"{env.status:>8}  {env.env} · {env.platform}  {env.env_id}")
    for note in summary.notes:
        print(f"flowenv: note: {note}", file=sys.stderr)
    if summary.interpreters_written and not args.quiet:
        print(f"stored {summary.interpreters_written} CPython build(s) for executors without one")
    print(
        f"uploaded {_count(summary.uploaded, 'artifact')} "
        f"({human_bytes(summary.uploaded_bytes)}), {summary.present} already there, "
        f"{_count(summary.manifests_written, 'manifest')} written "
        f"to {summary.store}"
    )
    return 0


class _Bar:
    """A files bar with the bytes uploaded so far (rich, shown on a terminal only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("uploading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[size]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("", total=None, size="")
        self._bytes = 0

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: Any) -> None:
        if event.kind == "plan":
            self._progress.update(self._task, total=event.total_files)
            return
        self._bytes += event.bytes
        self._progress.update(self._task, advance=1, size=human_bytes(self._bytes))


def _count(n: int, noun: str) -> str:
    """``1 artifact``, ``2 artifacts``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
