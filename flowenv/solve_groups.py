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

Groups hold PyPI environments; a conda or mixed env in a group is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flowenv.config.models import Config
from flowenv.errors import ResolutionError, UsageError
from flowenv.lockers import LockOptions
from flowenv.spec import Environments, EnvSpec

__all__ = ["check_groups", "group_members", "group_pins"]


def group_members(environments: Environments, group: str) -> tuple[EnvSpec, ...]:
    """Every env of the configuration in ``group``, by name."""
    return tuple(e for e in environments.envs if e.solve_group == group)


def check_groups(environments: Environments) -> None:
    """Refuse groups flowenv cannot make agree (today: any member with conda packages)."""
    for env in environments.envs:
        if env.solve_group is not None and env.kind == "conda":
            raise UsageError(
                f"solve group '{env.solve_group}': env '{env.name}' has conda packages; "
                "solve groups hold PyPI environments only, for now"
            )


def _requirements(members: Sequence[EnvSpec], root: Path) -> tuple[list[str], list[str]]:
    requirements: dict[str, None] = {}
    constraints: dict[str, None] = {}
    for env in members:
        requirements.update(dict.fromkeys(p.requirement(root) for p in env.pypi))
        constraints.update(dict.fromkeys(c.requirement(root) for c in env.pypi_constraints))
    return list(requirements), list(constraints)


def _direct(members: Sequence[EnvSpec]) -> set[str]:
    """Packages some member takes from a path or URL: the group cannot pin them by version."""
    return {p.name for env in members for p in env.pypi if p.path or p.url}


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

    requirements, constraints = _requirements(members, config.root)
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
    differing: dict[str, dict[str, str]] = {}
    for env_name, versions in alone.items():
        for package, version in versions.items():
            differing.setdefault(package, {})[env_name] = version
    lines = [
        f"  {package}: " + ", ".join(f"{env} {version}" for env, version in sorted(by_env.items()))
        for package, by_env in sorted(differing.items())
        if len(set(by_env.values())) > 1
    ]
    group = members[0].solve_group
    names = ", ".join(e.name for e in members)
    head = f"solve group '{group}' ({names}) cannot agree on one version per package on {platform}"
    detail = (
        "each env resolved alone differs on:\n" + "\n".join(lines)
        if lines
        else "each env resolves alone, but not together"
    )
    return ResolutionError(f"{head}; {detail}\n{joint.message}")
