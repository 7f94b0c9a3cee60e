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

Conda and mixed envs form groups the same way: their conda specs and PyPI
requirements are solved together (one rattler solve, then uv for the PyPI
part), and each member is locked with the joint conda versions as solver
constraints and the joint PyPI versions as uv constraints. A group is either
all PyPI-only envs or all conda/mixed envs, and conda members share channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flowenv.config.models import Config
from flowenv.errors import ResolutionError, UsageError
from flowenv.lockers import LockOptions
from flowenv.spec import Environments, EnvSpec

__all__ = ["check_groups", "conda_group_pins", "group_members", "group_pins", "lock_group"]

#: platform -> (conda match specs, PyPI requirements) a conda member is held to.
CondaPins = dict[str, tuple[list[str], list[str]]]


def group_members(environments: Environments, group: str) -> tuple[EnvSpec, ...]:
    """Every env of the configuration in ``group``, by name."""
    return tuple(e for e in environments.envs if e.solve_group == group)


def check_groups(environments: Environments) -> None:
    """Refuse groups flowenv cannot make agree: mixed kinds, or conda members on other channels."""
    groups = sorted({e.solve_group for e in environments.envs if e.solve_group is not None})
    for group in groups:
        members = group_members(environments, group)
        kinds = {env.kind for env in members}
        if len(kinds) > 1:
            conda = ", ".join(e.name for e in members if e.kind == "conda")
            pypi = ", ".join(e.name for e in members if e.kind == "pypi")
            raise UsageError(
                f"solve group '{group}' mixes conda envs ({conda}) with PyPI-only envs ({pypi}); "
                "a group holds one kind (give the PyPI-only envs their packages from conda, "
                "or use two groups)"
            )
        if kinds == {"conda"} and any(e.targets for e in members):
            raise UsageError(
                f"solve group '{group}': conda envs with target.<platform> tables cannot be "
                "grouped yet; group them without per-platform tables"
            )
        settings = {(e.channels, e.channel_priority) for e in members}
        if len(settings) > 1:
            raise UsageError(
                f"solve group '{group}': its conda envs use different channels or channel "
                f"priority ({', '.join(f'{e.name}: {list(e.channels)}' for e in members)}); "
                "one version per package needs one set of channels"
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
    from flowenv.locks.pylock import parse_pylock
    from flowenv.resolvers.uv import compile_pylock

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
        system=first.system_on(platform),
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

    ``previous`` (a member's earlier lock) keeps versions put across re-locks
    unless the inputs or ``options`` ask them to move.
    """
    group = members[0].solve_group
    members = [env for env in members if platform in env.platforms] or list(members)
    pythons = sorted({env.python for env in members})
    if len(pythons) > 1:
        who = ", ".join(f"{e.name} {e.python}" for e in members)
        raise ResolutionError(
            f"solve group '{group}' cannot agree on {platform}: its envs use different "
            f"Python versions ({who}); one version per package needs one Python"
        )
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


def _joint(members: Sequence[EnvSpec]) -> EnvSpec:
    """One spec asking for everything every member asks for."""
    import attrs

    first = members[0]
    return attrs.evolve(
        first,
        name=f"solve-group-{first.solve_group}",
        conda=tuple(dict.fromkeys(c for env in members for c in env.conda)),
        pypi=tuple(dict.fromkeys(p for env in members for p in env.pypi)),
        pypi_constraints=tuple(dict.fromkeys(c for env in members for c in env.pypi_constraints)),
        platforms=tuple(dict.fromkeys(p for env in members for p in env.platforms)),
        targets=(),
    )


def _conda_versions(text: str, platforms: Sequence[str]) -> dict[str, dict[str, str]]:
    """platform -> "manager name" -> version, from a conda-lock.yml's text."""
    from flowenv.locks.condalock import parse_conda_lock

    lock = parse_conda_lock(text, "solve group")
    return {
        platform: {f"{p.manager} {p.name}": p.version for p in lock.for_platform(platform)}
        for platform in platforms
    }


def conda_group_pins(
    config: Config, members: Sequence[EnvSpec], platforms: Sequence[str], options: LockOptions
) -> CondaPins:
    """Per platform, the conda and PyPI versions of the group's joint solution."""
    from flowenv.lockers.conda import lock_conda_env
    from flowenv.locks.layout import CONDA_LOCK_NAME

    try:
        text = lock_conda_env(config, _joint(members), platforms, options)[CONDA_LOCK_NAME]
    except ResolutionError as joint:
        per_env = {
            env.name: _conda_versions(
                lock_conda_env(config, env, platforms, options)[CONDA_LOCK_NAME], platforms
            )
            for env in members
        }
        alone = {
            platform: {
                name: {key.split()[1]: v for key, v in versions[platform].items()}
                for name, versions in per_env.items()
            }
            for platform in platforms
        }
        raise _report(members, alone, joint) from None
    direct = _direct(members)
    pins: CondaPins = {}
    for platform, versions in _conda_versions(text, platforms).items():
        conda = [
            f"{k.split()[1]} =={v}" for k, v in sorted(versions.items()) if k.startswith("conda ")
        ]
        pip = [
            f"{k.split()[1]}=={v}"
            for k, v in sorted(versions.items())
            if k.startswith("pip ") and k.split()[1] not in direct
        ]
        pins[platform] = (conda, pip)
    return pins


def _report(
    members: Sequence[EnvSpec],
    alone: Mapping[str, Mapping[str, Mapping[str, str]]],
    joint: ResolutionError,
) -> ResolutionError:
    """Why a group has no joint answer: per platform, the packages its members,
    each resolved alone (``alone``: platform -> env -> package -> version), differ on."""
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
            if len(set(by_env.values())) > 1
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
    import contextlib

    from flowenv.locks.layout import lock_path

    if group[0].kind == "conda":
        from flowenv.lockers.conda import lock_conda_env

        conda_pins = conda_group_pins(config, group, platforms, options)
        return {
            config.lock_root / env.name / name: text
            for env in envs
            for name, text in lock_conda_env(config, env, platforms, options, conda_pins).items()
        }
    from flowenv.lockers.pypi import lock_pypi_env

    pins: dict[str, list[str]] = {}
    for platform in platforms:
        previous = None
        with contextlib.suppress(OSError):
            previous = lock_path(config.lock_root, group[0], platform).read_text(encoding="utf-8")
        pins[platform] = group_pins(config, group, platform, options, previous)
    return {
        config.lock_root / env.name / name: text
        for env in envs
        for name, text in lock_pypi_env(
            config, env, [p for p in platforms if p in env.platforms], options, constraints=pins
        ).items()
    }
