"""Lock a conda or mixed conda+PyPI environment into one conda-lock v1 ``conda-lock.yml``.

Per platform: rattler solves the conda packages first (the Python version is
whatever that solution holds); then, for a mixed env, uv resolves the PyPI
packages for that Python and platform. A package conda already provides is
not taken from PyPI: its PyPI name is constrained to conda's version (so PyPI
packages that need it agree with conda) and left out of the pip part.

Which conda packages are PyPI distributions, and under which name, is
decided from their records in :mod:`flowenv.resolution.conda_pypi` (conda's
``pytorch`` is PyPI's ``torch``; conda-forge's ``tzdata`` is not PyPI's).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from flowenv.config.models import Config, SystemRequirements
from flowenv.engines import rattler
from flowenv.errors import FlowenvError, ResolutionError
from flowenv.lockfiles.condalock import (
    INPUT_HASH_KEY,
    CondaLock,
    LockedCondaPackage,
    content_hash,
    read_conda_lock,
    render_conda_lock,
)
from flowenv.lockfiles.layout import CONDA_LOCK_NAME, lock_path
from flowenv.lockfiles.pylock import LockedWheel
from flowenv.resolution import LockOptions, disagree
from flowenv.resolution.conda_pypi import CondaRecord, provided_distributions
from flowenv.spec import EnvSpec, strip_credentials
from flowenv.system import applicable, uv_target, virtual_package_overrides

#: Virtual packages assumed per OS when the config does not say otherwise:
#: what a typical remote executor offers (glibc 2.28 matches the manylinux_2_28
#: target of the PyPI half). ``__cuda`` is never assumed: a GPU is opt-in.
_DEFAULT_VIRTUAL: dict[str, tuple[tuple[str, str], ...]] = {
    "linux": (("__unix", "0"), ("__linux", "5.10"), ("__glibc", "2.28")),
    "osx": (("__unix", "0"), ("__osx", "11.0")),
    "win": (("__win", "0"),),
}
#: The OSes each known virtual package exists on; any other name applies everywhere.
_VIRTUAL_OS: dict[str, tuple[str, ...]] = {
    "__unix": ("linux", "osx"),
    "__linux": ("linux",),
    "__glibc": ("linux",),
    "__osx": ("osx",),
    "__win": ("win",),
    "__cuda": ("linux", "win"),
}
_ARCHSPEC = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}


def virtual_packages(
    platform: str, overrides: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str, str], ...]:
    """(name, version, build) of every virtual package a solve for ``platform`` assumes.

    ``overrides`` (``[project.conda] virtual-packages``) replace or add
    versions; a value may carry a build string as ``"version=build"``.
    """
    os_name, _, arch = platform.partition("-")
    chosen = {name: (version, "0") for name, version in _DEFAULT_VIRTUAL[os_name]}
    chosen["__archspec"] = ("1", _ARCHSPEC[arch])
    for name, value in overrides:
        if os_name in _VIRTUAL_OS.get(name, (os_name,)):
            version, _, build = value.partition("=")
            chosen[name] = (version, build or "0")
    return tuple((name, version, build) for name, (version, build) in sorted(chosen.items()))


def python_spec(python: str) -> str:
    """``"3.11"`` -> ``python 3.11.*`` (any patch); ``"3.9.13"`` -> ``python ==3.9.13``."""
    return f"python {python}.*" if python.count(".") == 1 else f"python =={python}"


def conda_specs(env: EnvSpec, platform: str) -> tuple[str, ...]:
    """The match specs handed to the solver: the declared packages plus the env's Python."""
    conda = env.conda_on(platform)
    specs = [c.match_spec() for c in conda]
    if not any(c.name == "python" for c in conda):
        specs.append(python_spec(env.python))
    return tuple(specs)


def lock_channels(env: EnvSpec) -> tuple[str, ...]:
    """Every channel the env resolves from: configured ones, then ``channel::`` ones."""
    channels = list(env.channels)
    # In declaration order (packages by name, then each platform's), never a
    # set's: channel order is priority, and the lock must be byte-identical.
    packages = [*env.conda, *(c for p in env.platforms for c in env.conda_on(p))]
    for package in packages:
        if package.channel and package.channel not in channels:
            channels.append(package.channel)
    return tuple(strip_credentials(c) for c in channels)


