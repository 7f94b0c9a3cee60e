"""From a lock file to what the store must hold for it: a manifest and each artifact's source."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from flowenv.errors import CheckFailed, UsageError
from flowenv.lockfiles.layout import LockTarget, is_fresh
from flowenv.spec import strip_credentials
from flowenv.store.layout import Artifact, Manifest, check_filename, check_sha256

if TYPE_CHECKING:
    from flowenv.lockfiles.pylock import LockedPackage


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
    if not target.path.exists():
        raise CheckFailed(f"{target.label}: no lock ({relative}); run `flowenv lock` first")
    if not is_fresh(target):
        raise CheckFailed(f"{target.label}: lock is stale ({relative}); run `flowenv lock` first")
    if target.env.kind == "conda":
        return _plan_conda(target)
    return _plan_pypi(target)


def _plan_pypi(target: LockTarget) -> EnvPlan:
    from flowenv.lockfiles.pylock import packages_for, read_pylock_document

    where = str(target.path)
    lock = read_pylock_document(target.path)
    python = lock.python or target.env.python
    artifacts: list[Artifact] = []
    sources: list[tuple[str, str]] = []
    applicable = set(packages_for(lock, target.platform, python, where))
    for i, package in enumerate(lock.packages):
        if package not in applicable:
            continue  # its marker is false on this platform: never installed there
        at = f"{where}: packages[{i}]"
        if ((package.directory and package.source_hash) or package.git) and not package.wheels:
            # flowenv's own local or git package: sync builds it into a wheel.
            from flowenv.local_packages import source_artifact

            artifact = source_artifact(package, at)
            artifacts.append(artifact)
            sources.append((artifact.key, package.git or package.directory or ""))
            continue
        wheels = package.wheels
        if package.archive and package.archive.name.endswith(".whl"):
            wheels = (*wheels, package.archive)
        if not wheels:
            label = " ".join(filter(None, (package.name, package.version)))
            raise UsageError(f"{at} ({label}) {_not_deployable(package)}")
        for j, wheel in enumerate(wheels):
            artifact = Artifact(
                sha256=check_sha256(wheel.sha256, f"{at}.wheels[{j}]"),
                filename=check_filename(wheel.name, f"{at}.wheels[{j}]"),
                manager="pip",
                name=package.name,
                version=package.version,
            )
            artifacts.append(artifact)
            sources.append((artifact.key, wheel.url))
    return _env_plan(target, "pypi", python, artifacts, sources)


def _not_deployable(package: LockedPackage) -> str:
    """Why a package without a wheel cannot reach a remote executor."""
    if package.vcs:
        return f"is a VCS checkout ({package.vcs}): it cannot be deployed to a remote executor"
    if package.directory:
        return (
            f"is a local directory ({package.directory}): it cannot be deployed "
            "to a remote executor"
        )
    return "has no wheel; hydrate installs wheels only, offline"


def _plan_conda(target: LockTarget) -> EnvPlan:
    from flowenv.lockfiles.condalock import read_conda_lock

    lock = read_conda_lock(target.path)
    where = str(target.path)
    artifacts: list[Artifact] = []
    sources: list[tuple[str, str]] = []
    # The main category, each package once, no virtual package; keyed by the
    # entry's position in the file, so that an error names the right one.
    wanted = {id(p) for p in lock.for_platform(target.platform, ("main",)) if not p.is_virtual}
    # Git packages the env declares (pinned to a commit by the loader): only
    # those are fetched and built, never a VCS URL a lock merely names.
    declared_git = {
        strip_credentials(p.url)
        for p in target.env.pypi_on(target.platform)
        if p.url.startswith("git+")
    }
    for i, package in enumerate(lock.packages):
        if id(package) not in wanted:
            continue
        at = f"{where}: package[{i}] ({package.name})"
        git = package.manager == "pip" and package.url in declared_git
        if package.source_hash or git:
            # flowenv's own local or git package: sync builds it into a wheel.
            from flowenv.local_packages import git_source, unbuilt

            source = git_source(package.url) if git else package.source_hash
            artifact = unbuilt(package.name, package.version, source)
            artifacts.append(artifact)
            sources.append((artifact.key, package.url if git else package.directory))
            continue
        if not package.sha256:
            reason = (
                f"a direct reference ({package.url}) without a file hash"
                if package.direct
                else "locked without a sha256"
            )
            raise UsageError(
                f"{at} is {reason}: hydrate checks every artifact's sha256, so it cannot be "
                "deployed to a remote executor"
            )
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
