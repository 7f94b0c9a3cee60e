"""From a lock file to what the store must hold for it: a manifest and each artifact's source."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from flowenv.errors import CheckFailed, UsageError
from flowenv.locks.layout import LockTarget, is_fresh
from flowenv.store.layout import Artifact, Manifest, check_filename, check_sha256

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@attrs.frozen(kw_only=True)
class EnvPlan:
    """One env x platform: its manifest (sizes unknown yet) and each artifact's locked URL."""

    env: str
    platform: str
    lock_path: Path
    manifest: Manifest
    #: artifact key -> URL (or path) the lock names for it.
    sources: tuple[tuple[str, str], ...]

    @property
    def env_id(self) -> str:
        return self.manifest.env_id

    @property
    def label(self) -> str:
        return f"{self.env} · {self.platform}"


def plan_target(target: LockTarget) -> EnvPlan:
    """The plan for a fresh lock; a missing or stale lock is refused (run ``flowenv lock``)."""
    relative = f"{target.path.parent.name}/{target.path.name}"
    if not target.path.is_file():
        raise CheckFailed(f"{target.label}: no lock ({relative}); run `flowenv lock` first")
    if not is_fresh(target):
        raise CheckFailed(f"{target.label}: lock is stale ({relative}); run `flowenv lock` first")
    if target.env.kind == "conda":
        return _plan_conda(target)
    return _plan_pypi(target)


def _plan_pypi(target: LockTarget) -> EnvPlan:
    from flowenv.locks.pylock import parse_pylock

    text = target.path.read_text(encoding="utf-8")
    where = str(target.path)
    python = (
        tomllib.loads(text).get("tool", {}).get("flowenv", {}).get("python") or target.env.python
    )
    artifacts: list[Artifact] = []
    sources: list[tuple[str, str]] = []
    for i, package in enumerate(parse_pylock(text)):
        if not package.wheels:
            raise UsageError(
                f"{where}: packages[{i}] ({package.name} {package.version}) has no wheel; "
                "hydrate installs wheels only, offline"
            )
        for j, wheel in enumerate(package.wheels):
            at = f"{where}: packages[{i}].wheels[{j}]"
            artifact = Artifact(
                sha256=check_sha256(wheel.sha256, at),
                filename=check_filename(wheel.name, at),
                manager="pip",
                name=package.name,
                version=package.version,
            )
            artifacts.append(artifact)
            sources.append((artifact.key, wheel.url))
    return _env_plan(target, "pypi", str(python), artifacts, sources)


def _plan_conda(target: LockTarget) -> EnvPlan:
    from flowenv.locks.condalock import read_conda_lock

    lock = read_conda_lock(target.path)
    where = str(target.path)
    artifacts: list[Artifact] = []
    sources: list[tuple[str, str]] = []
    for i, package in enumerate(lock.for_platform(target.platform)):
        at = f"{where}: package[{i}] ({package.name})"
        artifact = Artifact(
            sha256=check_sha256(package.sha256, at),
            filename=check_filename(package.filename, at),
            manager="conda" if package.manager == "conda" else "pip",
            name=package.name,
            version=package.version,
        )
        artifacts.append(artifact)
        sources.append((artifact.key, package.url))
    return _env_plan(target, "conda", None, artifacts, sources)


def _env_plan(
    target: LockTarget,
    kind: str,
    python: str | None,
    artifacts: list[Artifact],
    sources: list[tuple[str, str]],
) -> EnvPlan:
    from flowenv.system import applicable

    manifest = Manifest(
        kind=kind,
        platform=target.platform,
        python=python,
        lock_name=target.path.name,
        artifacts=tuple(artifacts),
        # The lock is fresh (checked above), so the spec's requirements are the lock's.
        requires=applicable(target.env.system_on(target.platform), target.platform),
    )
    return EnvPlan(
        env=target.env.name,
        platform=target.platform,
        lock_path=target.path,
        manifest=manifest,
        sources=tuple(sources),
    )
