"""The git merge driver for lock files: re-lock from the merged flowenv.toml, never splice.

Two branches that each changed an environment each re-locked it; merging the
two lock files line by line gives a lock of neither input. So on a conflict in
``<lock-dir>/<env>/...`` the driver merges the *configuration* the way git
would (``git merge-file`` of its base, ours and theirs versions) and resolves
the environment again from the result, writing the new lock where git expects
the merge result (``%A``).

Why the configuration is merged here rather than read from the work tree:
git's default merge strategy (ort) merges every file in memory and updates the
work tree and index only at the end, so while a driver runs both still hold
*our* flowenv.toml, whatever the path order. The other side of the merge is
taken from what git tells a driver:

* ``git merge`` / ``git pull``: the ``GITHEAD_<commit>`` environment variable
  git sets for the merged head (base = ``git merge-base HEAD <commit>``);
* ``git rebase`` (merge backend): the commit being replayed, the last entry
  of ``rebase-merge/done`` (base = its parent).

Anything else (cherry-pick, revert, ``am``, octopus merges), a configuration
that itself conflicts or no longer parses, or a resolution failure: the driver
leaves git's usual conflict markers in the lock, says why on stderr and exits
non-zero, so git reports a conflict. Resolve flowenv.toml, then run
``flowenv lock``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from flowenv import git
from flowenv._atomic import write_atomic
from flowenv.config.discover import discover_config
from flowenv.config.load import parse_config
from flowenv.errors import FlowenvError
from flowenv.lockfiles.layout import CONDA_LOCK_NAME
from flowenv.resolution import LockOptions, locker_for
from flowenv.spec import build_environments

_GITHEAD = re.compile(r"^GITHEAD_([0-9a-f]{40}|[0-9a-f]{64})$")
_PYLOCK = re.compile(r"^pylock\.(?P<platform>[^/]+)\.toml$")
_REPLAYING = {"pick", "p", "edit", "e", "reword", "r", "squash", "s", "fixup", "f"}


class MergeDriverError(FlowenvError):
    """The driver could not re-lock; git's conflict markers are in the file instead."""


def _other_side(repo: Path) -> tuple[str | None, str] | None:
    """(base commit or None, their commit) of the merge git is running, if it can be told."""
    heads = [m.group(1) for m in map(_GITHEAD.match, os.environ) if m]
    if len(heads) == 1:
        return git.merge_base(repo, "HEAD", heads[0]), heads[0]
    if heads:
        return None
    done = git.git_path(repo, "rebase-merge/done")
    if not done.is_file():
        return None
    entries = [
        line.split()
        for line in done.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries or entries[-1][0] not in _REPLAYING:
        return None
    # "fixup -C <commit> ...": the commit is the first word that is not an option.
    words = [w for w in entries[-1][1:] if not w.startswith("-")]
    theirs = git.commit_of(repo, words[0]) if words else None
    if theirs is None:
        return None
    return git.commit_of(repo, f"{theirs}^"), theirs


def merged_config_text(repo: Path, config_path: str) -> str:
    """The configuration as the running merge will leave it, or an error if it conflicts."""
    sides = _other_side(repo)
    if sides is None:
        raise MergeDriverError(
            "cannot tell which commit is being merged (the driver re-locks during "
            "git merge, git pull and git rebase only)"
        )
    base_commit, theirs_commit = sides
    ours = git.read_file(repo, "HEAD", config_path)
    theirs = git.read_file(repo, theirs_commit, config_path)
    base = git.read_file(repo, base_commit, config_path) if base_commit else None
    if ours is None or theirs is None:
        raise MergeDriverError(f"{config_path} is missing on one side of the merge")
    if ours == theirs or base == theirs:
        return ours
    if base == ours:
        return theirs
    merged, conflicted = git.merge_text(repo, ours, base or "", theirs, (config_path,) * 3)
    if conflicted:
        raise MergeDriverError(f"{config_path} has conflicting changes too; resolve it first")
    return merged


def relock_text(repo: Path, path: str) -> str:
    """The lock file ``path`` (repo-relative) re-resolved from the merged configuration."""
    target = repo / path
    config_path = discover_config(start=target.parent)
    relative_config = config_path.resolve().relative_to(repo.resolve()).as_posix()
    merged = merged_config_text(repo, relative_config)
    config = parse_config(merged, config_path)
    lock_root = config.lock_root.resolve().relative_to(repo.resolve())
    try:
        env_name, filename = Path(path).relative_to(lock_root).parts
    except ValueError:
        raise MergeDriverError(f"{path} is not a lock file under {lock_root.as_posix()}/") from None
    environments = build_environments(config)
    if env_name not in environments.names():
        raise MergeDriverError(f"the merged {relative_config} has no environment '{env_name}'")
    env = environments.get(env_name)
    pylock = _PYLOCK.match(filename)
    if filename == CONDA_LOCK_NAME and env.kind == "conda":
        platforms = env.platforms
    elif pylock and env.kind == "pypi" and pylock["platform"] in env.platforms:
        platforms = (pylock["platform"],)
    else:
        raise MergeDriverError(
            f"the merged {relative_config} no longer locks {env_name} into {filename}"
        )
    texts = locker_for(env.kind)(config, env, platforms, LockOptions())
    return texts[filename]


def merge_lock(repo: Path, base: Path, ours: Path, theirs: Path, path: str) -> None:
    """Run as ``merge-driver %O %A %B %P``: the re-locked file replaces ``ours`` (``%A``).

    On failure ``ours`` holds git's usual conflict markers and the error says why.
    """
    try:
        text = relock_text(repo, path)
    except FlowenvError as exc:
        git.merge_files(repo, ours, base, theirs, ("ours", "base", "theirs"), in_place=True)
        error = MergeDriverError(
            f"{path}: conflict left for you: {exc.message}\n"
            "after resolving flowenv.toml, run `flowenv lock` to rewrite this lock"
        )
        error.exit_code = exc.exit_code  # a resolution failure still exits 3
        raise error from None
    write_atomic(ours, text)
