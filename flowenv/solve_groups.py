"""Solve groups: environments that must agree on the version of every package they share.

A flow that pickles an object in ``train`` and loads it in ``end`` breaks
when the two steps resolve different versions of the same package. Envs that
say ``solve-group = "NAME"`` (a step built on base inherits base's group, so
``solve-group = "flow"`` in ``[base]`` puts every step with packages of its
own in one group: "every step agrees with base") are locked like this, per
platform:

1. The requirements (and constraints) of *every* member are resolved
   together, once. The answer is one version per package that satisfies all
   of them at once.
2. Each member is then resolved on its own with those versions as
   constraints, so its lock holds only what it needs, at the group's version.

If step 1 has no answer, each member is resolved alone to find out why, and
the error (exit 3) names the envs and the packages on which their own answers
differ. A member whose inputs change makes every member stale, because each
member's input hash includes its whole group's inputs.

A group with a conda (or mixed) member is one joint *mixed* env: the conda
specs of its conda members and the PyPI requirements of every member, each
platform as the members are on it (``target.<platform>`` tables apply).
Packages are matched by their PyPI name (a conda record counts when it is a
PyPI distribution, :mod:`flowenv.resolution.conda_pypi`) and versions compare as
PEP 440. Per platform:

1. rattler solves the conda side. Where it holds a PyPI distribution at a
   version a member's *own* PyPI requirement (or ``-c`` constraint) excludes,
   that requirement becomes a rattler constraint (when it translates
   cleanly) and the conda side is solved again, until none is violated.
2. uv resolves every member's PyPI requirements for conda's Python, with the
   conda side's distributions held at conda's versions. If that fails (a
   requirement of a requirement wants another version), the versions uv
   would choose for the PyPI side alone (preferring conda's) become conda
   constraints, and 1 and 2 run once more.
3. Conda members are locked with the joint conda versions as solver
   constraints and the joint PyPI versions as uv constraints; PyPI-only
   members with conda's distributions (``numpy==1.26.4``) and the joint PyPI
   versions as uv constraints, for their own Python, which must be conda's.

Conda members share channels and channel priority.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flowenv.config.models import Config, SystemRequirements
from flowenv.errors import ResolutionError, UsageError
from flowenv.resolution import LockOptions
from flowenv.spec import Environments, EnvSpec

if TYPE_CHECKING:
    from flowenv.engines.rattler import SolvedPackage
    from flowenv.resolution.conda_pypi import PypiBound

__all__ = ["check_groups", "group_members", "group_pins", "lock_group"]

T = TypeVar("T")

#: platform -> (conda match specs, PyPI requirements) a conda member is held to.
CondaPins = dict[str, tuple[list[str], list[str]]]


def group_members(environments: Environments, group: str) -> tuple[EnvSpec, ...]:
    """Every env of the configuration in ``group``, by name."""
    return tuple(e for e in environments.envs if e.solve_group == group)


def check_groups(config: Config, environments: Environments) -> None:
    """Refuse groups flowenv cannot make agree, before resolving anything.

    PyPI-only members that share a platform but not a Python version (a
    configuration error, at each member's ``python``), and conda members on
    other channels. A PyPI member of a conda group is checked against the
    conda solution's Python when it is known (:func:`_conda_group_pins`).
    """
    groups = sorted({e.solve_group for e in environments.envs if e.solve_group is not None})
    for group in groups:
        _check_pythons(config, group, group_members(environments, group))
    for group in groups:
        conda = [e for e in group_members(environments, group) if e.kind == "conda"]
        settings = {(e.channels, e.channel_priority) for e in conda}
        if len(settings) > 1:
            raise UsageError(
                f"solve group '{group}': its conda envs use different channels or channel "
                f"priority ({', '.join(f'{e.name}: {list(e.channels)}' for e in conda)}); "
                "one version per package needs one set of channels"
            )


def _check_pythons(config: Config, group: str, members: Sequence[EnvSpec]) -> None:
    if any(env.kind == "conda" for env in members):
        return
    for platform in _union(p for env in members for p in env.platforms):
        on = _on(members, platform)
        if len({env.python for env in on}) < 2:
            continue
        from flowenv.config.load import located
        from flowenv.spec import python_key

        who = ", ".join(f"{e.name} {e.python}" for e in on)
        keys = dict.fromkeys(python_key(config, env.name) for env in on)
        raise located(
            config,
            [
                (
                    key,
                    f"solve group '{group}' cannot agree on {platform}: its envs use different "
                    f"Python versions ({who}); one version per package needs one Python",
                )
                for key in keys
            ],
        )


def _requirements(
    members: Sequence[EnvSpec], root: Path, platform: str
) -> tuple[list[str], list[str]]:
    requirements: dict[str, None] = {}
    constraints: dict[str, None] = {}
    for env in members:
        requirements.update(dict.fromkeys(p.requirement(root) for p in env.pypi_on(platform)))
        constraints.update(dict.fromkeys(c.requirement(root) for c in env.pypi_constraints))
    return list(requirements), list(constraints)


def _direct(members: Sequence[EnvSpec]) -> set[str]:
    """Packages some member takes from a path or URL: the group cannot pin them by version."""
    return {
        p.name
        for env in members
        for p in (*env.pypi, *(q for _, t in env.targets for q in t.pypi))
        if p.path or p.url
    }


def _resolve(
    config: Config,
    members: Sequence[EnvSpec],
    platform: str,
    options: LockOptions,
    label: str,
    previous: str | None,
) -> dict[str, str]:
    from flowenv.engines.uv import compile_pylock
    from flowenv.lockfiles.pylock import parse_pylock

    requirements, constraints = _requirements(members, config.root, platform)
    if not requirements:
        return {}
    first = members[0]
    raw = compile_pylock(
        requirements,
        python=first.python,
        platform=platform,
        settings=first.pypi_settings,
        label=label,
        constraints=constraints,
        previous=previous,
        upgrade=options.upgrade,
        upgrade_packages=options.upgrade_packages,
        root=config.root,
        # Packages pinned to a named index come from it in the joint resolution too.
        pinned={k: v for env in members for k, v in env.pinned_on(platform).items()},
        system=_joint_system(members, platform),
    )
    return {p.name: p.version for p in parse_pylock(raw) if p.version}


def group_pins(
    config: Config,
    members: Sequence[EnvSpec],
    platform: str,
    options: LockOptions,
    previous: str | None = None,
) -> list[str]:
    """``name==version`` for every package of the group's joint resolution on ``platform``.

    ``previous`` (a pylock of the members' locked versions) keeps versions put across re-locks
    unless the inputs or ``options`` ask them to move.
    """
    group = members[0].solve_group
    members = [env for env in members if platform in env.platforms] or list(members)
    # check_groups refused members that share this platform but not a Python.
    names = ", ".join(e.name for e in members)
    try:
        versions = _resolve(
            config,
            members,
            platform,
            options,
            f"solve group '{group}' ({names}) · {platform}",
            previous,
        )
    except ResolutionError as joint:
        raise _disagreement(config, members, platform, options, joint) from None
    direct = _direct(members)
    return [
        f"{name}=={version}" for name, version in sorted(versions.items()) if name not in direct
    ]


def _disagreement(
    config: Config,
    members: Sequence[EnvSpec],
    platform: str,
    options: LockOptions,
    joint: ResolutionError,
) -> ResolutionError:
    """Why a group has no joint answer: each member's own answer, compared."""
    alone: dict[str, Mapping[str, str]] = {}
    for env in members:
        # A member that cannot be resolved even alone is its own problem: say that.
        alone[env.name] = _resolve(
            config, [env], platform, options, f"{env.name} · {platform}", None
        )
    return _report(members, {platform: alone}, joint)


def _union(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


def _joint(members: Sequence[EnvSpec]) -> EnvSpec:
    """One spec asking, on each platform, for everything the members locked there ask for.

    Built on the first conda member (channels, Python, conda settings). Every
    platform gets its own table, so a member's ``target.<platform>`` packages
    count on that platform only, and a member not locked for a platform asks
    for nothing there.
    """
    import attrs

    from flowenv.config.models import EnvDecl

    first = next((env for env in members if env.kind == "conda"), members[0])
    platforms = _union(p for env in members for p in env.platforms)
    targets = tuple(
        (
            platform,
            EnvDecl(
                pypi=_union(q for env in _on(members, platform) for q in env.pypi_on(platform)),
                conda=_union(c for env in _on(members, platform) for c in env.conda_on(platform)),
                system_requirements=_joint_system(_on(members, platform), platform),
            ),
        )
        for platform in platforms
    )
    return attrs.evolve(
        first,
        name=f"solve-group-{first.solve_group}",
        conda=(),
        pypi=(),
        pypi_constraints=_union(c for env in members for c in env.pypi_constraints),
        platforms=platforms,
        targets=targets,
    )


def _joint_system(members: Sequence[EnvSpec], platform: str) -> SystemRequirements:
    """The system the joint resolution assumes on ``platform``.

    CUDA at the lowest version a member declares (a GPU member's packages
    need ``__cuda``; the lowest keeps every GPU member able to install the
    group's versions); glibc and macOS at the lowest version when every
    member declares one, else the default the undeclaring members run with.
    """

    def lowest(values: list[str | None], every: bool) -> str | None:
        declared = [v for v in values if v is not None]
        if not declared or (every and len(declared) < len(values)):
            return None
        return min(declared, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))

    systems = [env.system_on(platform) for env in members]
    return SystemRequirements(
        cuda=lowest([s.cuda for s in systems], every=False),
        glibc=lowest([s.glibc for s in systems], every=True),
        macos=lowest([s.macos for s in systems], every=True),
    )


def _on(members: Sequence[EnvSpec], platform: str) -> list[EnvSpec]:
    return [env for env in members if platform in env.platforms]


def _python_of(solution: Sequence[SolvedPackage]) -> str:
    return next((p.version for p in solution if p.name == "python"), "")


def _bounds(members: Sequence[EnvSpec], platform: str, python: str) -> list[PypiBound]:
    """The version bounds the members' own PyPI requirements put on ``platform``.

    Requirements (and ``-c`` constraints) by name with a specifier whose
    marker holds there; direct references and local packages bound nothing.
    """
    from packaging.markers import Marker

    from flowenv.platforms import marker_environment
    from flowenv.resolution.conda_pypi import PypiBound

    environment = {**marker_environment(platform, python), "extra": ""}
    return [
        PypiBound(name=package.name, specifier=package.specifier)
        for env in _on(members, platform)
        for package in (*env.pypi_on(platform), *env.pypi_constraints)
        if package.specifier
        and not (package.url or package.path)
        and (not package.marker or Marker(package.marker).evaluate(environment))
    ]


#: Rounds of steering before the joint lock is tried as it is (each round adds a constraint).
_MAX_STEERING_ROUNDS = 20


def _steered(
    config: Config,
    joint: EnvSpec,
    members: Sequence[EnvSpec],
    platforms: Sequence[str],
    options: LockOptions,
    kept: Sequence[EnvSpec],
    initial: Mapping[str, Sequence[str]] | None = None,
) -> tuple[CondaPins, dict[str, tuple[SolvedPackage, ...]]]:
    """The joint conda solutions, steered to versions the members' PyPI requirements allow.

    The conda specs are solved; wherever the solution holds a PyPI
    distribution at a version a member's own PyPI requirement excludes, that
    requirement becomes a rattler constraint on the conda package and the
    conda side is solved again, until no requirement is violated (or one
    does not translate; uv then reports it). Returns the constraints (as
    solve-group pins) and the final solutions. ``kept``'s locks on disk
    hold the versions to keep where they still fit; ``initial`` constraints
    (platform -> match specs) hold from the first solve.
    """
    from flowenv.resolution.conda import records_of, solve_conda_env
    from flowenv.resolution.conda_pypi import conda_constraints

    steering: dict[str, list[str]] = {p: list((initial or {}).get(p, ())) for p in platforms}
    pins: CondaPins = {}
    for _ in range(_MAX_STEERING_ROUNDS):
        pins = {p: (list(steering[p]), []) for p in platforms}
        solutions = solve_conda_env(config, joint, platforms, options, pins, kept)
        added = False
        for platform in platforms:
            solution = solutions[platform]
            bounds = _bounds(members, platform, _python_of(solution) or joint.python)
            for constraint in conda_constraints(records_of(solution), bounds, joint.pypi_map):
                if constraint not in steering[platform]:
                    steering[platform].append(constraint)
                    added = True
        if not added:
            break
    return pins, solutions


def _pypi_choice(
    config: Config, joint: EnvSpec, platform: str, solution: Sequence[SolvedPackage]
) -> list[str]:
    """Conda constraints (``numpy ==1.26.4``) for the versions the PyPI side would choose alone.

    uv resolves every member's PyPI requirements for conda's Python without
    conda's versions as constraints, but preferring them; each conda
    distribution it would take at another (release-only) version is
    constrained to that version. Empty when uv finds no answer either or
    moves nothing.
    """
    from flowenv.engines.uv import compile_pylock
    from flowenv.lockfiles.pylock import parse_pylock
    from flowenv.lockfiles.toml_render import render
    from flowenv.resolution.conda import records_of
    from flowenv.resolution.conda_pypi import (
        conda_version_spec,
        provided_distributions,
        same_version,
    )

    requirements = [p.requirement(config.root) for p in joint.pypi_on(platform)]
    if not requirements:
        return []
    held: dict[str, tuple[str, str]] = {}  # PyPI name -> (conda name, version)
    for record in records_of(solution):
        for name, version in provided_distributions([record], joint.pypi_map).items():
            held[name] = (record.name, version)
    previous = render(
        {
            "lock-version": "1.0",
            "created-by": "flowenv",
            "packages": [{"name": n, "version": v} for n, (_, v) in sorted(held.items())],
        }
    )
    try:
        raw = compile_pylock(
            requirements,
            python=_python_of(solution) or joint.python,
            platform=platform,
            settings=joint.pypi_settings,
            label=f"solve group '{joint.solve_group}' (PyPI packages alone) · {platform}",
            constraints=[c.requirement(config.root) for c in joint.pypi_constraints],
            previous=previous,
            root=config.root,
            pinned=joint.pinned_on(platform),
            system=joint.system_on(platform),
        )
    except ResolutionError:
        return []
    out = []
    for package in parse_pylock(raw):
        conda_name, version = held.get(_normalize(package.name), ("", ""))
        spec = conda_version_spec(f"=={package.version}")
        if conda_name and same_version(package.version) != same_version(version) and spec:
            out.append(f"{conda_name} {spec}")
    return sorted(out)


def _locked_pypi(config: Config, env: EnvSpec, platform: str) -> dict[str, str]:
    """PyPI name -> version ``env``'s lock on disk holds for ``platform`` (pip part only)."""
    from flowenv.errors import FlowenvError
    from flowenv.lockfiles.layout import lock_path

    path = lock_path(config.lock_root, env, platform)
    try:
        if env.kind == "pypi":
            from flowenv.lockfiles.pylock import read_pylock

            return {p.name: p.version for p in read_pylock(path) if p.version}
        from flowenv.lockfiles.condalock import read_conda_lock

        entries = read_conda_lock(path).for_platform(platform)
    except (OSError, FlowenvError):
        return {}  # missing or damaged: it only loses its preferences
    return {p.name: p.version for p in entries if p.manager == "pip"}


def _kept_pypi(
    config: Config, members: Sequence[EnvSpec], platforms: Sequence[str]
) -> dict[str, str | None]:
    """Per platform, a pylock of every member's locked PyPI versions: what a re-lock keeps."""
    from flowenv.lockfiles.toml_render import render

    out: dict[str, str | None] = {}
    for platform in platforms:
        versions: dict[str, str] = {}
        for env in _on(members, platform):
            for name, version in _locked_pypi(config, env, platform).items():
                versions.setdefault(_normalize(name), version)
        out[platform] = None
        if versions:
            packages = [{"name": n, "version": v} for n, v in sorted(versions.items())]
            out[platform] = render(
                {"lock-version": "1.0", "created-by": "flowenv", "packages": packages}
            )
    return out


def _same_python(declared: str, solved: str) -> bool:
    """Whether conda's Python ``solved`` (3.11.9) is the ``declared`` one (3.11 or 3.11.9)."""
    return solved.split(".")[: len(declared.split("."))] == declared.split(".")


def _conda_group_pins(
    config: Config, members: Sequence[EnvSpec], platforms: Sequence[str], options: LockOptions
) -> tuple[CondaPins, dict[str, list[str]]]:
    """Per platform, the group's versions: (conda members' pins, PyPI-only members' pins).

    A conda member is held to the joint conda versions (solver constraints)
    and the joint pip versions (uv constraints); a PyPI-only member to the
    PyPI distributions the joint conda solution installs (by PyPI name, at
    conda's version) and the joint pip versions.
    """
    from flowenv.lockfiles.condalock import parse_conda_lock
    from flowenv.lockfiles.layout import CONDA_LOCK_NAME
    from flowenv.resolution.conda import lock_conda_env, records_of
    from flowenv.resolution.conda_pypi import provided_distributions

    joint = _joint(members)
    # The conda members' locks on disk: a re-lock keeps their versions where they fit.
    kept = [env for env in members if env.kind == "conda"]
    kept_pypi = _kept_pypi(config, members, platforms)
    try:
        steering, solutions = _steered(config, joint, members, platforms, options, kept)
        try:
            texts = lock_conda_env(
                config, joint, platforms, options, steering, solutions, kept, kept_pypi
            )
        except ResolutionError as first:
            # The PyPI side could not take conda's versions (a requirement of a
            # requirement wants another numpy): move conda to the versions the
            # PyPI side would choose alone, once, and try again.
            moved = {p: _pypi_choice(config, joint, p, solutions[p]) for p in platforms}
            if not any(moved.values()):
                raise first from None
            initial = {p: [*steering[p][0], *moved[p]] for p in platforms}
            try:
                steering, solutions = _steered(
                    config, joint, members, platforms, options, kept, initial
                )
                texts = lock_conda_env(
                    config, joint, platforms, options, steering, solutions, kept, kept_pypi
                )
            except ResolutionError:
                raise first from None
        text = texts[CONDA_LOCK_NAME]
    except ResolutionError as failure:
        raise _conda_disagreement(config, members, platforms, options, failure) from None
    lock = parse_conda_lock(text, "solve group")
    direct = _direct(members)
    conda_pins: CondaPins = {}
    pypi_pins: dict[str, list[str]] = {}
    for platform in platforms:
        entries = lock.for_platform(platform)
        python = _python_of(solutions[platform])
        for env in _on(members, platform):
            if env.kind == "pypi" and not _same_python(env.python, python):
                raise ResolutionError(
                    f"solve group '{joint.solve_group}' cannot agree on {platform}: the conda "
                    f"solution's Python is {python}, but {env.name} uses Python {env.python}; "
                    "one version per package needs one Python"
                )
        pip = {e.name: e.version for e in entries if e.manager == "pip" and e.name not in direct}
        provided = provided_distributions(records_of(solutions[platform]), joint.pypi_map)
        conda_pins[platform] = (
            [f"{e.name} =={e.version}" for e in entries if e.manager == "conda"],
            [f"{name}=={version}" for name, version in sorted(pip.items())],
        )
        pypi_pins[platform] = [
            f"{name}=={version}"
            for name, version in sorted((provided | pip).items())
            if name not in direct
        ]
    return conda_pins, pypi_pins


def _identities(text: str, platform: str, overrides: Iterable[tuple[str, str]]) -> dict[str, str]:
    """What a conda-lock's ``platform`` installs: package identity -> version.

    Keyed by :func:`~flowenv.resolution.conda_pypi.identity`, so that conda and
    PyPI packages meet by what they are, not by how they are spelt.
    """
    from flowenv.lockfiles.condalock import parse_conda_lock
    from flowenv.resolution.conda_pypi import identity

    table = dict(overrides)
    return {
        identity(e.manager, e.name, e.version, (n for n, _ in e.dependencies), table): e.version
        for e in parse_conda_lock(text, "solve group").for_platform(platform)
    }


def _normalize(name: str) -> str:
    from flowenv.config.load import normalize_pypi_name

    return normalize_pypi_name(name)


def _alone(
    config: Config, env: EnvSpec, platforms: Sequence[str], options: LockOptions
) -> dict[str, dict[str, str]]:
    """platform -> package identity -> version of ``env`` resolved on its own."""
    from flowenv.lockfiles.layout import CONDA_LOCK_NAME
    from flowenv.resolution.conda import lock_conda_env

    mine = [p for p in platforms if p in env.platforms]
    if env.kind == "pypi":
        return {
            p: {
                _normalize(name): version
                for name, version in _resolve(
                    config, [env], p, options, f"{env.name} · {p}", None
                ).items()
            }
            for p in mine
        }
    if not mine:
        return {}
    text = lock_conda_env(config, env, mine, options)[CONDA_LOCK_NAME]
    return {p: _identities(text, p, env.pypi_map) for p in mine}


def _conda_disagreement(
    config: Config,
    members: Sequence[EnvSpec],
    platforms: Sequence[str],
    options: LockOptions,
    failure: ResolutionError,
) -> ResolutionError:
    """Why a group with conda members has no joint answer: each member's own answer, compared."""
    per_env = {env.name: _alone(config, env, platforms, options) for env in members}
    alone = {
        platform: {name: found[platform] for name, found in per_env.items() if platform in found}
        for platform in platforms
    }
    return _report(members, alone, failure)


def _report(
    members: Sequence[EnvSpec],
    alone: Mapping[str, Mapping[str, Mapping[str, str]]],
    joint: ResolutionError,
) -> ResolutionError:
    """Why a group has no joint answer: per platform, the packages its members,
    each resolved alone (``alone``: platform -> env -> package -> version), differ on
    (as PEP 440 versions)."""
    from flowenv.resolution.conda_pypi import same_version

    lines = []
    for platform, by_env_versions in alone.items():
        by_package: dict[str, dict[str, str]] = {}
        for env_name, versions in by_env_versions.items():
            for package, version in versions.items():
                by_package.setdefault(package, {})[env_name] = version
        where = f"{platform} " if len(alone) > 1 else ""
        lines += [
            f"  {where}{package}: "
            + ", ".join(f"{env} {version}" for env, version in sorted(by_env.items()))
            for package, by_env in sorted(by_package.items())
            if len({same_version(v) for v in by_env.values()}) > 1
        ]
    group = members[0].solve_group
    names = ", ".join(e.name for e in members)
    on = f" on {next(iter(alone))}" if len(alone) == 1 else ""
    head = f"solve group '{group}' ({names}) cannot agree on one version per package{on}"
    detail = (
        "each env resolved alone differs on:\n" + "\n".join(lines)
        if lines
        else "each env resolves alone, but not together"
    )
    return ResolutionError(f"{head}; {detail}\n{joint.message}")


def lock_group(
    config: Config,
    group: Sequence[EnvSpec],
    envs: Sequence[EnvSpec],
    platforms: Sequence[str],
    options: LockOptions,
) -> dict[Path, str]:
    """Lock ``envs`` (members of ``group``) for ``platforms``: lock path -> text."""
    if any(env.kind == "conda" for env in group):
        return _lock_conda_group(config, group, envs, platforms, options)
    from flowenv.resolution.pypi import lock_pypi_env

    # Every member's locked versions are kept where they still fit.
    kept = _kept_pypi(config, group, platforms)
    pins = {p: group_pins(config, group, p, options, kept[p]) for p in platforms}
    return {
        config.lock_root / env.name / name: text
        for env in envs
        for name, text in lock_pypi_env(
            config, env, [p for p in platforms if p in env.platforms], options, constraints=pins
        ).items()
    }


def _lock_conda_group(
    config: Config,
    group: Sequence[EnvSpec],
    envs: Sequence[EnvSpec],
    platforms: Sequence[str],
    options: LockOptions,
) -> dict[Path, str]:
    """A group with a conda member: every member at the joint solution's versions."""
    from flowenv.resolution.conda import lock_conda_env
    from flowenv.resolution.pypi import lock_pypi_env

    conda_pins, pypi_pins = _conda_group_pins(config, group, platforms, options)
    out: dict[Path, str] = {}
    for env in envs:
        mine = [p for p in platforms if p in env.platforms]
        if not mine:
            continue
        try:
            if env.kind == "conda":
                texts = lock_conda_env(config, env, mine, options, conda_pins)
            else:
                texts = lock_pypi_env(config, env, mine, options, constraints=pypi_pins)
        except ResolutionError as failure:
            # The joint answer exists, but this member cannot take its versions
            # (a PyPI member finds no wheel of conda's version): say who differs.
            raise _conda_disagreement(config, group, platforms, options, failure) from None
        out |= {config.lock_root / env.name / name: text for name, text in texts.items()}
    return out
