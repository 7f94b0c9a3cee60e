"""``flowenv hydrate``: build an environment from the store alone, offline, verified.

Which env is built, most exact first: ``env_id`` given (``--env-id``) names
the manifest itself, with no alias lookup; this is how a deployed flow keeps
the env it was deployed with after newer locks are synced. ``tag``
(``--tag``) reads the env id from the store's tag of that name. Else, with a
configuration, the env id of the local lock, so an executor running a given
commit gets exactly that commit's env. Else the store's alias for the env
name in the project, i.e. whatever the last sync wrote. A step name stands
for the env the step runs in: the configuration says which, or without one
the step map sync wrote to the store.

Every artifact is downloaded into the cache and its sha256 checked *before*
anything is installed; a mismatch deletes the file and installs nothing.
The prefix gets a marker written last; a second hydrate of the same env id
finds it and returns at once. Nothing is written outside the prefix and the
cache (uv and rattler are pointed at caches inside flowenv's).

A PyPI env's venv is made from a matching interpreter on this machine, else
from the CPython build sync stored (:mod:`flowenv.interpreters`). Hydrates
sharing a cache coordinate through its locks (:mod:`flowenv.store.cache`):
one builds a prefix while the others wait and then reuse it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs

from flowenv._atomic import write_atomic
from flowenv._bounds import parse_bounded
from flowenv.config.models import Config
from flowenv.config.validators import store_project_name
from flowenv.errors import FlowenvError, StoreError, UsageError
from flowenv.interpreters import PythonBuild
from flowenv.platforms import host_platform
from flowenv.store import Store, open_store, store_url_for
from flowenv.store.cache import ArtifactCache
from flowenv.store.layout import (
    Artifact,
    Manifest,
    alias_key,
    artifact_key,
    check_env_id,
    check_segment,
    manifest_key,
    parse_alias,
    parse_steps,
    steps_key,
    tag_key,
)
from flowenv.store.usage import IN_USE, MARKER, prefix_token, record_use
from flowenv.system import IGNORE_ENV, ignoring_system_requirements

__all__ = ["PROJECT_ENV", "HydratedEnv", "command_env", "hydrate"]

PROJECT_ENV = "FLOWENV_PROJECT"
DEFAULT_JOBS = 16


@attrs.frozen(kw_only=True)
class HydratedEnv:
    """A ready environment."""

    env: str
    env_id: str
    platform: str
    kind: str  # "pypi" (a venv) | "conda" (a conda prefix)
    prefix: Path
    python: Path
    #: True when an earlier hydrate had already built this env id here.
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_id": self.env_id,
            "platform": self.platform,
            "kind": self.kind,
            "prefix": str(self.prefix),
            "python": str(self.python),
            "reused": self.reused,
        }


def hydrate(
    config_or_none: Config | None,
    env_name: str,
    *,
    platform: str | None = None,
    store_url: str | None = None,
    prefix: Path | str | None = None,
    project: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    cache: ArtifactCache | None = None,
    env_id: str | None = None,
    tag: str | None = None,
    ignore_system_requirements: bool = False,
) -> HydratedEnv:
    """Build (or reuse) ``env_name`` for ``platform`` (None or "auto": this machine).

    ``env_id`` pins the exact env (``env_name`` is then only its label); ``tag`` takes
    the env id the store's tag of that name holds; see the module doc.
    The env's system requirements (cuda, glibc, macos) are checked against
    this machine unless ``ignore_system_requirements`` (or ``$FLOWENV_IGNORE_SYSTEM_REQUIREMENTS``)
    says the builder is not the machine the env will run on.
    """
    if env_id is not None:
        check_env_id(env_id)
        if tag is not None:
            raise UsageError("--env-id and --tag name one env each: give only one")
    config = config_or_none
    if config is not None and project is not None and project != config.project.name:
        config = None  # another project's env: only the store knows it
    platform = host_platform() if platform in (None, "auto") else platform
    check_segment(platform, "platform")
    if platform != host_platform():
        raise UsageError(f"cannot hydrate a {platform} env on this {host_platform()} machine")
    check_segment(env_name, "environment")
    pinned = env_id is not None
    if config is not None and not pinned:
        env_name = _env_of(config, env_name)
    if config is not None:
        _check_env_platform(config, env_name, platform)
    if env_id is None and tag is None:
        env_id = _local_env_id(config, env_name, platform)
    # Only the alias needs the project: an env id is shared by every project.
    project_name = (
        project or (config.project.name if config else None) or os.environ.get(PROJECT_ENV)
    )
    if env_id is None and not project_name:
        raise UsageError(
            f"no project: pass --project NAME or set {PROJECT_ENV} (or run inside the project)"
        )
    store = _store(config, store_url, store_options)
    cache = cache or ArtifactCache()
    # Every step below writes into the cache (locks, venvs, artifacts): say it once, up front.
    cache.check_writable()

    if env_id is None:
        assert project_name is not None  # checked above, before opening the store
        if config is not None and project_name == config.project.name:
            store_project_name(project_name, config.path)  # the directory's name: usable?
        env_name, env_id = _alias_lookup(store, project_name, env_name, platform, tag)
    where = f"{store.url}/{manifest_key(env_id, platform)}"
    raw = store.read(manifest_key(env_id, platform))
    if raw is None:
        if pinned:
            raise StoreError(
                f"{store.url}: no env id {env_id} for {platform} "
                "(run `flowenv sync` where it was locked)"
            )
        raise StoreError(f"{where} is missing (run `flowenv sync`)")
    manifest = Manifest.from_json(raw, where, expected_env_id=env_id)
    if not (ignore_system_requirements or ignoring_system_requirements()):
        _check_system(manifest, f"{env_name} · {platform}")

    target = Path(prefix).expanduser().resolve() if prefix else cache.root / "envs" / env_id
    # Shared: many hydrates at once; `flowenv cache prune` waits for them (exclusive).
    with cache.locked(IN_USE, shared=True), _exclusive(cache, target):
        done = _read_marker(target)
        if done is not None and done.get("env_id") == env_id:
            record_use(cache, target, manifest)
            return _result(env_name, manifest, env_id, target, reused=True)
        label = f"{env_name} · {platform}"
        if manifest.kind == "pypi" and not target.exists():
            files, python = _fetch_while_creating_venv(store, cache, manifest, target, label)
        else:
            # An env already at the prefix survives a failed fetch: clear it only after.
            files = _fetch_all(store, cache, manifest)
            _clear(target, cache)
            _building(cache, target).touch()
            python = _prepare(store, manifest, target, cache, label)
        _install(manifest, files, target, cache, label)
        marker = {"env": env_name, "env_id": env_id, "platform": platform, "kind": manifest.kind}
        write_atomic(target / MARKER, _json(marker))
        _building(cache, target).unlink(missing_ok=True)
        record_use(cache, target, manifest, python)
    return _result(env_name, manifest, env_id, target, reused=False)


def command_env(env: HydratedEnv, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment in which a command runs "inside" ``env``."""
    out = dict(os.environ if base is None else base)
    bin_dir = env.python.parent
    out["PATH"] = os.pathsep.join([str(bin_dir), out.get("PATH", "")]).rstrip(os.pathsep)
    out.pop("PYTHONHOME", None)
    if env.kind == "pypi":
        out["VIRTUAL_ENV"] = str(env.prefix)
    else:
        out["CONDA_PREFIX"] = str(env.prefix)
    return out


