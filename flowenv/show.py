"""The effective environment of each step, as plain data for ``flowenv show``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowenv.config.load import did_you_mean
from flowenv.config.models import Config
from flowenv.errors import UsageError
from flowenv.locks.layout import lock_status, targets
from flowenv.spec import EnvSpec, build_environments, strip_credentials


def describe_env(config: Config, env: EnvSpec) -> dict[str, Any]:
    """One environment: its merged spec, the steps using it, and its lock per platform."""
    platforms = config.project.platforms
    env_targets = targets(config.lock_root, [env], platforms, live_platforms=platforms)
    return {
        "name": env.name,
        "kind": env.kind,
        "python": env.python,
        "pypi": [p.requirement() for p in env.pypi],
        "conda": [strip_credentials(c.match_spec()) for c in env.conda],
        "channels": [strip_credentials(c) for c in env.channels] if env.kind == "conda" else [],
        "steps": list(env.steps),
        "input-hash": env.input_hash(),
        "locks": {
            t.platform: {
                "path": t.path.relative_to(config.root).as_posix(),
                "status": lock_status(t),
            }
            for t in env_targets
        },
    }


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
    lines += [f"    pypi   {req}" for req in env["pypi"]]
    lines += [f"    conda  {req}" for req in env["conda"]]
    if env["channels"]:
        lines.append(f"    channels  {', '.join(env['channels'])}")
    for platform, lock in env["locks"].items():
        lines.append(f"    lock   {platform}: {lock['path']} ({lock['status']})")
    return lines
