"""``flowenv lock``: write stale locks, or with ``--check`` only say which are stale."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowenv.cli.common import add_selection, config_and_digests
from flowenv.cli.fastpath import FRESH_MESSAGE
from flowenv.errors import CheckFailed
from flowenv.warm.child import commit as commit_warm


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "lock",
        help="resolve environments into per-platform lock files",
        description="Resolve every stale env × platform and write its lock file.",
    )
    add_selection(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="resolve nothing; exit 1 naming every stale or missing lock",
    )
    mode.add_argument(
        "-U",
        "--upgrade",
        action="store_true",
        help="re-resolve everything selected, allowing every package to move",
    )
    mode.add_argument(
        "-P",
        "--upgrade-package",
        action="append",
        default=[],
        metavar="PKG",
        help="re-resolve, allowing PKG to move (repeatable)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="resolutions run at once (default: number of CPUs)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flowenv.lock import Selection, check
    from flowenv.lockfiles.layout import lock_status

    config, digests = config_and_digests(args)
    # In a warm server's child: the command commits here, or is handed back to the client.
    commit_warm(config)
    selection = Selection(envs=tuple(args.envs), platforms=tuple(args.platforms))
    if args.check:
        report = check(config, selection, digests)
        lines = [
            f"  {t.label}: {lock_status(t)} ({t.path.relative_to(config.root).as_posix()})"
            for t in report.stale
        ]
        lines += [
            f"  {path.relative_to(config.root).as_posix()}: obsolete (nothing in "
            f"{config.path.name} uses it)"
            for path in report.obsolete
        ]
        if lines:
            raise CheckFailed("stale locks (run `flowenv lock`):\n" + "\n".join(lines))
        if not args.quiet:
            print(FRESH_MESSAGE)
        return 0
    return _lock(args, config, selection, digests)


def _lock(
    args: argparse.Namespace, config: Any, selection: Any, digests: dict[str, str] | None
) -> int:
    from flowenv._scratch import removed_later
    from flowenv.cli import is_interactive
    from flowenv.lock import Selection, lock, remember_fresh, remove_obsolete_locks
    from flowenv.resolution import LockOptions

    options = LockOptions(upgrade=args.upgrade, upgrade_packages=tuple(args.upgrade_package))
    # Only a full lock knows every live lock; a partial one leaves others' files alone.
    whole = selection == Selection()
    # uv's scratch directories are removed in the background until the locks
    # are written, the obsolete ones removed and freshness recorded.
    with removed_later():
        if is_interactive() and not args.quiet:
            from flowenv.cli.progress import JobProgress

            with JobProgress("resolving") as progress:
                results = lock(
                    config,
                    selection,
                    options,
                    jobs=args.jobs,
                    on_plan=progress.plan,
                    on_resolved=progress.done,
                    remove_temp_files=not whole,
                )
        else:
            results = lock(config, selection, options, jobs=args.jobs, remove_temp_files=not whole)
        removed: list[Any] = []
        if whole:
            live = [result.target for result in results]
            removed = remove_obsolete_locks(config, live)
            remember_fresh(config, digests, live)
    if not args.quiet:
        for result in results:
            relative = result.target.path.relative_to(config.root)
            print(f"{result.status:>9}  {result.target.label}  {relative}", file=sys.stdout)
        for path in removed:
            print(f"{'removed':>9}  {path.relative_to(config.root)}", file=sys.stdout)
    return 0
