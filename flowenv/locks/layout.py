"""Where each environment's lock lives and whether it is fresh, without parsing it fully.

This module is on the ``lock --check`` path: it reads the input hash a lock
records from its header (see :mod:`flowenv.locks.freshness`) and imports
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from flowenv.locks.freshness import CONDA_LOCK_NAME, lock_files, recorded_input_hashes
from flowenv.spec import EnvSpec

__all__ = [
    "CONDA_LOCK_NAME",
    "PYLOCK_PATTERN",
    "LockTarget",
    "is_fresh",
    "lock_files",
    "lock_path",
    "lock_status",
    "recorded_input_hash",
    "recorded_input_hashes",
    "targets",
]

PYLOCK_PATTERN = "pylock.{platform}.toml"

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
    if env.kind == "conda":
        return lock_root / env.name / CONDA_LOCK_NAME
    return lock_root / env.name / PYLOCK_PATTERN.format(platform=platform)


def targets(
    lock_root: Path,
    envs: Iterable[EnvSpec],
    platforms: Iterable[str],
    live_platforms: Iterable[str] = (),
) -> list[LockTarget]:
    """Every env × platform pair, in a stable order."""
    wanted = tuple(platforms)
    live = tuple(live_platforms)
    return [
        LockTarget(env, p, lock_path(lock_root, env, p), live) for env in envs for p in wanted
    ]


def recorded_input_hash(path: Path, platform: str) -> str | None:
    """The input hash ``path`` records for ``platform``, or None if absent or unreadable."""
    return recorded_input_hashes(path).get(platform)


def is_fresh(target: LockTarget) -> bool:
    """Whether the lock on disk was made from exactly this target's inputs."""
    recorded = recorded_input_hashes(target.path)
    if recorded.get(target.platform) != target.env.input_hash(target.platform):
        return False
    return not target.live_platforms or set(recorded) <= set(target.live_platforms)


def lock_status(target: LockTarget) -> str:
    """``"fresh"``, ``"stale"`` (made from other inputs) or ``"missing"``."""
    if is_fresh(target):
        return "fresh"
    return "stale" if target.path.exists() else "missing"