# -- helpers -----------------------------------------------------------------------
def _store(
    config: Config | None, store_url: str | None, store_options: Mapping[str, Any] | None
) -> Store:
    if config is not None:
        from flowenv.sync import store_for_config

        return store_for_config(config, store_url, store_options)
    return open_store(store_url_for(store_url, None, Path.cwd()), store_options)


def _env_of(config: Config, name: str) -> str:
    """``name`` itself when it is an env of the project, else the env the step ``name`` runs in."""
    from flowenv.spec import build_environments

    environments = build_environments(config)
    if name in environments.names():
        return name
    env = environments.env_of_step(name)
    if env is None:
        raise UsageError(_system_step(name))
    return env


def _system_step(step: str) -> str:
    return f"step '{step}' runs in the system environment (disabled): there is nothing to hydrate"


def _alias_lookup(
    store: Store, project: str, name: str, platform: str, tag: str | None
) -> tuple[str, str]:
    """(env name, env id) of the env ``name`` or, failing that, of the step ``name``:
    its current alias, or with ``tag`` the env id tagged so.

    Without a configuration only the store knows which env a step runs in:
    sync records it in the project's step map.
    """

    def root_key(env: str) -> str:
        if tag is not None:
            return tag_key(project, env, platform, tag)
        return alias_key(project, env, platform)

    key = root_key(name)
    data = store.read(key)
    env = name
    if data is None:
        raw_steps = store.read(steps_key(project))
        if raw_steps is not None:
            steps, _ = parse_steps(raw_steps, f"{store.url}/{steps_key(project)}")
            # Only steps the configuration declares: without it, an undeclared name
            # cannot be told from a typo, so it is not taken for a step of base.
            mapped = steps.get(name, name)
            if mapped is None:
                raise UsageError(_system_step(name))
            if mapped != name:
                env, key = mapped, root_key(mapped)
                data = store.read(key)
    if data is None and tag is not None:
        raise StoreError(
            f"{store.url}: no tag '{tag}' of env '{env}' for {platform} in project "
            f"'{project}' (see `flowenv store ls`)"
        )
    if data is None:
        raise _no_alias(store, project, env, platform)
    return env, parse_alias(data, key)


