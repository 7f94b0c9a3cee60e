"""The effective environment of each step, as plain data for ``flowenv show``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowenv.config.models import Config
from flowenv.locks.layout import is_fresh, targets
from flowenv.spec import EnvSpec, build_environments


def describe_env(config: Config, env: EnvSpec) -> dict[str, Any]:
    env_targets = targets(config.lock_root, [env], config.project.platforms)
    return {
        "name": env.name,
        "kind": env.kind,
        "python": env.python,
        "pypi": [p.requirement() for p in env.pypi],
        "conda": [c.match_spec() for c in env.conda],
        "channels": list(env.channels) if env.kind == "conda" else [],
        "steps": list(env.steps),
        "input-hash": env.input_hash(),
        "locks": {t.platform: str(t.path.relative_to(config.root)) for t in env_targets},
        "lock-status": {
            t.platform: ("fresh" if is_fresh(t) else "stale" if t.path.exists() else "missing")
            for t in env_targets
        },
    }


def describe_steps(config: Config, steps: Sequence[str] = ()) -> dict[str, Any]:
    """Every declared step (or those named; unknown ones raise KeyError) with its env."""
    environments = build_environments(config)
    declared = dict(environments.step_envs)
    names = list(steps) or sorted(declared)
    envs = {env.name: describe_env(config, env) for env in environments.envs}
    out = []
    for name in names:
        if name not in declared:
            raise KeyError(name)
        env_name = declared[name]
        out.append({"step": name, "env": envs[env_name] if env_name else None})
    return {
        "config": str(config.path),
        "platforms": list(config.project.platforms),
        "steps": out,
        "envs": [envs[n] for n in sorted(envs)],
    }
