"""Lock a PyPI-only environment: one uv resolution and one pylock file per platform.

Each platform gets its own ``uv pip compile --python-platform`` call, so every
lock holds exactly the wheels (and hashes) uv chose for that platform, with
markers evaluated there. A single ``--universal`` resolution split per
platform was measured (``benchmarks/bench_lock.py``) and not chosen: it saves
a call per platform but may pick a version that has no wheel for one of them,
and its markers would have to be re-evaluated outside uv.

**Same versions across platforms.** The first of the env's platforms (in
flowenv's platform order, so linux-64 whenever it is locked) *leads*. All
platforms are resolved at once, each on its own previous pins; a platform
whose result pins a package the lead also has at another version is resolved
again with the lead's pins as preferences (uv's "existing output file"), so it
takes the lead's version of every package it can install and resolves the rest
on its own. Where it cannot use the lead's version (no wheel for it),
versions still differ, and ``show`` and ``diff`` list them. When the lead is
not being resolved (``lock -p``), its lock on disk leads if it is fresh.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flowenv.config.load import normalize_pypi_name
from flowenv.config.models import Config
from flowenv.engines.uv import compile_pylock
from flowenv.errors import ResolutionError
from flowenv.local_packages import localize
from flowenv.lockfiles.layout import lock_path, recorded_input_hash
from flowenv.lockfiles.pylock import EMPTY_PYLOCK, canonical_pylock
from flowenv.lockfiles.toml_render import render
from flowenv.resolution import LockOptions, disagree
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


def _parse(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _packages(text: str | None, document: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """name -> package table of a pylock ``text`` (``document``: its parsed form, if known)."""
    if text is None:
        return {}
    if document is None:
        document = _parse(text)
    if document is None:
        return {}  # an unreadable previous lock only loses its preferences
    packages = document.get("packages", [])
    return {
        normalize_pypi_name(p["name"]): p
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
    moving = {normalize_pypi_name(p) for p in options.upgrade_packages}
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
    """Resolve ``env`` for ``platforms``, following the lead; file name -> canonical pylock text.

    ``constraints`` (platform -> requirement lines, e.g. ``alpha==1.0``) bound
    the resolution: a solve group feeds the versions its envs must share here.
    """
    every = env.platforms or tuple(platforms)
    order = [p for p in every if p in platforms] + [p for p in platforms if p not in every]
    out = {
        # Nothing to resolve (a Python-only env, as PeekabooFlow's base): the
        # answer is known, so no uv process is started.
        lock_path(config.lock_root, env, p).name: canonical_pylock(EMPTY_PYLOCK, env, p)
        for p in order
        if not env.pypi_on(p)
    }
    order = [p for p in order if env.pypi_on(p)]
    if not order:
        return out
    lead_platform = next((p for p in every if env.pypi_on(p)), order[0])
    lead: str | None = None
    if lead_platform not in order:
        # Not re-resolved in this run: its lock leads if it was made from these inputs.
        lead_lock = lock_path(config.lock_root, env, lead_platform)
        if recorded_input_hash(lead_lock, lead_platform) == env.input_hash(lead_platform):
            lead = _previous(lead_lock)

    def resolve(platform: str, previous: str | None, how: LockOptions) -> str | ResolutionError:
        try:
            return compile_pylock(
                [p.requirement(config.root) for p in env.pypi_on(platform)],
                python=env.python,
                platform=platform,
                settings=env.pypi_settings,
                label=f"{env.name} · {platform}",
                # The env's -c constraints, then whatever the caller bounds it by.
                constraints=(
                    *(c.requirement(config.root) for c in env.pypi_constraints),
                    *(constraints or {}).get(platform, ()),
                ),
                previous=previous,
                upgrade=how.upgrade,
                upgrade_packages=how.upgrade_packages,
                root=config.root,
                pinned=env.pinned_on(platform),
                system=env.system_on(platform),
            )
        except ResolutionError as exc:
            return exc

    own = {p: _previous(lock_path(config.lock_root, env, p)) for p in order}
    # Imported here: `lock --check` never resolves.
    from flowenv._threads import in_threads

    # Every platform at once on its own previous pins, as if alone; in the
    # common case they already agree with the lead and one round is all.
    firsts = [functools.partial(resolve, p, own[p], options) for p in order]
    raw = dict(zip(order, in_threads(firsts, len(order)), strict=True))
    if lead_platform in raw:
        outcome = raw[lead_platform]
        lead = outcome if isinstance(outcome, str) else None
    # uv's outputs are read by the agreement check and then put in canonical
    # form: each is parsed once (text -> document; None: not TOML).
    documents: dict[str, dict[str, Any] | None] = {}

    def parsed(text: str) -> dict[str, Any] | None:
        if text not in documents:
            documents[text] = _parse(text)
        return documents[text]

    # A follower that disagrees with the lead on a shared package resolves
    # again, preferring the lead's pins; it keeps what it cannot install.
    again = [p for p in order if p != lead_platform and _disagree(raw[p], lead, parsed)]

    def follow(platform: str) -> str | ResolutionError:
        previous, how = preferences(own[platform], lead, options)
        return resolve(platform, previous, how)

    followers = [functools.partial(follow, p) for p in again]
    for platform, outcome in zip(again, in_threads(followers, len(again)), strict=True):
        if isinstance(outcome, str):
            raw[platform] = outcome
    failures = [outcome for outcome in raw.values() if isinstance(outcome, ResolutionError)]
    if failures:
        # Every platform was tried: one run reports every failure, in platform order.
        raise ResolutionError("\n\n".join(exc.message for exc in failures))
    for p in order:
        path = lock_path(config.lock_root, env, p)
        text = localize(str(raw[p]), env, path.parent, config.root)
        out[path.name] = canonical_pylock(text, env, p, documents.get(text))
    return out


def _disagree(
    outcome: str | ResolutionError,
    lead: str | None,
    parsed: Callable[[str], Mapping[str, Any] | None] = _parse,
) -> bool:
    """Whether a resolution pins a package it shares with the lead's at another version."""
    if not isinstance(outcome, str) or lead is None:
        return False
    mine, theirs = _packages(outcome, parsed(outcome)), _packages(lead, parsed(lead))
    return disagree(
        {n: str(p.get("version")) for n, p in mine.items()},
        {n: str(p.get("version")) for n, p in theirs.items()},
    )
