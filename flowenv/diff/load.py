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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from flowenv import git
from flowenv.config.discover import PYPROJECT_NAME
from flowenv.config.models import DEFAULT_LOCK_DIR
from flowenv.diff.model import Locked, LockSet, PlatformLock
from flowenv.errors import FlowenvError
from flowenv.locks.condalock import parse_conda_lock
from flowenv.locks.pylock import LockedWheel, parse_pylock

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
        try:
            return (self.repo / path).read_text(encoding="utf-8")
        except OSError:
            return None

    def files_under(self, directory: str) -> list[str]:
        root = self.repo / directory
        return sorted(p.relative_to(self.repo).as_posix() for p in root.rglob("*") if p.is_file())


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


def _pylock_source(raw: Mapping[str, Any], files: tuple[LockedWheel, ...]) -> str:
    if isinstance(raw.get("index"), str):
        return str(raw["index"])
    vcs = raw.get("vcs")
    if isinstance(vcs, Mapping):
        return f"{vcs.get('url') or vcs.get('path', '')}@{vcs.get('commit-id', '')}"
    for key in ("archive", "directory"):
        location = raw.get(key)
        if isinstance(location, Mapping):
            return str(location.get("url") or location.get("path") or "")
    return _url_source(files[0].url) if files else ""


def read_pylock_text(text: str, source: str) -> dict[str, Locked]:
    """The packages of one PEP 751 file, by normalised name."""
    try:
        raw_packages = tomllib.loads(text).get("packages", [])
        packages = parse_pylock(text)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise FlowenvError(f"{source}: not a PEP 751 lock file: {exc}") from None
    out: dict[str, Locked] = {}
    for raw, package in zip(raw_packages, packages, strict=True):
        files = (*package.wheels, *((package.sdist,) if package.sdist else ()))
        out[canonicalize_name(package.name)] = Locked(
            version=package.version,
            source=_pylock_source(raw, files),
            hashes=tuple(sorted({f"sha256:{f.sha256}" for f in files if f.sha256})),
            manager="pip",
        )
    return out


def read_conda_lock_text(text: str, source: str) -> dict[str, dict[str, Locked]]:
    """The packages of one conda-lock v1 file: platform -> name -> package.

    A pip package that shares its name with a conda package of the same
    platform is keyed ``name (pip)`` so that neither hides the other.
    """
    lock = parse_conda_lock(text, source)
    out: dict[str, dict[str, Locked]] = {platform: {} for platform in lock.platforms}
    ordered = sorted(lock.packages, key=lambda p: (p.manager != "conda", p.name))
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
        )
    return out


def read_lock_text(text: str, source: str) -> dict[str | None, dict[str, Locked]]:
    """Either kind of lock file, told apart by content (textconv gets temporary file names).

    A pylock holds one platform (keyed by its ``[tool.flowenv] platform``, or
    None for a foreign PEP 751 file); a conda-lock holds several.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        # conda-lock YAML ("version: 1") is never valid TOML.
        platforms: dict[str | None, dict[str, Locked]] = {}
        platforms.update(read_conda_lock_text(text, source))
        return platforms
    platform = data.get("tool", {}).get("flowenv", {}).get("platform")
    return {platform if isinstance(platform, str) else None: read_pylock_text(text, source)}
