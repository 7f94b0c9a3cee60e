"""``flowenv git``: the entry points git and pre-commit call (textconv, merge driver, lock hook)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowenv.errors import CheckFailed, UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "git",
        help="git integration: lock textconv, lock merge driver, pre-commit lock hook",
        description="Commands for git's configuration and for pre-commit, not for typing.",
    )
    commands = parser.add_subparsers(dest="git_command", metavar="COMMAND", required=True)

    textconv = commands.add_parser(
        "textconv", help="print a lock file as `name version` lines (diff.<driver>.textconv)"
    )
    textconv.add_argument("file", type=Path, metavar="FILE")
    textconv.set_defaults(run=run_textconv)

    merge = commands.add_parser(
        "merge-driver",
        help="re-lock a conflicting lock file (merge.<driver>.driver = ... %%O %%A %%B %%P)",
    )
    merge.add_argument("base", type=Path, metavar="O", help="the common ancestor's version (%%O)")
    merge.add_argument(
        "ours", type=Path, metavar="A", help="our version; receives the result (%%A)"
    )
    merge.add_argument("theirs", type=Path, metavar="B", help="their version (%%B)")
    merge.add_argument("path", metavar="P", help="the lock file's path in the repository (%%P)")
    merge.set_defaults(run=run_merge_driver)

    hook = commands.add_parser(
        "lock-hook",
        help="lock what is stale; exit 1 if a lock file changed (pre-commit flowenv-lock)",
    )
    hook.set_defaults(run=run_lock_hook)


def run_textconv(args: argparse.Namespace) -> int:
    from flowenv.diff.textconv import textconv

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not a lock flowenv can read: git diff shows the bytes, as without the driver.
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return 0
    sys.stdout.write(textconv(text, str(args.file)))
    return 0


def run_merge_driver(args: argparse.Namespace) -> int:
    from flowenv import git
    from flowenv.diff.merge_driver import merge_lock

    # git runs merge drivers at the top of the work tree; %O %A %B are relative to it.
    cwd = Path.cwd()
    repo = git.toplevel(cwd)
    merge_lock(repo, cwd / args.base, cwd / args.ours, cwd / args.theirs, args.path)
    print(f"flowenv: re-locked {args.path} from the merged configuration", file=sys.stderr)
    return 0


def run_lock_hook(args: argparse.Namespace) -> int:
    from flowenv.cli.common import config_and_digests
    from flowenv.lock import lock, remember_fresh, remove_obsolete_locks

    config, digests = config_and_digests(args)
    results = lock(config, remove_temp_files=False)  # removed with the obsolete locks
    live = [r.target for r in results]
    written = [r for r in results if r.status == "written"]
    removed = remove_obsolete_locks(config, live)
    # Fresh on disk now, staged or not: the next hook run has nothing to do.
    remember_fresh(config, digests, live)
    if written or removed:
        # Like a formatter hook: the files are fixed, the commit is not, so the
        # author sees and stages the new locks.
        lines = [f"  {r.target.path.relative_to(config.root)}  ({r.target.label})" for r in written]
        lines += [f"  {path.relative_to(config.root)}  (obsolete, removed)" for path in removed]
        paths = "\n".join(lines)
        raise CheckFailed(f"stale locks were re-locked; review and stage them:\n{paths}")
    return 0
