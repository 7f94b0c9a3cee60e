"""Compare two sets of locks: per env and platform, what was added, removed, moved or re-sourced.

Version order:

* PyPI packages (``manager: pip``): PEP 440 through ``packaging.version``.
* conda packages: conda versions are mostly PEP 440-shaped, so
  ``packaging.version`` decides whenever it parses both; otherwise (``1.1.1w``,
  ``9e``, ``2024.1_post``) both are compared as a natural sort key: numbers
  numerically, letters alphabetically, so ``1.10 > 1.9`` and ``1.1.1w > 1.1.1v``.
  That is not conda's full ordering (it ignores conda's special ``dev``/``post``
  ranks) but picks the right direction for the versions real channels publish.

Two versions that order equal but are spelt differently are "changed".
"""

from __future__ import annotations

import re
from collections.abc import Collection

from packaging.version import InvalidVersion, Version

from flowenv.diff.model import (
    Change,
    EnvDiff,
    EnvLocks,
    LockDiff,
    Locked,
    LockSet,
    PlatformDiff,
    PlatformLock,
)

_CHUNK = re.compile(r"\d+|[A-Za-z]+")


def _natural_key(version: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (1, int(c), "") if c.isdigit() else (0, 0, c.lower()) for c in _CHUNK.findall(version)
    )


def compare_versions(old: str, new: str) -> int:
    """-1, 0 or 1 as ``old`` orders before, equal to or after ``new``.

    One rule serves both managers: a PyPI version that is not PEP 440 (a
    legacy release) is best ordered by the same natural key as a conda one.
    """
    try:
        a: object = Version(old)
        b: object = Version(new)
    except InvalidVersion:
        a, b = _natural_key(old), _natural_key(new)
    if a == b:
        return 0
    return -1 if a < b else 1  # type: ignore[operator]


def _package_change(name: str, old: Locked | None, new: Locked | None) -> Change | None:
    if old is None:
        return Change(kind="added", name=name, old=None, new=new)
    if new is None:
        return Change(kind="removed", name=name, old=old, new=None)
    if old.version != new.version:
        order = compare_versions(old.version, new.version)
        kind = {-1: "upgraded", 1: "downgraded"}.get(order, "changed")
        return Change(kind=kind, name=name, old=old, new=new)
    if old.manager == "pip" and _same_files(old, new):
        return None
    if old.source != new.source:
        return Change(kind="source", name=name, old=old, new=new)
    if _hash_changed(old, new):
        return Change(kind="hash", name=name, old=old, new=new)
    return None


def _same_files(old: Locked, new: Locked) -> bool:
    """Whether a PyPI package is the very same files, whichever way the lock reaches them.

    A file of the same name and digest on both sides is the same artifact:
    reached through an index URL on one side and the files host on the other,
    or with other wheels added or dropped beside it, nothing installed
    changes. A different index named on both sides still counts as a change.
    """
    before, after = dict(old.files), dict(new.files)
    common = before.keys() & after.keys()
    if not common or any(before[f] != after[f] for f in common):
        return False
    return old.source == new.source or old.source_is_index != new.source_is_index


def _hash_changed(old: Locked, new: Locked) -> bool:
    """A file present on both sides changed its digest; or, with no file in common, the digests."""
    before, after = dict(old.files), dict(new.files)
    common = before.keys() & after.keys()
    if common:
        return any(before[f] != after[f] for f in common)
    return old.hashes != new.hashes


def _platform_diff(
    platform: str, old: PlatformLock | None, new: PlatformLock | None
) -> PlatformDiff | None:
    before, after = old or {}, new or {}
    changes = []
    for name in sorted(set(before) | set(after)):
        change = _package_change(name, before.get(name), after.get(name))
        if change is not None:
            changes.append(change)
    status = "added" if old is None else "removed" if new is None else "changed"
    if status == "changed" and not changes:
        return None
    return PlatformDiff(
        platform=platform,
        status=status,
        changes=tuple(changes),
        size=len(after if new is not None else before),
    )


def _env_diff(env: str, old: EnvLocks | None, new: EnvLocks | None) -> EnvDiff | None:
    before, after = old or {}, new or {}
    platforms = []
    for platform in sorted(set(before) | set(after)):
        diff = _platform_diff(platform, before.get(platform), after.get(platform))
        if diff is not None:
            platforms.append(diff)
    if not platforms:
        return None
    status = "added" if old is None else "removed" if new is None else "changed"
    differences = platform_differences(after)
    return EnvDiff(
        env=env,
        status=status,
        platforms=tuple(platforms),
        platform_differences=tuple(
            (name, tuple(by_platform.items())) for name, by_platform in differences.items()
        ),
    )


def platform_differences(env: EnvLocks) -> dict[str, dict[str, str]]:
    """Packages an env locks at different versions per platform: name -> platform -> version.

    flowenv makes every platform follow the lead platform's versions where it
    can (see :mod:`flowenv.resolution.pypi`); what remains here is where a platform
    could not, the thing to know before an artifact pickled on one platform is
    loaded on another. A package locked on one platform only is not listed.
    """
    versions: dict[str, dict[str, str]] = {}
    for platform in sorted(env):
        for name, locked in env[platform].items():
            versions.setdefault(name, {})[platform] = locked.version
    return {
        name: by_platform
        for name, by_platform in sorted(versions.items())
        if len(set(by_platform.values())) > 1
    }


def compare(
    old: LockSet, new: LockSet, *, old_label: str, new_label: str, envs: Collection[str] = ()
) -> LockDiff:
    """Every difference from ``old`` to ``new``, restricted to ``envs`` when given."""
    names = sorted(set(old) | set(new))
    diffs = []
    for name in names:
        if envs and name not in envs:
            continue
        diff = _env_diff(name, old.get(name), new.get(name))
        if diff is not None:
            diffs.append(diff)
    return LockDiff(old=old_label, new=new_label, envs=tuple(diffs))
