"""Effective environments: what each step runs in, merged, with the hash a lock records.

Rules (mirroring Metaflow's decorators):

* A step merges its own table over its parent: ``[envs.NAME]`` when it says
  ``env = "NAME"``, else ``[base]``. The step wins per package.
* A step with nothing of its own shares its parent's environment (and lock).
* ``disabled = true`` (on a step, or on base for steps with nothing of their
  own) means the system environment: nothing is locked for it.
* A named environment does not inherit base's packages (a GPU env should not
  drag in base's CPU stack) but does inherit base's ``python`` when it sets
  none, because the Python version is a flow-wide choice like ``@conda_base``'s.
* Any step not listed in the file runs in base, so base is always locked
  unless disabled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import attrs

from flowenv.config.models import (
    CondaPackage,
    Config,
    EnvDecl,
    PypiPackage,
    PypiSettings,
)

BASE = "base"
#: Bumped whenever the meaning of a lock's inputs changes, so old locks go stale.
INPUT_HASH_VERSION = "1"


def strip_credentials(url: str) -> str:
    """``https://user:token@host/simple`` -> ``https://host/simple``; other strings unchanged.

    Also for a conda ``channel-url::name`` match spec: the URL part is stripped.
    """
    channel, sep, name = url.rpartition("::")
    if sep and "://" in channel:
        return f"{strip_credentials(channel)}::{name}"
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@attrs.frozen(kw_only=True)
class EnvSpec:
    """One environment to lock: the merged declaration plus where its packages come from."""

    name: str
    python: str
    pypi: tuple[PypiPackage, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    channels: tuple[str, ...] = ()
    channel_priority: str = "strict"
    virtual_packages: tuple[tuple[str, str], ...] = ()
    pypi_settings: PypiSettings = attrs.field(factory=PypiSettings)
    #: Steps that run in this environment (not part of the hash: it is not an input).
    steps: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``"conda"`` when any conda package is declared (conda or mixed env), else ``"pypi"``."""
        return "conda" if self.conda else "pypi"

    def hash_inputs(self) -> dict[str, object]:
        """Everything that changes the resolution, in a canonical JSON-able form."""
        inputs: dict[str, object] = {
            "version": INPUT_HASH_VERSION,
            "kind": self.kind,
            "python": self.python,
            "pypi": [p.requirement() for p in self.pypi],
            "index-url": strip_credentials(self.pypi_settings.index_url or ""),
            "extra-index-urls": [strip_credentials(u) for u in self.pypi_settings.extra_index_urls],
            "find-links": [strip_credentials(u) for u in self.pypi_settings.find_links],
        }
        if self.kind == "conda":
            inputs |= {
                # Credentials are a secret and a rotating one: never part of a
                # lock's identity (a new token must not make every lock stale).
                "conda": [strip_credentials(c.match_spec()) for c in self.conda],
                "channels": [strip_credentials(c) for c in self.channels],
                "channel-priority": self.channel_priority,
                "virtual-packages": [list(v) for v in self.virtual_packages],
            }
        return inputs

    def input_hash(self) -> str:
        """sha256 of :meth:`hash_inputs`; what a lock file records to decide staleness."""
        canonical = json.dumps(self.hash_inputs(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen(kw_only=True)
class Environments:
    """Every environment of a configuration and the environment of every declared step."""

    envs: tuple[EnvSpec, ...]
    #: step name -> environment name, or None for a disabled (system) step.
    step_envs: tuple[tuple[str, str | None], ...]

    def get(self, name: str) -> EnvSpec:
        for env in self.envs:
            if env.name == name:
                return env
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(env.name for env in self.envs)

    def env_of_step(self, step: str) -> str | None:
        """The environment a step runs in; undeclared steps run in base."""
        mapping = dict(self.step_envs)
        if step in mapping:
            return mapping[step]
        return None if BASE not in self.names() else BASE


def _merge_by_key(
    parent: Iterable[object], child: Iterable[object], key: str
) -> tuple[object, ...]:
    merged = {getattr(p, key): p for p in parent}
    merged.update({getattr(c, key): c for c in child})
    return tuple(merged[k] for k in sorted(merged))


def _merge(parent: EnvDecl, child: EnvDecl) -> EnvDecl:
    return EnvDecl(
        python=child.python or parent.python,
        pypi=_merge_by_key(parent.pypi, child.pypi, "name"),  # type: ignore[arg-type]
        conda=_merge_by_key(parent.conda, child.conda, "name"),  # type: ignore[arg-type]
        channels=child.channels if child.channels is not None else parent.channels,
    )


def build_environments(config: Config) -> Environments:
    """Merge every step over its parent and group steps that share an environment."""
    decls: dict[str, tuple[str, EnvDecl]] = {}  # env name -> (key path, declaration)
    step_envs: dict[str, str | None] = {}
    if not config.base.disabled:
        decls[BASE] = ("base", config.base)
    for name, named in config.envs:
        decls[name] = (
            f"envs.{name}",
            EnvDecl(
                python=named.python or config.base.python,
                pypi=named.pypi,
                conda=named.conda,
                channels=named.channels,
            ),
        )
    for name, step in config.steps:
        parent_name = step.env or BASE
        if step.disabled or (
            parent_name == BASE and config.base.disabled and not step.has_own_content()
        ):
            step_envs[name] = None
            continue
        parent = config.named_env(step.env) if step.env else config.base
        if step.env:
            parent = decls[step.env][1]
        if step.has_own_content():
            decls[name] = (f"steps.{name}", _merge(parent, step))
            step_envs[name] = name
        else:
            step_envs[name] = parent_name
    users: dict[str, list[str]] = {env: [] for env in decls}
    for step_name, env_name in step_envs.items():
        if env_name is not None:
            users[env_name].append(step_name)
    specs: list[EnvSpec] = []
    project = config.project
    for env_name, (_, decl) in decls.items():
        # The loader already rejected every environment without a Python version.
        assert decl.python, env_name
        specs.append(
            EnvSpec(
                name=env_name,
                python=decl.python,
                pypi=decl.pypi,
                conda=decl.conda,
                channels=decl.channels if decl.channels is not None else project.conda.channels,
                channel_priority=project.conda.channel_priority,
                virtual_packages=project.conda.virtual_packages,
                pypi_settings=project.pypi,
                steps=tuple(sorted(users[env_name])),
            )
        )
    return Environments(
        envs=tuple(sorted(specs, key=lambda e: e.name)), step_envs=tuple(sorted(step_envs.items()))
    )
