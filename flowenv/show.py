"""The effective environment of each step, as plain data for ``flowenv show``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flowenv.config.load import did_you_mean
from flowenv.config.models import Config, PypiPackage
from flowenv.diff.compare import platform_differences
from flowenv.diff.load import read_conda_lock_text, read_pylock_text
from flowenv.diff.model import EnvLocks, PlatformLock
from flowenv.errors import FlowenvError, UsageError
from flowenv.lockfiles.layout import (
    CONDA_LOCK_NAME,
    LockTarget,
    lock_status,
    targets,
    validate_lock,
)
from flowenv.spec import EnvSpec, build_environments, strip_credentials

#: The (normalised) name at the start of a requirement line.
_NAME = re.compile(r"[a-z0-9._-]+")


def _pypi(packages: Sequence[PypiPackage]) -> list[str]:
    """PEP 508 requirement lines (what a tool can hand to pip or packaging as they are)."""
    return [p.requirement() for p in packages]


def _pinned(packages: Sequence[PypiPackage]) -> dict[str, str]:
    """package name -> the named index it comes from, for the packages pinned to one."""
    return {p.name: p.index for p in packages if p.index}


def _content(env: EnvSpec, platform: str) -> dict[str, Any]:
    return {
        "pypi": _pypi(env.pypi_on(platform)),
        "pinned-indexes": _pinned(env.pypi_on(platform)),
        "conda": [strip_credentials(c.match_spec()) for c in env.conda_on(platform)],
        "system-requirements": dict(env.system_on(platform).items()),
    }


def describe_env(config: Config, env: EnvSpec) -> dict[str, Any]:
    """One environment: its merged spec, the steps using it, and its lock per platform.

    ``pypi``, ``conda`` and ``system-requirements`` hold what every platform
    gets; ``targets`` holds the full content of each platform whose
    ``target.<platform>`` tables change it. The input hash is per platform.
    """
    env_targets = targets(config.lock_root, [env], env.platforms, live_platforms=env.platforms)
    for path in sorted({t.path for t in env_targets if lock_status(t) == "fresh"}):
        validate_lock(path)
    indexes = {n: strip_credentials(u) for p in env.platforms for n, u in env.indexes_on(p)}
    return {
        "name": env.name,
        "kind": env.kind,
        "python": env.python,
        "platforms": list(env.platforms),
        "pypi": _pypi(env.pypi),
        "pinned-indexes": _pinned(env.pypi),
        "conda": [strip_credentials(c.match_spec()) for c in env.conda],
        "channels": [strip_credentials(c) for c in env.channels] if env.kind == "conda" else [],
        "constraints": [strip_credentials(c.requirement()) for c in env.pypi_constraints],
        "inputs": list(env.inputs),
        "solve-group": env.solve_group,
        "system-requirements": dict(env.system_requirements.items()),
        "indexes": dict(sorted(indexes.items())),
        "targets": {platform: _content(env, platform) for platform, _ in env.targets},
        "steps": list(env.steps),
        "locks": {
            t.platform: {
                "path": t.path.relative_to(config.root).as_posix(),
                "status": lock_status(t),
                "input-hash": env.input_hash(t.platform),
            }
            for t in env_targets
        },
        "platform-differences": platform_differences(_locked(env_targets)),
    }


def _locked(env_targets: Sequence[LockTarget]) -> EnvLocks:
    """What the env's lock files on disk hold, per platform (missing files are skipped)."""
    out: dict[str, PlatformLock] = {}
    for target in env_targets:
        try:
            text = target.path.read_text(encoding="utf-8")
        except OSError:
            continue
        source = str(target.path)
        try:
            if target.path.name == CONDA_LOCK_NAME:
                out.update(read_conda_lock_text(text, source))
            else:
                out[target.platform] = read_pylock_text(text, source)
        except FlowenvError:
            continue  # a damaged lock is reported by its status, not here
    live = {t.platform for t in env_targets}
    return {platform: packages for platform, packages in out.items() if platform in live}


