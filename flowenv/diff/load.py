"""Read every lock file of a project, at a git revision or in the work tree, into one model.

Locks are found by their layout (``<lock-dir>/<env>/pylock.<platform>.toml``,
``<lock-dir>/<env>/conda-lock.yml``), not by the configuration's list of
environments, so an environment that exists on only one side still shows up.
The lock directory is read from the configuration *at that revision*, leniently
(a plain TOML read of ``project.lock-dir``, no validation): an old revision
whose configuration today's flowenv would reject still has readable locks.

A package's *source* is the index or channel it came from:

* pylock: the package's ``index``, else its VCS/archive/directory location,
  else the URL of its first file without the file name;
* conda-lock, conda packages: the channel (the URL without ``<subdir>/<file>``);
* conda-lock, pip packages: like pylock files.

For ``http(s)`` file URLs only ``scheme://host`` is kept: an index's file URL
often embeds the file's own digest (PyPI's ``/packages/ab/cd/<digest>/``), and
every new hash would otherwise also read as a new source.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from flowenv import git
from flowenv.config.discover import PYPROJECT_NAME
from flowenv.config.models import DEFAULT_LOCK_DIR
from flowenv.diff.model import Locked, LockSet, PlatformLock
from flowenv.errors import LockFileError
from flowenv.lockfiles.condalock import parse_conda_lock
from flowenv.lockfiles.pylock import LockedPackage, PyLock, parse_pylock_document

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PYLOCK = re.compile(r"^(?P<env>[^/]+)/pylock\.(?P<platform>[^/]+)\.toml$")
_CONDA_LOCK = re.compile(r"^(?P<env>[^/]+)/conda-lock\.yml$")
WORK_TREE = "working tree"


class Tree(Protocol):
    """One side of a comparison: files addressed by their path from the repository root."""

    label: str

    def read(self, path: str) -> str | None: ...

    def files_under(self, directory: str) -> list[str]: ...


class WorkTree:
    """The files on disk, including lock files git does not track yet."""

    label = WORK_TREE

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def read(self, path: str) -> str | None:
        from flowenv.lockfiles.reading import read_lock_file

        file = self.repo / path
        if not file.exists():
            return None
        # A lock that exists but cannot be read is an error, never "removed".
        return read_lock_file(file)

    def files_under(self, directory: str) -> list[str]:
        root = self.repo / directory
        # A directory where a lock file belongs is listed too: reading it is then
        # an error, as with any lock that exists but cannot be read.
        return sorted(
            p.relative_to(self.repo).as_posix()
            for p in root.rglob("*")
            if p.is_file() or p.name.endswith((".toml", ".yml"))
        )


class Revision:
    """The files of one commit."""

    def __init__(self, repo: Path, commit: str, label: str) -> None:
        self.repo = repo
        self.commit = commit
        self.label = label

    def read(self, path: str) -> str | None:
        return git.read_file(self.repo, self.commit, path)

    def files_under(self, directory: str) -> list[str]:
        return git.list_files(self.repo, self.commit, directory)


def lock_dir_of(config_text: str | None, config_name: str) -> str:
    """``project.lock-dir`` of a configuration text, or the default when unset or unreadable."""
    if config_text is None:
        return DEFAULT_LOCK_DIR
    from flowenv._bounds import TooDeep
    from flowenv.config.load import read_toml
    from flowenv.config.validators import lock_dir_problem

    try:
        data: Any = read_toml(config_text)[1]
    except (tomllib.TOMLDecodeError, TooDeep):
        return DEFAULT_LOCK_DIR
    if config_name == PYPROJECT_NAME:
        data = data.get("tool", {}).get("flowenv", {})
    project = data.get("project", {}) if isinstance(data, dict) else {}
    value = project.get("lock-dir") if isinstance(project, dict) else None
    # A lock-dir that leaves the project is refused by every command: so here.
    if isinstance(value, str) and value and not lock_dir_problem(value):
        return value
    return DEFAULT_LOCK_DIR


def load_lock_set(tree: Tree, config_path: str) -> LockSet:
    """Every lock of the project whose configuration is at ``config_path`` (repo-relative)."""
    lock_dir = lock_dir_of(tree.read(config_path), posixpath.basename(config_path))
    lock_root = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), lock_dir))
    out: dict[str, dict[str, PlatformLock]] = {}
    for path in tree.files_under(lock_root):
        relative = path[len(lock_root) + 1 :] if lock_root != "." else path
        if pylock := _PYLOCK.match(relative):
            text = tree.read(path) or ""
            out.setdefault(pylock["env"], {})[pylock["platform"]] = read_pylock_text(
                text, f"{tree.label}:{path}"
            )
        elif conda := _CONDA_LOCK.match(relative):
            platforms = read_conda_lock_text(tree.read(path) or "", f"{tree.label}:{path}")
            out.setdefault(conda["env"], {}).update(platforms)
    return out


def _url_source(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return url.rsplit("/", 1)[0] if "/" in url else url


def _pylock_source(package: LockedPackage) -> str:
    if package.index:
        return package.index
    if package.vcs:
        return package.vcs
    if package.archive:
        return _url_source(package.archive.url)
    if package.directory:
        return package.directory
    files = package.files
    return _url_source(files[0].url) if files else ""


def read_pylock_text(text: str, source: str) -> dict[str, Locked]:
    """The packages of one PEP 751 file, by normalised name."""
    return _pylock_packages(parse_pylock_document(text, source))


def _pylock_packages(lock: PyLock) -> dict[str, Locked]:
    out: dict[str, Locked] = {}
    for package in lock.packages:
        files = {(f.name, f"sha256:{f.sha256}") for f in package.files if f.sha256}
        out[canonicalize_name(package.name)] = Locked(
            version=package.version,
            source=_pylock_source(package),
            # A local package has no file in the lock: its source hash is what changes.
            hashes=tuple(
                sorted(
                    {digest for _, digest in files}
                    | ({f"source-sha256:{package.source_hash}"} if package.source_hash else set())
                )
            ),
            manager="pip",
            files=tuple(sorted(files)),
            source_is_index=package.index is not None,
        )
    return out


def read_conda_lock_text(text: str, source: str) -> dict[str, dict[str, Locked]]:
    """The packages of one conda-lock v1 file: platform -> name -> package.

    A pip package that shares its name with a conda package of the same
    platform is keyed ``name (pip)`` so that neither hides the other.
    """
    lock = parse_conda_lock(text, source)
    out: dict[str, dict[str, Locked]] = {platform: {} for platform in lock.platforms}
    # conda-lock repeats a package once per category: one entry each.
    unique = {(p.platform, p.manager, p.name): p for p in reversed(lock.packages)}
    ordered = sorted(unique.values(), key=lambda p: (p.manager != "conda", p.name))
    for package in ordered:
        packages = out.setdefault(package.platform, {})
        if package.manager == "conda":
            key, where = package.name, package.url.rsplit("/", 2)[0]
        else:
            key = canonicalize_name(package.name)
            key = f"{key} (pip)" if key in packages else key
            where = _url_source(package.url)
        digests = [f"sha256:{package.sha256}"] if package.sha256 else []
        if not digests and package.md5:
            digests = [f"md5:{package.md5}"]
        packages[key] = Locked(
            version=package.version,
            source=where,
            hashes=tuple(digests),
            manager="conda" if package.manager == "conda" else "pip",
            files=tuple((package.filename, d) for d in digests[:1]),
        )
    return out


def read_lock_text(text: str, source: str) -> dict[str | None, dict[str, Locked]]:
    """Either kind of lock file, told apart by content (textconv gets temporary file names).

    A pylock holds one platform (keyed by its ``[tool.flowenv] platform``, or
    None for a foreign PEP 751 file); a conda-lock holds several.
    """
    try:
        lock = parse_pylock_document(text, source)
    except LockFileError as toml_error:
        # conda-lock YAML ("version: 1") is never valid TOML.
        if "not valid TOML" not in str(toml_error):
            raise
        platforms: dict[str | None, dict[str, Locked]] = {}
        platforms.update(read_conda_lock_text(text, source))
        return platforms
    return {lock.platform: _pylock_packages(lock)}
