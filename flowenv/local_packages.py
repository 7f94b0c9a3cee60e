"""Local packages through lock, sync and hydrate.

* **lock**: uv resolves ``name @ file:///…/libs/mylib`` with the env (reading
  the package's static metadata, so its dependencies are locked with
  everything else) and writes a ``directory`` entry with an absolute path.
  :func:`localize` makes that path relative to the lock file (PEP 751's rule)
  and records the source hash under ``[packages.tool.flowenv]``; the env's
  input hash holds the same source hash, so editing the package makes the
  lock stale.
* **plan**: a directory entry becomes an artifact known by its source hash
  (:func:`source_artifact`); the env id follows from the lock alone.
* **sync**: :func:`build_plans` builds each local package once with
  ``uv build``, refuses a wheel that is not pure Python (one wheel then
  serves every locked platform), and puts the built wheel in the plan so it
  is uploaded, content-addressed, like any other artifact. ``hydrate`` then
  installs it from the store like any other wheel, hash-checked.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from flowenv.config.models import PypiPackage
from flowenv.errors import FlowenvError, UsageError
from flowenv.spec import EnvSpec, strip_credentials

if TYPE_CHECKING:
    # Only sync needs them: a lock (which imports this module for localize)
    # would otherwise import the store and OpenSSL before its first uv call.
    from flowenv.lockfiles.pylock import LockedPackage
    from flowenv.store.layout import Artifact
    from flowenv.store.plan import EnvPlan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Placeholder digest of a wheel not built yet (identity ignores it; see Artifact.identity).
UNBUILT = "0" * 64


def _all_pypi(env: EnvSpec) -> tuple[PypiPackage, ...]:
    """The env's PyPI packages on every platform (target tables included)."""
    return (*env.pypi, *(p for _, target in env.targets for p in target.pypi))


def localize(uv_output: str, env: EnvSpec, lock_dir: Path, root: Path) -> str:
    """uv's pylock with each local package's directory relative to ``lock_dir`` and hashed."""
    local = {p.name: p for p in _all_pypi(env) if p.path}
    if not local:
        return uv_output
    from flowenv.config.load import normalize_pypi_name
    from flowenv.lockfiles.toml_render import render

    document: dict[str, Any] = tomllib.loads(uv_output)
    for package in document.get("packages", []):
        declared = local.get(normalize_pypi_name(str(package.get("name", ""))))
        if declared is None or "directory" not in package:
            continue
        relative = os.path.relpath(root / declared.path, lock_dir)
        package["directory"] = {"path": Path(relative).as_posix()}
        package.setdefault("tool", {})["flowenv"] = {"source-hash": declared.source_hash}
    return render(document)


def source_artifact(package: LockedPackage, where: str) -> Artifact:
    """The artifact a local or git package will be once built (digest and file name unknown).

    A git package's source is its pinned commit: the hash of ``git+URL@COMMIT``
    (credentials stripped) identifies it as exactly as a directory's source hash.
    """
    source = git_source(package.git) if package.git else package.source_hash
    if len(source) != 64:
        raise UsageError(
            f"{where}: local package {package.name} records no source hash; run `flowenv lock`"
        )
    return unbuilt(package.name, package.version, source)


def git_source(vcs: str) -> str:
    """A git package's source hash: of ``git+URL@COMMIT[#subdirectory=DIR]``, no credentials."""
    import hashlib

    return hashlib.sha256(strip_credentials(vcs).encode()).hexdigest()


def unbuilt(name: str, version: str, source: str) -> Artifact:
    """The artifact of a local or git package before sync builds it (``source``: its hash)."""
    from flowenv.store.layout import Artifact

    return Artifact(
        sha256=UNBUILT,
        filename=f"{name.replace('-', '_')}-unbuilt.whl",
        manager="pip",
        name=name,
        version=version,
        source=source,
    )


