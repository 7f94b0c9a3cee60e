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
* Packages read from input files (flowenv.inputs) merge like declared ones;
  a name may have several entries (one per marker), all replaced together.
* A step inherits its parent's ``solve-group``; a named env does not inherit
  base's. Each member's hash covers its whole group (flowenv.solve_groups).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from flowenv.config.models import (
    CondaPackage,
    Config,
    EnvDecl,
    PypiPackage,
    PypiSettings,
)

P = TypeVar("P", PypiPackage, CondaPackage)

BASE = "base"
#: Bumped whenever the meaning of a lock's inputs changes, so old locks go stale.
INPUT_HASH_VERSION = "1"


def strip_credentials(url: str) -> str:
    """``https://user:token@host/simple`` -> ``https://host/simple``; other strings unchanged."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _hash_form(package: PypiPackage) -> str:
    """A package as the input hash records it: a direct URL without its credentials."""
    if package.url:
        package = attrs.evolve(package, url=strip_credentials(package.url))
    return package.hash_form()


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
    #: Constraints from requirements files (``-c``): bound versions, install nothing.
    pypi_constraints: tuple[PypiPackage, ...] = ()
    #: The solve group this env agrees with (see flowenv.solve_groups), or None.
    solve_group: str | None = None
    #: sha256 over the inputs of every member of the solve group ("" outside a group):
    #: a change to any member can move this env's versions, so it is part of the hash.
    group_hash: str = ""
    #: Steps that run in this environment (not part of the hash: it is not an input).
    steps: tuple[str, ...] = ()
    #: Input files read into this env (their meaning is hashed through the packages).
    inputs: tuple[str, ...] = ()

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
            "pypi": [_hash_form(p) for p in self.pypi],
            "index-url": strip_credentials(self.pypi_settings.index_url or ""),
            "extra-index-urls": [strip_credentials(u) for u in self.pypi_settings.extra_index_urls],
            "find-links": [strip_credentials(u) for u in self.pypi_settings.find_links],
        }
        # Keys added only when used, so that locks of envs without them keep their hash.
        if self.pypi_constraints:
            inputs["pypi-constraints"] = [_hash_form(c) for c in self.pypi_constraints]
        if self.solve_group is not None:
            inputs["solve-group"] = [self.solve_group, self.group_hash]
        if self.kind == "conda":
            inputs |= {
                "conda": [c.match_spec() for c in self.conda],
                "channels": list(self.channels),
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


def _merge_by_name(
    parent: Sequence[P], child: Sequence[P], key: Callable[[P], Any]
) -> tuple[P, ...]:
    """The child's entries plus the parent's for names the child does not mention.

    A name may have several entries (one per environment marker, from a
    requirements file); the child replaces all of them.
    """
    names = {c.name for c in child}
    merged = [p for p in parent if p.name not in names] + list(child)
    return tuple(sorted(merged, key=key))


def _merge(parent: EnvDecl, child: EnvDecl) -> EnvDecl:
    return EnvDecl(
        python=child.python or parent.python,
        pypi=_merge_by_name(parent.pypi, child.pypi, _pypi_key),
        conda=_merge_by_name(parent.conda, child.conda, lambda c: (c.name, c.channel or "")),
        channels=child.channels if child.channels is not None else parent.channels,
        pypi_constraints=_merge_by_name(parent.pypi_constraints, child.pypi_constraints, _pypi_key),
        solve_group=child.solve_group or parent.solve_group,
        inputs=tuple(dict.fromkeys((*parent.inputs, *child.inputs))),
    )


def _pypi_key(package: PypiPackage) -> tuple[str, str, str]:
    return (package.name, package.marker, package.requirement())


def build_environments(config: Config) -> Environments:
    """Merge every step over its parent and group steps that share an environment."""
    decls: dict[str, tuple[str, EnvDecl]] = {}  # env name -> (key path, declaration)
    step_envs: dict[str, str | None] = {}
    if not config.base.disabled:
        decls[BASE] = ("base", config.base)
    for name, named in config.envs:
        decls[name] = (
            f"envs.{name}",
            attrs.evolve(named, python=named.python or config.base.python, env=None),
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
                pypi_constraints=decl.pypi_constraints,
                solve_group=decl.solve_group,
                steps=tuple(sorted(users[env_name])),
                inputs=decl.inputs,
            )
        )
    return Environments(
        envs=tuple(sorted(_with_group_hashes(specs), key=lambda e: e.name)),
        step_envs=tuple(sorted(step_envs.items())),
    )


def _with_group_hashes(specs: Sequence[EnvSpec]) -> list[EnvSpec]:
    """Each grouped env with the hash of its whole group's inputs (see EnvSpec.group_hash)."""
    members: dict[str, list[EnvSpec]] = {}
    for spec in specs:
        if spec.solve_group is not None:
            members.setdefault(spec.solve_group, []).append(spec)
    hashes = {
        group: hashlib.sha256(
            json.dumps(
                sorted([e.name, e.hash_inputs()] for e in envs),
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        for group, envs in members.items()
    }
    return [
        attrs.evolve(spec, group_hash=hashes[spec.solve_group]) if spec.solve_group else spec
        for spec in specs
    ]
