"""Lock changes between two git revisions, for review: load, compare, render.

``load`` reads PEP 751 and conda-lock files into one model, ``compare`` turns
two of them into a :class:`~flowenv.diff.model.LockDiff`, ``render`` prints it;
``textconv`` and ``merge_driver`` are the git drivers built on the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flowenv import git
from flowenv.diff.compare import compare
from flowenv.diff.load import Revision, Tree, WorkTree, load_lock_set
from flowenv.diff.model import LockDiff
from flowenv.errors import UsageError


def split_arguments(repo: Path, arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """``[REV [REV2]] [ENV...]``: leading arguments that name commits are revisions.

    Like ``git diff`` without ``--``, an argument that names both a commit and
    an environment is taken as a revision.
    """
    revisions: list[str] = []
    for index, argument in enumerate(arguments):
        if len(revisions) == 2 or git.commit_of(repo, argument) is None:
            return revisions, list(arguments[index:])
        revisions.append(argument)
    return revisions, []


def _revision(repo: Path, rev: str) -> Revision:
    commit = git.commit_of(repo, rev)
    if commit is None:
        raise UsageError(f"unknown revision '{rev}'")
    return Revision(repo, commit, rev)


def diff_project(config_path: Path, arguments: Sequence[str] = ()) -> LockDiff:
    """Lock changes of the project configured at ``config_path``, as ``flowenv diff`` takes them.

    No revision: HEAD against the work tree; one: it against the work tree;
    two: the first against the second.
    """
    repo = git.toplevel(config_path.parent)
    relative = config_path.resolve().relative_to(repo.resolve()).as_posix()
    revisions, envs = split_arguments(repo, arguments)
    old: Tree = _revision(repo, revisions[0] if revisions else "HEAD")
    new: Tree = _revision(repo, revisions[1]) if len(revisions) == 2 else WorkTree(repo)
    before, after = load_lock_set(old, relative), load_lock_set(new, relative)
    unknown = [e for e in envs if e not in before and e not in after]
    if unknown:
        raise UsageError(
            f"no revision or environment named {', '.join(repr(u) for u in unknown)} "
            f"(environments with locks: {', '.join(sorted(set(before) | set(after))) or 'none'})"
        )
    return compare(before, after, old_label=old.label, new_label=new.label, envs=envs)