def describe_steps(config: Config, steps: Sequence[str] = ()) -> dict[str, Any]:
    """Every declared step (or those named) with the environment it runs in.

    A step the file does not mention runs in base, as Metaflow runs an
    undecorated step under ``@conda_base``; it is shown with ``declared: false``
    so that a typo in a step name is visible rather than silently "base".
    """
    environments = build_environments(config)
    declared = dict(environments.step_envs)
    names = list(dict.fromkeys(steps)) or sorted(declared)
    shown = []
    for name in names:
        if not name.isidentifier():
            raise UsageError(f"'{name}' is not a step name (steps are Python identifiers)")
        hint = did_you_mean(name, declared) if name not in declared else ""
        if hint:
            # An undeclared step runs in base, but one a letter away from a
            # declared step is a typo: showing base for it would mislead.
            raise UsageError(f"no step named '{name}' in {config.path.name}{hint}")
        shown.append(
            {
                "step": name,
                "declared": name in declared,
                "env": environments.env_of_step(name),
            }
        )
    used = {s["env"] for s in shown} if steps else set(environments.names())
    return {
        "config": str(config.path),
        "platforms": list(config.project.platforms),
        "steps": shown,
        "envs": [describe_env(config, env) for env in environments.envs if env.name in used],
    }


def render_text(described: dict[str, Any]) -> str:
    """The human form of :func:`describe_steps`: one block per step."""
    envs = {env["name"]: env for env in described["envs"]}
    lines: list[str] = []
    for step in described["steps"]:
        note = "" if step["declared"] else " [not declared: as base]"
        if step["env"] is None:
            lines.append(f"{step['step']}: disabled (system environment, no lock){note}")
            continue
        lines += _env_block(f"{step['step']}:", envs[step["env"]], note)
    # Environments no listed step runs in are still locked: base serves every
    # step the file does not name, and a named env may serve none yet.
    shown = {step["env"] for step in described["steps"]}
    for name, env in envs.items():
        if name not in shown:
            who = "steps not listed in the file" if name == "base" else "no step uses it"
            lines += _env_block("", env, f" [{who}]")
    return "".join(f"{line}\n" for line in lines)


def _env_block(label: str, env: dict[str, Any], note: str) -> list[str]:
    head = f"env {env['name']} ({env['kind']}, python {env['python']}){note}"
    lines = [f"{label} {head}" if label else head]
    lines += [f"    pypi   {req}" for req in _annotated(env)]
    lines += [f"    conda  {req}" for req in env["conda"]]
    lines += [f"    constraint  {req}" for req in env["constraints"]]
    if env["channels"]:
        lines.append(f"    channels  {', '.join(env['channels'])}")
    if env["inputs"]:
        lines.append(f"    from   {', '.join(env['inputs'])}")
    if env["solve-group"]:
        lines.append(f"    solve-group  {env['solve-group']}")
    if env["system-requirements"]:
        lines.append(f"    system {_requirements(env['system-requirements'])}")
    for platform, content in env["targets"].items():
        lines.append(f"    on {platform}:")
        lines += [f"      pypi   {req}" for req in _annotated(content)]
        lines += [f"      conda  {req}" for req in content["conda"]]
        if content["system-requirements"]:
            lines.append(f"      system {_requirements(content['system-requirements'])}")
    for platform, lock in env["locks"].items():
        lines.append(f"    lock   {platform}: {lock['path']} ({lock['status']})")
    for name, versions in env["platform-differences"].items():
        spread = ", ".join(f"{platform} {version}" for platform, version in versions.items())
        lines.append(f"    differs  {name}: {spread}")
    return lines


def _annotated(content: dict[str, Any]) -> list[str]:
    """Requirement lines; one pinned to a named index says so: ``torch==2.4.1 (index cpu)``."""
    pinned = content["pinned-indexes"]
    out = []
    for req in content["pypi"]:
        name = _NAME.match(req)
        index = pinned.get(name.group(0)) if name else None
        out.append(f"{req} (index {index})" if index else req)
    return out


def _requirements(requirements: dict[str, str]) -> str:
    return ", ".join(f"{name} >= {version}" for name, version in requirements.items())