def _read_previous(path: Path) -> CondaLock | None:
    try:
        return read_conda_lock(path)
    except OSError:
        return None
    except FlowenvError:
        # A damaged lock is replaced, not an obstacle to re-locking.
        return None


def _normalize(name: str) -> str:
    from flowenv.config.load import normalize_pypi_name

    return normalize_pypi_name(name)


def _dependencies(depends: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """conda ``depends`` strings -> conda-lock's name -> spec mapping."""
    merged: dict[str, list[str]] = {}
    for text in depends:
        name, _, spec = text.strip().partition(" ")
        merged.setdefault(name, [])
        if spec.strip():
            merged[name].append(spec.strip())
    return tuple(sorted((name, ",".join(specs)) for name, specs in merged.items()))


def _conda_entry(package: rattler.SolvedPackage, platform: str) -> LockedCondaPackage:
    return LockedCondaPackage(
        name=package.name,
        version=package.version,
        manager="conda",
        platform=platform,
        url=strip_credentials(package.url),
        md5=package.md5,
        sha256=package.sha256,
        dependencies=_dependencies(package.depends),
    )


def _preferred(previous: CondaLock | None, platform: str, options: LockOptions) -> tuple[str, ...]:
    """URLs of the previous lock's conda packages the solver should keep if it still can."""
    if previous is None or options.upgrade:
        return ()
    moving = {name.lower() for name in options.upgrade_packages}
    return tuple(
        p.url
        for p in previous.for_platform(platform)
        if p.manager == "conda" and p.name not in moving
    )


def _as_pylock(entries: Iterable[LockedCondaPackage]) -> str | None:
    """The pip part of a lock's platform as a pylock, which uv reads for its preferred versions."""
    from flowenv.lockfiles.toml_render import render

    packages = []
    for package in entries:
        if package.manager != "pip":
            continue
        artifact = {"url": package.url, "hashes": {"sha256": package.sha256}}
        kind = "wheels" if package.filename.endswith(".whl") else "sdist"
        packages.append(
            {
                "name": package.name,
                "version": package.version,
                kind: [artifact] if kind == "wheels" else artifact,
            }
        )
    if not packages:
        return None
    return render({"lock-version": "1.0", "created-by": "flowenv", "packages": packages})


def records_of(solution: Iterable[rattler.SolvedPackage]) -> list[CondaRecord]:
    """A conda solution's records, as :mod:`flowenv.resolution.conda_pypi` judges them."""
    return [
        CondaRecord(name=p.name, version=p.version, depends=p.depends, noarch=p.noarch)
        for p in solution
    ]


def _pip_part(
    config: Config,
    env: EnvSpec,
    platform: str,
    solution: Sequence[rattler.SolvedPackage],
    own: str | None,
    lead: str | None,
    options: LockOptions,
    pinned: Sequence[str] = (),
) -> list[LockedCondaPackage]:
    """The pip entries of one platform; ``own`` and ``lead`` are pylocks of preferred pins.

    The lead's pins win over the platform's own, exactly as for a PyPI-only env
    (:func:`flowenv.resolution.pypi.preferences`).
    """
    from flowenv.engines.uv import compile_pylock
    from flowenv.lockfiles.pylock import parse_pylock
    from flowenv.resolution.pypi import preferences

    python = next((p.version for p in solution if p.name == "python"), None)
    if python is None:
        raise FlowenvError(
            f"cannot resolve {env.name} · {platform}: the conda solution has no python package, "
            "so its PyPI packages cannot be resolved"
        )
    provided = provided_distributions(records_of(solution), env.pypi_map)
    resolve = functools.partial(
        compile_pylock,
        [p.requirement(config.root) for p in env.pypi_on(platform)],
        python=python,
        platform=platform,
        settings=env.pypi_settings,
        label=f"{env.name} · {platform} (PyPI packages, with Python {python} from conda)",
        root=config.root,
        pinned=env.pinned_on(platform),
        system=env.system_on(platform),
    )
    # First with conda's versions as constraints: PyPI packages must agree with
    # them (uv fails clearly when one needs another numpy than conda's).
    prefer, how = preferences(own, lead, options)
    # The env's own constraints (-c files) and a solve group's pins hold in both passes.
    bounds = [*(c.requirement(config.root) for c in env.pypi_constraints), *pinned]
    try:
        raw = resolve(
            constraints=[*_constraints(provided), *bounds],
            previous=None if how.upgrade else prefer,
            upgrade=how.upgrade,
            upgrade_packages=how.upgrade_packages,
        )
    except ResolutionError as exc:
        raise ResolutionError(exc.message + _conda_pins_note(exc.message, provided)) from None
    used = sorted({_normalize(p.name) for p in parse_pylock(raw, "uv output")} & provided.keys())
    if used:
        # Then without them: conda installs them, so whatever only they need on
        # PyPI (torch's nvidia-* wheels for conda's pytorch) is not locked
        # either. The first result, as the previous lock, keeps every other
        # version where it was.
        raw = resolve(previous=raw, excludes=used, constraints=bounds)
    entries = []
    local = {_normalize(p.name): p for p in env.pypi_on(platform) if p.path}
    lock_dir = lock_path(config.lock_root, env, platform).parent
    for package in parse_pylock(raw):
        if _normalize(package.name) in provided:
            continue
        declared = local.get(_normalize(package.name))
        if declared is not None and package.directory:
            # A local package: sync builds it; the URL is its directory relative
            # to the lock (as PEP 751 has it) with its source hash, so an edit
            # changes the lock (and the env's input hash makes it stale).
            relative = Path(os.path.relpath(config.root / declared.path, lock_dir)).as_posix()
            url, sha256, source = (
                f"{relative}#source-sha256={declared.source_hash}",
                "",
                declared.source_hash,
            )
        elif package.git:
            # A git package pinned to a commit (the config says which): sync
            # builds it from exactly that commit, as in a PyPI env.
            url, sha256, source = strip_credentials(package.git), "", ""
        else:
            artifact = best_wheel(package.wheels, platform, python, env.system_on(platform)) or (
                package.sdist
            )
            if artifact is None:
                raise FlowenvError(
                    f"{env.name} · {platform}: uv locked {package.name} without any file"
                )
            url = strip_credentials(_as_url(artifact.url, config.root))
            sha256, source = artifact.sha256, ""
        entries.append(
            LockedCondaPackage(
                name=package.name,
                version=package.version,
                manager="pip",
                platform=platform,
                url=url,
                sha256=sha256,
                source_hash=source,
                direct=bool(package.git),
            )
        )
    return entries


def _platform_tags(platform: str, system: SystemRequirements) -> list[str]:
    """Wheel platform tags installable on ``platform``, best first (as uv targets them)."""
    from packaging.tags import mac_platforms

    os_name, _, arch = platform.partition("-")
    machine = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}[arch]
    required = dict(applicable(system, platform))
    if os_name == "linux":
        # The env's glibc (2.28 by default) down to manylinux1, as the uv target allows.
        newest = int(uv_target(platform, "x-manylinux_2_28", system).rpartition("_")[2])
        legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
        tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, 4, -1)]
        tags += [f"{name}_{machine}" for name in legacy]
        return [*tags, f"linux_{machine}"]
    if os_name == "osx":
        major, _, minor = required.get("macos", "11.0").partition(".")
        return list(mac_platforms((int(major), int(minor or 0)), machine))
    return ["win_amd64"]