def _checkout(vcs: str, dest: Path, label: str) -> Path:
    """Check out ``git+URL@COMMIT[#subdirectory=DIR]`` into ``dest``; the package directory."""
    from flowenv._subprocess import describe_failure, run

    location, _, fragment = vcs.removeprefix("git+").partition("#subdirectory=")
    url, _, commit = location.rpartition("@")
    dest.mkdir(parents=True, exist_ok=True)
    # Fetching the one commit (not a branch) is what makes the build hermetic.
    for args in (
        ["git", "init", "-q", str(dest)],
        ["git", "-C", str(dest), "fetch", "-q", "--depth", "1", url, commit],
        ["git", "-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "-q", commit],
    ):
        result = run(args)
        if result.returncode != 0:
            raise FlowenvError(
                f"{label}: cannot check out {commit}:\n{describe_failure(args, result)}"
            )
    return dest / fragment if fragment else dest


def _pure(wheel: Path) -> bool:
    from packaging.utils import parse_wheel_filename

    tags = parse_wheel_filename(wheel.name)[3]
    return all(tag.abi == "none" and tag.platform == "any" for tag in tags)


def _built(directory: Path, workdir: Path, source: str, settings: Any, label: str) -> Path:
    """The wheel built from ``directory`` (whose source hash is ``source``), built once.

    Kept under ``workdir/wheel-<source>``: the same source is never built twice
    on this machine. A build goes to a scratch directory renamed into place, so
    an interrupted one leaves nothing that looks finished.
    """
    import tempfile

    from flowenv.engines.uv import build_wheel

    done = workdir / f"wheel-{source}"
    found = sorted(done.glob("*.whl"))
    if len(found) == 1:
        return found[0]
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{source[:12]}-", dir=workdir))
    try:
        wheel = build_wheel(directory, scratch, settings=settings, label=label)
        shutil.rmtree(done, ignore_errors=True)
        os.replace(scratch, done)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return done / wheel.name


def build_plans(
    plans: Sequence[EnvPlan], workdir: Path, settings_of: dict[str, Any]
) -> list[EnvPlan]:
    """``plans`` with every local package built (once per source) and its wheel in place.

    ``settings_of`` maps env name -> PypiSettings (the indexes build requirements come from).
    """
    import hashlib

    from packaging.utils import parse_wheel_filename

    from flowenv.inputs.local import source_hash

    built: dict[str, Artifact] = {}
    paths: dict[str, Path] = {}
    out: list[EnvPlan] = []
    for plan in plans:
        sources = dict(plan.sources)
        artifacts = []
        for artifact in plan.manifest.artifacts:
            if not artifact.source:
                artifacts.append(artifact)
                continue
            label = f"{plan.label}: local package {artifact.name}"
            if artifact.source not in built:
                location = sources[artifact.key]
                checkout = None
                if location.startswith("git+"):
                    cached = sorted((workdir / f"wheel-{artifact.source}").glob("*.whl"))
                    # Built before: the commit pins the content, no need to fetch it again.
                    checkout = workdir / f"git-{artifact.source}"
                    directory = (
                        cached[0].parent
                        if len(cached) == 1
                        else _checkout(location, checkout, label)
                    )
                else:
                    directory = (plan.lock_path.parent / location).resolve()
                    try:
                        # <lock dir>/<env>/<lock file>: the lock dir is skipped as at lock time.
                        current = source_hash(directory, plan.lock_path.parent.parent)
                    except ValueError as exc:
                        raise UsageError(f"{label} ({directory}): {exc}") from None
                    if current != artifact.source:
                        raise UsageError(
                            f"{label}: its source changed since it was locked; run `flowenv lock`"
                        )
                wheel = _built(directory, workdir, artifact.source, settings_of[plan.env], label)
                if checkout is not None:
                    shutil.rmtree(checkout, ignore_errors=True)
                if not _pure(wheel):
                    raise FlowenvError(
                        f"{label}: the built wheel {wheel.name} is not pure Python; flowenv builds "
                        "local packages only when one wheel serves every platform (publish "
                        "platform wheels to an index and depend on them by version instead)"
                    )
                version = str(parse_wheel_filename(wheel.name)[1])
                built[artifact.source] = attrs.evolve(
                    artifact,
                    sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
                    filename=wheel.name,
                    version=version,
                )
                paths[artifact.source] = wheel
            real = built[artifact.source]
            sources.pop(artifact.key, None)
            sources[real.key] = str(paths[artifact.source])
            artifacts.append(real)
        manifest = attrs.evolve(plan.manifest, artifacts=tuple(artifacts))
        out.append(attrs.evolve(plan, manifest=manifest, sources=tuple(sources.items())))
    return out
