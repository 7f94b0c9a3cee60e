"""Lock a PyPI-only environment: one uv resolution and one pylock file per platform."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flowenv.config.models import Config
from flowenv.lockers import LockOptions
from flowenv.locks.layout import lock_path
from flowenv.locks.pylock import EMPTY_PYLOCK, canonical_pylock
from flowenv.resolvers.uv import compile_pylock
from flowenv.spec import EnvSpec


def _previous(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def lock_pypi_env(
    config: Config, env: EnvSpec, platforms: Sequence[str], options: LockOptions
) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for platform in platforms:
        path = lock_path(config.lock_root, env, platform)
        if not env.pypi_on(platform):
            # Nothing to resolve (a Python-only env, as PeekabooFlow's base): the
            # answer is known, so no uv process is started.
            out[path.name] = canonical_pylock(EMPTY_PYLOCK, env, platform)
            continue
        raw = compile_pylock(
            [p.requirement() for p in env.pypi_on(platform)],
            python=env.python,
            platform=platform,
            settings=env.pypi_settings,
            label=f"{env.name} · {platform}",
            previous=_previous(path),
            upgrade=options.upgrade,
            upgrade_packages=options.upgrade_packages,
            root=config.root,
            pinned=env.pinned_on(platform),
            system=env.system_on(platform),
        )
        out[path.name] = canonical_pylock(raw, env, platform)
    return out