def best_wheel(
    wheels: Sequence[LockedWheel],
    platform: str,
    python: str,
    system: SystemRequirements | None = None,
) -> LockedWheel | None:
    """The wheel pip would pick for ``platform`` and ``python``; None if none is installable.

    conda-lock records one file per pip package, while a pylock lists every
    wheel that fits; rank them by packaging's tag order for the target.
    """
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    version = tuple(int(part) for part in python.split(".")[:2])
    platforms = _platform_tags(platform, system or SystemRequirements())
    order = [
        *cpython_tags(version, platforms=platforms),
        *compatible_tags(version, platforms=platforms),
    ]
    rank = {tag: i for i, tag in enumerate(order)}
    best: tuple[int, str, LockedWheel] | None = None
    for wheel in wheels:
        try:
            tags = parse_wheel_filename(wheel.name)[3]
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and (best is None or (score, wheel.name) < best[:2]):
            best = (score, wheel.name, wheel)
    return best[2] if best else None


def _conda_pins_note(message: str, provided: Mapping[str, str]) -> str:
    """Why uv says "you require numpy==1.26.4" when nobody wrote it: conda installs it.

    Names the conda-provided pins uv's explanation mentions ("" when it mentions none).
    """
    import re

    mentioned = [
        f"{name}=={version}"
        for name, version in sorted(provided.items())
        if re.search(rf"(?<![\w.-]){re.escape(name)}==", message)
    ]
    if not mentioned:
        return ""
    return (
        f"\n{', '.join(mentioned)}: what the conda solution installs (that conda package "
        "is this PyPI distribution, so the PyPI packages must agree with it); change the "
        "conda spec or the PyPI requirement that conflicts with it"
    )