def _check_env_platform(config: Config, env_name: str, platform: str) -> None:
    """An env locked for some platforms only (a GPU step) is refused elsewhere, by name."""
    from flowenv.spec import build_environments

    environments = build_environments(config)
    if env_name in environments.names():
        env = environments.get(env_name)
        if platform not in env.platforms:
            raise UsageError(
                f"env '{env_name}' is locked for {', '.join(env.platforms)} only "
                f"(its platforms in {config.path.name}); it cannot be hydrated on {platform}"
            )


def _no_alias(store: Store, project: str, env_name: str, platform: str) -> FlowenvError:
    """The error for an env the store has no alias of on ``platform``.

    An env locked for other platforms only (a GPU env) is synced for those:
    saying so beats "run `flowenv sync`", which would not help.
    """
    from flowenv.platforms import KNOWN_PLATFORMS

    others = {alias_key(project, env_name, p): p for p in KNOWN_PLATFORMS if p != platform}
    found = store.read_many(others)
    elsewhere = [p for key, p in others.items() if found.get(key) is not None]
    if elsewhere:
        return UsageError(
            f"{store.url}: env '{env_name}' of project '{project}' is synced for "
            f"{', '.join(elsewhere)} only (its platforms); it cannot be hydrated on {platform}"
        )
    return StoreError(
        f"{store.url}: no env '{env_name}' for {platform} in project '{project}' "
        "(run `flowenv sync` first)"
    )


def _check_system(manifest: Manifest, label: str) -> None:
    """Refuse an env whose system requirements this machine does not meet, saying which."""
    if not manifest.requires:
        return
    from flowenv.system import detect, unmet

    missing = unmet(manifest.requires, detect(name for name, _ in manifest.requires))
    if missing:
        raise UsageError(
            f"{label}: this machine does not meet the env's system requirements:\n"
            + "".join(f"  {line}\n" for line in missing)
            + "A builder that is not the machine the env runs on may pass "
            f"--ignore-system-requirements (or set {IGNORE_ENV}=1); "
            "CONDA_OVERRIDE_CUDA/_GLIBC/_OSX state what the runtime offers."
        )


