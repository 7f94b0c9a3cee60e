"""Local packages (``mylib = { path = "libs/mylib" }``): where they are and a hash of their source.

The source hash covers every file of the package directory except what
tools write there (VCS data, caches, build output, virtualenvs), path and
content, so editing the package makes its env's lock stale and nothing else
does. Symbolic links are hashed by their target path, never followed: a link
out of the directory must not pull unrelated files into the hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Directories never part of a package's source.
IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        # flowenv's own: the default local store and anything else it keeps there.
        ".flowenv",
    }
)
#: Where build tools write at the package's root; below it the same names are
#: ordinary subpackages (``mylib/build/``) that the wheel contains.
IGNORED_ROOT_DIRS = frozenset({"build", "dist"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
#: A local package with more files than this is more likely a mistaken path.
MAX_FILES = 20_000
BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


class LocalPackageError(ValueError):
    """The path is not a buildable package directory (the message says why)."""


def check_package_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise LocalPackageError("no such directory")
    if not any((directory / name).is_file() for name in BUILD_FILES):
        raise LocalPackageError(
            f"not a Python package directory (none of {', '.join(BUILD_FILES)} in it)"
        )


def source_files(directory: Path, lock_root: Path | None = None) -> list[Path]:
    """The package's source files, sorted by their relative POSIX path.

    ``lock_root``, the project's lock dir, is skipped when the package holds it
    (a package at the project's root): each lock would change its own hash.
    """
    skip = lock_root.resolve() if lock_root is not None else None
    found: list[Path] = []
    for current, dirs, files in os.walk(directory):
        at_root = Path(current) == directory
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in IGNORED_DIRS
            and not (at_root and d in IGNORED_ROOT_DIRS)
            and not d.endswith(IGNORED_SUFFIXES)
            and (skip is None or Path(current, d).resolve() != skip)
        )
        # os.walk lists a link to a directory among the directories and never
        # enters it: hash it like any other link, by its target path.
        links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        found.extend(Path(current) / d for d in links)
        for name in files:
            if not name.endswith(IGNORED_SUFFIXES):
                found.append(Path(current) / name)
        if len(found) > MAX_FILES:
            raise LocalPackageError(f"has more than {MAX_FILES} files; is the path right?")
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


def source_hash(directory: Path, lock_root: Path | None = None) -> str:
    """sha256 over the package's files (relative path and bytes of each), see the module doc."""
    check_package_dir(directory)
    digest = hashlib.sha256()
    for path in source_files(directory, lock_root):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            content = f"symlink:{os.readlink(path)}".encode()
        elif not path.is_file():
            # A FIFO would block the read forever; a socket or device is no source.
            raise LocalPackageError(
                f"{relative} is not a regular file, a directory or a symbolic link"
            )
        else:
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise LocalPackageError(f"cannot read {relative}: {exc.strerror}") from None
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()