def _constraints(provided: Mapping[str, str]) -> list[str]:
    # Names and versions were checked (PEP 508 / PEP 440) by provided_distributions:
    # nothing else reaches uv's constraints file.
    return [f"{name}=={version}" for name, version in sorted(provided.items())]


def _as_url(location: str, root: Path) -> str:
    # A pylock ``path`` (a relative find-links wheel) is made a URL: conda-lock needs one.
    return location if "://" in location else (root / location).resolve().as_uri()


def _request(
    env: EnvSpec,
    platform: str,
    preferred: tuple[str, ...],
    followed: tuple[str, ...] = (),
    constraints: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> rattler.SolveRequest:
    return rattler.SolveRequest(
        specs=conda_specs(env, platform),
        channels=env.channels,
        platform=platform,
        virtual_packages=virtual_packages(
            platform,
            [*env.virtual_packages, *virtual_package_overrides(env.system_on(platform), platform)],
        ),
        channel_priority=env.channel_priority,
        preferred_urls=preferred,
        followed_urls=followed,
        label=f"{env.name} · {platform}",
        # A solve group's conda pins: they bound versions and require nothing.
        constraints=tuple((constraints or {}).get(platform, ((), ()))[0]),
    )


def _fresh_lead(
    previous: CondaLock | None, env: EnvSpec, platform: str
) -> tuple[LockedCondaPackage, ...]:
    """The previous lock's entries for the lead platform, if they were made from today's inputs."""
    if previous is None or platform not in previous.platforms:
        return ()
    recorded = dict(previous.custom_metadata).get(INPUT_HASH_KEY.format(platform=platform))
    return previous.for_platform(platform) if recorded == env.input_hash(platform) else ()


def _solve_following(
    env: EnvSpec,
    order: Sequence[str],
    lead_platform: str,
    lead: Sequence[LockedCondaPackage],
    previous: CondaLock | None,
    options: LockOptions,
    pins: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> dict[str, tuple[rattler.SolvedPackage, ...]]:
    """Conda solutions per platform, each follower taking the lead's versions where it can.

    Every platform is solved at once on its own previous pins; a follower whose
    solution has a package the lead also has at another version is solved again
    preferring the lead's records (its own previous ones fill in the rest).
    ``lead`` is the lead's lock entries when the lead is not solved in this run.
    """
    own = {p: _preferred(previous, p, options) for p in order}
    solutions = dict(
        zip(
            order,
            rattler.solve([_request(env, p, own[p], constraints=pins) for p in order]),
            strict=True,
        )
    )
    if lead_platform in solutions:
        lead_urls = tuple(p.url for p in solutions[lead_platform])
        versions = {p.name: p.version for p in solutions[lead_platform]}
    else:
        lead_urls = tuple(p.url for p in lead if p.manager == "conda")
        versions = {p.name: p.version for p in lead if p.manager == "conda"}
    again = [
        p
        for p in order
        if p != lead_platform and disagree({s.name: s.version for s in solutions[p]}, versions)
    ]
    if again:
        requests = [_request(env, p, own[p], lead_urls, pins) for p in again]
        solutions |= dict(zip(again, rattler.solve(requests), strict=True))
    return solutions


def _kept_lock(
    config: Config, env: EnvSpec, kept_envs: Sequence[EnvSpec], platform: str
) -> CondaLock | None:
    """The previous lock whose versions a solve keeps: ``env``'s, or ``kept_envs``' in one."""
    import attrs

    paths = [lock_path(config.lock_root, e, platform) for e in kept_envs or (env,)]
    found = [lock for lock in map(_read_previous, paths) if lock is not None]
    if len(found) < 2:
        return found[0] if found else None
    return attrs.evolve(found[0], packages=tuple(p for lock in found for p in lock.packages))


def _order(env: EnvSpec, platforms: Sequence[str]) -> list[str]:
    """``platforms`` in the env's own order (its lead first)."""
    every = env.platforms or tuple(platforms)
    return sorted(platforms, key=lambda p: every.index(p) if p in every else len(every))


def solve_conda_env(
    config: Config,
    env: EnvSpec,
    platforms: Sequence[str],
    options: LockOptions,
    pins: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
    kept_envs: Sequence[EnvSpec] = (),
) -> dict[str, tuple[rattler.SolvedPackage, ...]]:
    """The conda half of :func:`lock_conda_env`: each platform's solution, following the lead."""
    previous = _kept_lock(config, env, kept_envs, platforms[0])
    every = env.platforms or tuple(platforms)
    order = _order(env, platforms)
    lead_platform = every[0]
    lead = () if lead_platform in order else _fresh_lead(previous, env, lead_platform)
    return _solve_following(env, order, lead_platform, lead, previous, options, pins)


def lock_conda_env(
    config: Config,
    env: EnvSpec,
    platforms: Sequence[str],
    options: LockOptions,
    pins: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
    solutions: Mapping[str, Sequence[rattler.SolvedPackage]] | None = None,
    kept_envs: Sequence[EnvSpec] = (),
    pip_previous: Mapping[str, str | None] | None = None,
) -> Mapping[str, str]:
    """Lock ``env`` for ``platforms`` into one conda-lock file; the other platforms follow the lead.

    ``pins`` (platform -> conda match specs, PyPI requirements) come from a
    solve group and hold the env to its group's versions. ``solutions`` are
    the conda solutions :func:`solve_conda_env` already found for these
    inputs (a solve group inspects them first), so they are not solved again.
    ``kept_envs``: the envs whose locks on disk hold the versions to keep (a
    solve group's joint solve keeps its members'); by default ``env``'s own.
    ``pip_previous`` (platform -> pylock text) replaces that lock's pip part
    as the PyPI versions to keep (a solve group's: every member's).

    The lead is the env's first platform (flowenv's platform order); for the
    PyPI part, the first that has PyPI packages, as for a PyPI env. When a
    lead is not locked in this run, its entries in the lock on disk lead if
    they were made from today's inputs.
    """
    path = lock_path(config.lock_root, env, platforms[0])
    previous = _kept_lock(config, env, kept_envs, platforms[0])
    every = env.platforms or tuple(platforms)
    order = _order(env, platforms)
    if solutions is None:
        solutions = solve_conda_env(config, env, platforms, options, pins, kept_envs)
    pip_lead = next((p for p in every if env.pypi_on(p)), None)
    lead_pip = None
    if pip_lead is not None and pip_lead not in order:
        lead_pip = _as_pylock(_fresh_lead(previous, env, pip_lead))
    packages: list[LockedCondaPackage] = []
    hashes: dict[str, str] = {}
    inputs: dict[str, str] = {}
    for platform in order:
        entries = [_conda_entry(p, platform) for p in solutions[platform]]
        if env.pypi_on(platform):
            own = None if previous is None else _as_pylock(previous.for_platform(platform))
            if pip_previous is not None:
                own = pip_previous.get(platform)
            following = None if platform == pip_lead else lead_pip
            entries += _pip_part(
                config,
                env,
                platform,
                solutions[platform],
                own,
                following,
                options,
                (pins or {}).get(platform, ((), ()))[1],
            )
        if platform == pip_lead:
            lead_pip = _as_pylock(entries)
        packages += entries
        hashes[platform] = content_hash(entries)
        inputs[platform] = env.input_hash(platform)
    # The file holds every platform: keep those not re-locked now from the previous lock.
    kept = [p for p in env.platforms if p not in platforms]
    if previous is not None:
        old_inputs = dict(previous.custom_metadata)
        old_hashes = dict(previous.content_hash)
        for platform in kept:
            if platform not in previous.platforms:
                continue
            packages += previous.for_platform(platform)
            key = INPUT_HASH_KEY.format(platform=platform)
            if key in old_inputs:
                inputs[platform] = old_inputs[key]
            hashes[platform] = old_hashes.get(platform) or content_hash(
                previous.for_platform(platform)
            )
    locked = tuple(p for p in env.platforms if p in hashes)
    lock = CondaLock(
        platforms=locked,
        channels=lock_channels(env),
        content_hash=tuple(sorted(hashes.items())),
        custom_metadata=tuple(
            sorted((INPUT_HASH_KEY.format(platform=p), h) for p, h in inputs.items())
        ),
        packages=tuple(packages),
        sources=(Path(os.path.relpath(config.path, path.parent)).as_posix(),),
    )
    return {CONDA_LOCK_NAME: render_conda_lock(lock)}
