"""Lock a PyPI-only environment: one uv resolution and one pylock file per platform.

Each platform gets its own ``uv pip compile --python-platform`` call, so every
lock holds exactly the wheels (and hashes) uv chose for that platform, with
markers evaluated there. A single ``--universal`` resolution split per
platform was measured (``benchmarks/bench_lock.py``) and not chosen: it saves
a call per platform but may pick a version that has no wheel for one of them,
and its markers would have to be re-evaluated outside uv.

**Same versions across platforms.** The first platform of
``project.platforms`` (the *lead*) is resolved first; every other platform
then hands uv the lead's pins as preferences (uv's "existing output file"), so
it takes the lead's version of every package it can install and resolves the
rest on its own. Where a platform cannot use the lead's version (no wheel for
it, a dependency only it has), versions differ, and ``show`` lists them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from flowenv.config.models import Config
from flowenv.errors import ResolutionError
from flowenv.lockers import LockOptions
from flowenv.locks.layout import lock_path, recorded_input_hash
from flowenv.locks.pylock import EMPTY_PYLOCK, canonical_pylock
from flowenv.locks.toml_render import render
from flowenv.resolvers.uv import compile_pylock
from flowenv.spec import EnvSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _previous(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _packages(text: str | None) -> dict[str, dict[str, Any]]:
    if text is None:
        return {}
    try:
        packages = tomllib.loads(text).get("packages", [])
    except tomllib.TOMLDecodeError:
        return {}  # an unreadable previous lock only loses its preferences
    return {
        canonicalize_name(p["name"]): p
        for p in packages
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }


def preferences(
    own: str | None, lead: str | None, options: LockOptions
) -> tuple[str | None, LockOptions]:
    """The pylock text uv should prefer for a follower platform, and the options to pass.

    The lead's pins win; the platform's own previous pins fill in the packages
    the lead does not have (platform-only dependencies), unless an upgrade
    lets them move. Upgrades were already applied to the lead, so a follower
    passes none to uv (they would discard the lead's pins too).
    """
    if lead is None:
        return own, options
    moving = {canonicalize_name(p) for p in options.upgrade_packages}
    kept = {} if options.upgrade else _packages(own)
    merged = {n: p for n, p in kept.items() if n not in moving} | _packages(lead)
    if not merged:
        return None, LockOptions()
    document = {
        "lock-version": "1.0",
        "created-by": "flowenv",
        "packages": [merged[name] for name in sorted(merged)],
    }
    return render(document), LockOptions()


def lock_pypi_env(
    config: Config,
    env: EnvSpec,
    platforms: Sequence[str],
    options: LockOptions,
    *,
    constraints: Mapping[str, Sequence[str]] | None = None,
) -> Mapping[str, str]:
    """Resolve ``env`` for ``platforms``, the lead first; file name -> canonical pylock text.

    ``constraints`` (platform -> requirement lines, e.g. ``alpha==1.0``) bound
    the resolution: a solve group feeds the versions its envs must share here.
    """
    order = [p for p in config.project.platforms if p in platforms]
    order += [p for p in platforms if p not in order]
    if not env.pypi:
        # Nothing to resolve (a Python-only env, as PeekabooFlow's base): the
        # answer is known, so no uv process is started.
        return {
            lock_path(config.lock_root, env, p).name: canonical_pylock(EMPTY_PYLOCK, env, p)
            for p in order
        }
    lead_platform = config.project.platforms[0] if config.project.platforms else order[0]
    lead: str | None = None
    if lead_platform not in order:
        # Not re-resolved in this run: its lock leads if it was made from these inputs.
        lead_lock = lock_path(config.lock_root, env, lead_platform)
        if recorded_input_hash(lead_lock, lead_platform) == env.input_hash():
            lead = _previous(lead_lock)

    def resolve(platform: str, previous: str | None, how: LockOptions) -> str:
        return compile_pylock(
            [p.requirement() for p in env.pypi],
            python=env.python,
            platform=platform,
            settings=env.pypi_settings,
            label=f"{env.name} · {platform}",
            constraints=tuple((constraints or {}).get(platform, ())),
            previous=previous,
            upgrade=how.upgrade,
            upgrade_packages=how.upgrade_packages,
            root=config.root,
        )

    raw: dict[str, str] = {}
    failures: list[ResolutionError] = []
    followers = order
    if lead_platform in order:
        path = lock_path(config.lock_root, env, lead_platform)
        try:
            raw[lead_platform] = lead = resolve(lead_platform, _previous(path), options)
        except ResolutionError as exc:
            # The others are still resolved on their own: one run reports every failure.
            failures.append(exc)
        followers = [p for p in order if p != lead_platform]
    for platform in followers:
        own = _previous(lock_path(config.lock_root, env, platform))
        previous, how = preferences(own, lead, options)
        try:
            raw[platform] = resolve(platform, previous, how)
        except ResolutionError as exc:
            failures.append(exc)
    if failures:
        raise ResolutionError("\n\n".join(exc.message for exc in failures))
    return {
        lock_path(config.lock_root, env, p).name: canonical_pylock(raw[p], env, p) for p in order
    }
