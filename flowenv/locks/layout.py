"""Where each environment's lock lives and whether it is fresh, without parsing it fully.

This module is on the ``lock --check`` path: it reads the input hash a lock
records with a regular expression and imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import attrs

from flowenv.spec import EnvSpec

PYLOCK_PATTERN = "pylock.{platform}.toml"
CONDA_LOCK_NAME = "conda-lock.yml"

_PYLOCK_HASH = re.compile(r'^input-hash\s*=\s*"([0-9a-f]{64})"', re.MULTILINE)
# conda-lock.yml keeps flowenv's hashes in metadata.custom_metadata, one key per platform.
_CONDA_HASH = re.compile(r"^\s+flowenv-input-hash-([a-z0-9-]+):\s*'?([0-9a-f]{64})'?", re.MULTILINE)


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
    return [LockTarget(env, p, lock_path(lock_root, env, p), live) for env in envs for p in wanted]


def recorded_input_hashes(path: Path) -> dict[str, str]:
    """platform -> input hash, as the lock at ``path`` records them ({} if absent or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    if path.name == CONDA_LOCK_NAME:
        return dict(_CONDA_HASH.findall(text))
    match = _PYLOCK_HASH.search(text)
    platform = path.name.removeprefix("pylock.").removesuffix(".toml")
    return {platform: match.group(1)} if match else {}


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


def lock_files(lock_root: Path) -> list[Path]:
    """Every file under ``lock_root`` named like a flowenv lock (nothing else is ever touched)."""
    if not lock_root.is_dir():
        return []
    found = [*lock_root.glob(f"*/{PYLOCK_PATTERN.format(platform='*')}")]
    found += lock_root.glob(f"*/{CONDA_LOCK_NAME}")
    return sorted(found)