def _local_env_id(config: Config | None, env_name: str, platform: str) -> str | None:
    """With the project at hand, the env id of its local lock (None without config or lock)."""
    if config is None:
        return None
    from flowenv.lockfiles.layout import lock_path
    from flowenv.spec import build_environments
    from flowenv.store.plan import plan_target

    environments = build_environments(config)
    if env_name not in environments.names():
        return None
    env = environments.get(env_name)
    from flowenv.lockfiles.layout import LockTarget

    target = LockTarget(env, platform, lock_path(config.lock_root, env, platform))
    if not target.path.exists():
        return None
    return plan_target(target).env_id


def _python_of(prefix: Path, kind: str) -> Path:
    if os.name == "nt":
        return prefix / ("Scripts/python.exe" if kind == "pypi" else "python.exe")
    default = prefix / "bin" / "python"
    if kind == "conda" and not default.exists():
        # Some conda Pythons ship only the versioned name.
        versioned = sorted((prefix / "bin").glob("python3.*[0-9]"))
        if versioned:
            return versioned[-1]
    return default


def _result(
    env: str, manifest: Manifest, env_id: str, prefix: Path, *, reused: bool
) -> HydratedEnv:
    return HydratedEnv(
        env=env,
        env_id=env_id,
        platform=manifest.platform,
        kind=manifest.kind,
        prefix=prefix,
        python=_python_of(prefix, manifest.kind),
        reused=reused,
    )


def _json(data: Mapping[str, Any]) -> str:
    import json

    return json.dumps(data, sort_keys=True, indent=1) + "\n"


