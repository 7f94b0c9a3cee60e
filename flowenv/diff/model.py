"""The one model every lock format is read into, and the model of a difference between two.

A set of locks is ``env -> platform -> {package name: Locked}``, whatever the
file format (PEP 751 pylock or conda-lock v1): comparing and rendering never
look at a file again.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

#: env -> platform -> package name -> what is locked.
PlatformLock = Mapping[str, "Locked"]
EnvLocks = Mapping[str, PlatformLock]
LockSet = Mapping[str, EnvLocks]

#: The kinds of package change, in the order renderers list them.
CHANGE_KINDS: tuple[str, ...] = (
    "upgraded",
    "downgraded",
    "changed",
    "added",
    "removed",
    "source",
    "hash",
)


@attrs.frozen(kw_only=True)
class Locked:
    """One locked package: its version, where it comes from and the digests of its files."""

    version: str
    #: An index or channel URL (see :mod:`flowenv.diff.load` for how it is derived).
    source: str
    #: "algorithm:hexdigest" of every file locked for this package, sorted.
    hashes: tuple[str, ...]
    #: "pip" (PyPI packages, also inside a conda-lock) or "conda": decides version ordering.
    manager: str
    #: (file name, "algorithm:hexdigest") of each file: tells the same file's hash
    #: changing from a file added or dropped, and the same file from another host.
    files: tuple[tuple[str, str], ...] = ()
    #: Whether ``source`` is an index the lock names (else a file's host or location).
    source_is_index: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "source": self.source,
            "hashes": list(self.hashes),
            "manager": self.manager,
        }


@attrs.frozen(kw_only=True)
class Change:
    """What happened to one package on one platform."""

    #: One of :data:`CHANGE_KINDS`. "changed": another version that orders equal
    #: (``1.0`` vs ``1.0.0``); "source"/"hash": same version, other origin or digests.
    kind: str
    name: str
    old: Locked | None
    new: Locked | None

    def to_dict(self) -> dict[str, object]:
        return {
            "package": self.name,
            "change": self.kind,
            "old": self.old.to_dict() if self.old else None,
            "new": self.new.to_dict() if self.new else None,
        }


@attrs.frozen(kw_only=True)
class PlatformDiff:
    platform: str
    #: "added", "removed" (the platform's lock appeared or vanished) or "changed".
    status: str
    changes: tuple[Change, ...]
    #: How many packages the platform locks on the side that has it (for "removed" summaries).
    size: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "status": self.status,
            "changes": [c.to_dict() for c in self.changes],
        }


@attrs.frozen(kw_only=True)
class EnvDiff:
    env: str
    #: "added", "removed" or "changed".
    status: str
    platforms: tuple[PlatformDiff, ...]
    #: After the change: packages still locked at different versions on different
    #: platforms, as (name, ((platform, version), ...)).
    platform_differences: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "env": self.env,
            "status": self.status,
            "platforms": [p.to_dict() for p in self.platforms],
            "platform-differences": {
                name: dict(versions) for name, versions in self.platform_differences
            },
        }


@attrs.frozen(kw_only=True)
class LockDiff:
    """Every difference between two sets of locks; ``old``/``new`` label the two sides."""

    old: str
    new: str
    envs: tuple[EnvDiff, ...]

    def __bool__(self) -> bool:
        return bool(self.envs)

    def counts(self) -> dict[str, int]:
        """Package changes by kind, summed over every env and platform."""
        counts = dict.fromkeys(CHANGE_KINDS, 0)
        for env in self.envs:
            for platform in env.platforms:
                for change in platform.changes:
                    counts[change.kind] += 1
        return counts

    def to_dict(self) -> dict[str, object]:
        return {
            "format": 1,
            "old": self.old,
            "new": self.new,
            "envs": [e.to_dict() for e in self.envs],
            "counts": self.counts(),
        }
