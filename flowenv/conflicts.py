"""The artifact-safety report: packages whose locked versions differ between envs of a flow.

An object pickled in one step and loaded in another needs the same version
of every package its classes come from. This reads the lock files only (no
resolver, no network) and lists, per platform, every package locked in two
or more envs at different versions, with the envs (and their steps) on each
side. Packages meet by identity: a PyPI package, or a conda package that is
a PyPI distribution (:mod:`flowenv.resolution.conda_pypi`: conda's ``pytorch``
is PyPI's ``torch``), by its PEP 503-normalised PyPI name; any other conda
package as ``NAME (conda)`` (conda-forge's ``tzdata`` is not PyPI's).
Versions compare as PEP 440 (``1.26`` is ``1.26.0``).
"""

from __future__ import annotations

from typing import Any

import attrs

from flowenv.config.load import normalize_pypi_name
from flowenv.config.models import Config
from flowenv.lockfiles.layout import CONDA_LOCK_NAME, is_fresh, targets
from flowenv.resolution.conda_pypi import same_version
from flowenv.spec import EnvSpec, build_environments


@attrs.frozen(kw_only=True)
class VersionConflict:
    """One package on one platform, locked at more than one version across envs."""

    platform: str
    package: str
    #: (version, env names locking it), sorted by version text.
    versions: tuple[tuple[str, tuple[str, ...]], ...]


@attrs.frozen(kw_only=True)
class ConflictReport:
    conflicts: tuple[VersionConflict, ...]
    #: "env · platform" targets whose lock is missing or stale (not compared).
    unchecked: tuple[str, ...]
    #: env name -> steps that run in it.
    steps: tuple[tuple[str, tuple[str, ...]], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "conflicts": [
                {
                    "platform": c.platform,
                    "package": c.package,
                    "versions": {version: list(envs) for version, envs in c.versions},
                }
                for c in self.conflicts
            ],
            "unchecked": list(self.unchecked),
            "steps": {env: list(steps) for env, steps in self.steps},
        }


def _locked(env: EnvSpec, path: Any, platform: str) -> dict[str, str]:
    """package identity -> version locked for ``platform`` in the lock at ``path``."""
    if path.name == CONDA_LOCK_NAME:
        from flowenv.lockfiles.condalock import read_conda_lock
        from flowenv.resolution.conda_pypi import identity

        table = dict(env.pypi_map)
        return {
            identity(p.manager, p.name, p.version, (n for n, _ in p.dependencies), table): p.version
            for p in read_conda_lock(path).for_platform(platform)
        }
    from flowenv.lockfiles.pylock import read_pylock

    return {normalize_pypi_name(p.name): p.version for p in read_pylock(path)}


def find_conflicts(config: Config) -> ConflictReport:
    """Compare the locks of every env of ``config``, per platform (see the module doc)."""
    environments = build_environments(config)
    platforms = config.project.platforms
    found: dict[tuple[str, str], dict[str, list[str]]] = {}
    unchecked: list[str] = []
    live = [
        target
        for env in environments.envs
        for target in targets(config.lock_root, [env], env.platforms, platforms)
    ]
    for target in live:
        if not is_fresh(target):
            unchecked.append(target.label)
            continue
        for name, version in _locked(target.env, target.path, target.platform).items():
            by_version = found.setdefault((target.platform, name), {})
            # Keyed by PEP 440 equality; shown as the first spelling locked.
            key = same_version(version)
            spelling = next((v for v in by_version if same_version(v) == key), version)
            by_version.setdefault(spelling, []).append(target.env.name)
    conflicts = tuple(
        VersionConflict(
            platform=platform,
            package=name,
            versions=tuple((v, tuple(sorted(envs))) for v, envs in sorted(by_version.items())),
        )
        for (platform, name), by_version in sorted(found.items())
        if len(by_version) > 1
    )
    return ConflictReport(
        conflicts=conflicts,
        unchecked=tuple(unchecked),
        steps=tuple((env.name, env.steps) for env in environments.envs),
    )


def render_conflicts(report: ConflictReport) -> str:
    """The human form: one block per platform, each version with its envs and their steps."""
    steps = dict(report.steps)

    def who(env: str) -> str:
        return f"{env} ({', '.join(steps[env])})" if steps.get(env) else env

    lines: list[str] = []
    if not report.conflicts:
        lines.append("no package is locked at different versions in different envs")
    else:
        lines.append(
            "packages locked at different versions in different envs "
            "(objects passed between these envs may not load):"
        )
    platform = None
    for conflict in report.conflicts:
        if conflict.platform != platform:
            platform = conflict.platform
            lines.append(f"{platform}:")
        for i, (version, envs) in enumerate(conflict.versions):
            name = conflict.package if i == 0 else ""
            lines.append(f"  {name:<20} {version:<12} {', '.join(who(e) for e in envs)}")
    if report.unchecked:
        lines.append(
            f"not compared (lock missing or stale; run `flowenv lock`): "
            f"{', '.join(report.unchecked)}"
        )
    return "".join(f"{line}\n" for line in lines)