def _read_marker(prefix: Path) -> dict[str, Any] | None:
    import json

    try:
        data = parse_bounded(json.loads, (prefix / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _building(cache: ArtifactCache, target: Path) -> Path:
    """Kept in the cache, not the prefix: it must survive the prefix being half-made."""
    path = cache.root / "building" / prefix_token(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _exclusive(cache: ArtifactCache, target: Path) -> AbstractContextManager[None]:
    """One hydrate at a time per prefix (others wait, then find the marker)."""
    return cache.locked(f"prefix-{prefix_token(target)[:3]}")


def _clear(target: Path, cache: ArtifactCache) -> None:
    """Empty ``target`` if it is ours (a marker, or a build we left half-done); refuse otherwise."""
    if not target.exists():
        return
    ours = (target / MARKER).is_file() or _building(cache, target).exists()
    if not ours and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(
            f"{target} exists and was not made by flowenv hydrate; choose another --prefix"
        )
    shutil.rmtree(target)


def _fetch_all(store: Store, cache: ArtifactCache, manifest: Manifest) -> dict[str, Path]:
    """Every artifact verified in the cache (by store key), before anything is installed.

    Each file is hashed once, when it enters the cache; from a local-folder
    store it enters as a hard link (no copy) when the cache is on the same device.
    """

    def one(artifact: Artifact) -> Path:
        return _fetch_one(store, cache, artifact.sha256, artifact.filename)

    unique = {a.key: a for a in manifest.artifacts}
    with ThreadPoolExecutor(max_workers=max(1, min(DEFAULT_JOBS, len(unique)))) as pool:
        return dict(zip(unique, pool.map(one, unique.values()), strict=True))


def _fetch_one(store: Store, cache: ArtifactCache, sha256: str, filename: str) -> Path:
    """One artifact, verified, in the cache (a hard link to a local store's file if it can)."""
    cached = cache.get(sha256, filename)
    if cached is not None:
        return cached
    key = artifact_key(sha256, filename)
    source = f"{store.url}/{key}"
    local = store.local_path(key)
    if local is not None:
        return cache.link_in(sha256, filename, source, local)
    return cache.add_path(sha256, filename, source, lambda tmp: store.download(key, tmp))


def _fetch_while_creating_venv(
    store: Store, cache: ArtifactCache, manifest: Manifest, target: Path, label: str
) -> tuple[dict[str, Path], PythonBuild | None]:
    """:func:`_fetch_all`, with the (artifact-independent) venv created meanwhile by uv.

    A failed fetch removes the venv again, so a refused artifact leaves no prefix.
    """
    _building(cache, target).touch()
    with ThreadPoolExecutor(max_workers=1) as side:
        creating = side.submit(_prepare, store, manifest, target, cache, label)
        try:
            files = _fetch_all(store, cache, manifest)
        except BaseException:
            wait([creating])
            _clear(target, cache)
            _building(cache, target).unlink(missing_ok=True)
            raise
        return files, creating.result()


def _prepare(
    store: Store, manifest: Manifest, target: Path, cache: ArtifactCache, label: str
) -> PythonBuild | None:
    """What can be built before the artifacts are verified: a PyPI env's empty venv.

    Its interpreter, in order: one an earlier hydrate installed from the store
    into the cache; one on this machine that matches; the store's build,
    installed now. Returns the store's build when the venv uses one.
    """
    if manifest.kind != "pypi":
        return None
    from flowenv.engines.uv import InterpreterNotFound, create_venv
    from flowenv.interpreters import install_build, installed_build, stored_build

    assert manifest.python, "a pypi manifest always records its Python"
    uv_cache = cache.root / "uv"
    build = installed_build(cache, manifest.python, manifest.platform)
    if build is None:
        try:
            create_venv(target, manifest.python, cache_dir=uv_cache, label=label)
            return None
        except InterpreterNotFound:
            build = stored_build(store, manifest.python, manifest.platform)
            if build is None:
                raise
        archive = _fetch_one(store, cache, build.sha256, build.filename)
        install_build(cache, build, archive, label)
    python = build.executable(cache.root / "python")
    create_venv(target, str(python), cache_dir=uv_cache, label=label)
    return build


def _install(
    manifest: Manifest, files: Mapping[str, Path], target: Path, cache: ArtifactCache, label: str
) -> None:
    wheels = [a for a in manifest.artifacts if a.manager == "pip"]
    if manifest.kind != "pypi":
        from flowenv.engines.rattler import InstallPackage, install

        # rattler "downloads" from the verified cache files, never from a channel.
        packages = [
            InstallPackage(
                name=a.name, version=a.version, url=files[a.key].as_uri(), md5="", sha256=a.sha256
            )
            for a in manifest.artifacts
            if a.manager == "conda"
        ]
        install(packages, target, manifest.platform, cache_dir=cache.root / "rattler")
    if wheels:
        _install_wheels(
            wheels,
            files,
            _python_of(target, manifest.kind),
            cache,
            label,
            system=manifest.kind == "conda",
        )


def _install_wheels(
    wheels: list[Artifact],
    files: Mapping[str, Path],
    python: Path,
    cache: ArtifactCache,
    label: str,
    *,
    system: bool,
) -> None:
    from flowenv.engines.uv import install_wheels_offline, requirements_text

    # A find-links directory of hard links to the verified cache files: uv
    # picks, per pinned package, the wheel that fits the interpreter, and the
    # env records plain "name==version" installs, not paths into the cache.
    # uv does not hash them again: the cache already verified each one.
    # The shared directory keeps uv's cache warm (see flowenv.store.cache).
    scratch = cache.scratch("wheels")
    try:
        sources = [files[w.key] for w in wheels]
        find_links = cache.link_wheels(sources)
        if find_links is None:
            find_links = scratch
            for source in sources:
                link = scratch / source.name
                if not link.exists():
                    try:
                        os.link(source, link)
                    except OSError:
                        shutil.copyfile(source, link)
        pins = sorted({(wheel.name, wheel.version) for wheel in wheels})
        requirements = scratch / "requirements.txt"
        requirements.write_text(
            requirements_text(f"{name}=={version}" for name, version in pins),
            encoding="utf-8",
        )
        install_wheels_offline(
            python,
            requirements,
            find_links,
            cache_dir=cache.root / "uv",
            label=label,
            system=system,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
