"""The git adapter: every call flowenv makes to git goes through here.

git is used as a program through :func:`flowenv._subprocess.run`; its plumbing
commands (``rev-parse``, ``ls-tree``, ``cat-file``, ``merge-base``,
``merge-file``) are its stable interface. Callers get Python values or a
:class:`GitError`, never a ``CompletedProcess``.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from flowenv._subprocess import describe_failure, run
from flowenv.errors import FlowenvError, UsageError


class GitError(FlowenvError):
    """git is missing, the directory is not a repository, or a git command failed."""


def _git(args: Sequence[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return run(["git", *args], cwd=cwd)
    except FileNotFoundError:
        raise GitError("git not found: install git and make sure it is on PATH") from None


def _checked(args: Sequence[str | Path], cwd: Path) -> str:
    result = _git(args, cwd)
    if result.returncode != 0:
        raise GitError(f"git {args[0]} failed: {describe_failure(['git', *args], result)}")
    return result.stdout


def toplevel(path: Path) -> Path:
    """The root of the work tree that contains ``path``."""
    result = _git(["rev-parse", "--show-toplevel"], path)
    if result.returncode != 0:
        raise UsageError(f"{path} is not inside a git repository")
    return Path(result.stdout.strip())


def commit_of(repo: Path, rev: str) -> str | None:
    """The full commit id ``rev`` names, or None when it names no commit."""
    # "--end-of-options" keeps a revision such as "-x" from being read as an option.
    result = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], repo
    )
    return result.stdout.strip() if result.returncode == 0 else None


def list_files(repo: Path, commit: str, directory: str) -> list[str]:
    """Paths (relative to the repository root) of every file under ``directory`` at ``commit``."""
    out = _checked(
        [
            "ls-tree",
            "-r",
            "-z",
            "--name-only",
            "--full-tree",
            commit,
            "--",
            directory.rstrip("/") + "/",
        ],
        repo,
    )
    return sorted(p for p in out.split("\0") if p)


def read_file(repo: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``, or None when it does not exist there."""
    result = _git(["cat-file", "blob", f"{commit}:{path}"], repo)
    return result.stdout if result.returncode == 0 else None


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two commits, or None when they share no history."""
    result = _git(["merge-base", a, b], repo)
    return result.stdout.strip() if result.returncode == 0 else None


def git_path(repo: Path, name: str) -> Path:
    """Where ``$GIT_DIR/name`` is (worktrees put state files outside ``.git``)."""
    path = Path(_checked(["rev-parse", "--git-path", name], repo).strip())
    return path if path.is_absolute() else repo / path


def merge_text(
    repo: Path, ours: str, base: str, theirs: str, labels: Sequence[str]
) -> tuple[str, bool]:
    """A three-way text merge the way git merges a file: (merged text, had conflicts)."""
    with tempfile.TemporaryDirectory(prefix="flowenv-merge-") as tmp:
        files = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            files.append(path)
        return merge_files(repo, files[0], files[1], files[2], labels, in_place=False)


def merge_files(
    repo: Path, ours: Path, base: Path, theirs: Path, labels: Sequence[str], *, in_place: bool
) -> tuple[str, bool]:
    """``git merge-file`` on three files; with ``in_place`` the result replaces ``ours``."""
    label_args: list[str] = []
    for label in labels:
        label_args += ["-L", label]
    args: list[str | Path] = [
        "merge-file",
        *label_args,
        *([] if in_place else ["-p"]),
        ours,
        base,
        theirs,
    ]
    result = _git(args, repo)
    # merge-file exits with the number of conflicts; a negative status (>127) is an error.
    if result.returncode > 127:
        raise GitError(f"git merge-file failed: {describe_failure(['git', *args], result)}")
    text = ours.read_text(encoding="utf-8") if in_place else result.stdout
    return text, result.returncode != 0


def describe_head(path: Path) -> str | None:
    """The commit checked out at ``path`` (``<sha>``, ``+dirty`` when ``path`` has changes).

    None outside a git work tree or without git: provenance is a nicety, never a failure.
    """
    try:
        head = _git(["rev-parse", "--verify", "--quiet", "HEAD"], path)
        if head.returncode != 0:
            return None
        status = _git(["status", "--porcelain", "--untracked-files=no", "--", "."], path)
    except GitError:
        return None
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("+dirty" if dirty else "")
