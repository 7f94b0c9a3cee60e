"""Where each environment's lock lives and whether it is fresh, without parsing it fully.

This module is on the ``lock --check`` path: it reads the input hash a lock
records from its header (see :mod:`flowenv.lockfiles.freshness`) and imports
nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from flowenv.lockfiles.freshness import CONDA_LOCK_NAME, hashes_in, is_lock_name, lock_files
from flowenv.spec import EnvSpec

__all__ = [
    "CONDA_LOCK_NAME",
    "PYLOCK_PATTERN",
    "LockTarget",
    "is_fresh",
    "is_lock_name",
    "lock_files",
    "lock_path",
    "lock_status",
    "locked_names",
    "recorded_input_hash",
    "recorded_input_hashes",
    "targets",
]

PYLOCK_PATTERN = "pylock.{platform}.toml"
# `name = "x"` of a [[packages]] entry (pylock) or `- name: x` of a package (conda-lock).
_LOCKED_NAME = re.compile(r"^\s*-?\s*name\s*[=:]\s*[\"']?([A-Za-z0-9_.-]+)", re.MULTILINE)


@attrs.frozen
class LockTarget:
    """One environment × platform pair, and the file its lock lives in."""

    env: EnvSpec
    platform: str
    path: Path
    #: Every platform the env is locked for. A conda-lock.yml holding entries
    #: for any other platform (one dropped from the project or env) is not fresh.
    live_platforms: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.env.name} · {self.platform}"


def lock_path(lock_root: Path, env: EnvSpec, platform: str) -> Path:
    """``locks/<env>/pylock.<platform>.toml`` or ``locks/<env>/conda-lock.yml``."""
    # One joinpath, not two `/`: a re-lock of a hundred envs builds every path.
    if env.kind == "conda":
        return lock_root.joinpath(env.name, CONDA_LOCK_NAME)
    return lock_root.joinpath(env.name, PYLOCK_PATTERN.format(platform=platform))


def targets(
    lock_root: Path,
    envs: Iterable[EnvSpec],
    platforms: Iterable[str],
    live_platforms: Iterable[str] = (),
) -> list[LockTarget]:
    """Every env × platform pair, in a stable order."""
    wanted = tuple(platforms)
    live = tuple(live_platforms)
    return [LockTarget(env, p, lock_path(lock_root, env, p), live) for env in envs for p in wanted]


def recorded_input_hashes(path: Path) -> dict[str, str]:
    """platform -> input hash, as the lock at ``path`` records them ({} if there is no lock).

    A lock that exists but cannot be read (no permission, not UTF-8) is a
    :class:`~flowenv.errors.LockFileError`, not "stale": re-locking over a
    file nobody can read would hide the real problem.
    """
    from flowenv.lockfiles.reading import read_lock_file

    if not path.exists() and not path.is_symlink():
        return {}
    return hashes_in(path.name, read_lock_file(path).encode("utf-8"))


def recorded_input_hash(path: Path, platform: str) -> str | None:
    """The input hash ``path`` records for ``platform``, or None if there is none."""
    return recorded_input_hashes(path).get(platform)


def is_fresh(target: LockTarget, header: Mapping[str, str] | None = None) -> bool:
    """Whether the lock on disk was made from exactly this target's inputs.

    ``header``: the input hashes the lock's header is known to hold (see
    :func:`flowenv.lockfiles.freshness.known_headers`); None: read the lock.
    """
    recorded = recorded_input_hashes(target.path) if header is None else header
    if recorded.get(target.platform) != target.env.input_hash(target.platform):
        return False
    return not target.live_platforms or set(recorded) <= set(target.live_platforms)


def validate_lock(path: Path) -> None:
    """Read the lock at ``path`` whole (shape, names, bounds); a :class:`LockFileError` if not.

    The input-hash check above reads one line; a command that reports a lock
    as fresh reads the whole file first, so that a damaged or hostile lock is
    an error there, not in the executor that installs it.
    """
    from flowenv.lockfiles.condalock import read_conda_lock
    from flowenv.lockfiles.pylock import read_pylock_document

    if path.name == CONDA_LOCK_NAME:
        read_conda_lock(path)
    else:
        read_pylock_document(path)


def lock_status(target: LockTarget) -> str:
    """``"fresh"``, ``"stale"`` (made from other inputs) or ``"missing"``."""
    if is_fresh(target):
        return "fresh"
    return "stale" if target.path.exists() else "missing"


def locked_names(path: Path) -> set[str]:
    """Every package name the lock at ``path`` mentions (a loose scan; {} if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return set(_LOCKED_NAME.findall(text))
