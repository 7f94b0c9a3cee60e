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
* ``target.<platform>`` tables apply on that platform only, layered in file
  order: parent, parent's target, step, step's target (the most specific
  table wins per package). ``platforms`` and each system requirement are
  inherited unless the step says its own.
* Packages read from input files (flowenv.inputs) merge like declared ones;
  a name may have several entries (one per marker), all replaced together.
* A step inherits its parent's ``solve-group``; a named env does not inherit
  base's. Each member's hash covers its whole group (flowenv.solve_groups).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import attrs

from flowenv._sha256 import sha256_hex
from flowenv.config import memo
from flowenv.config.models import (
    NO_TARGET,
    CondaPackage,
    Config,
    EnvDecl,
    ProjectSettings,
    PypiPackage,
    PypiSettings,
    SystemRequirements,
)

# Re-exported: most callers know it from here.
from flowenv.url_credentials import strip_credentials as strip_credentials

P = TypeVar("P", PypiPackage, CondaPackage)

BASE = "base"
#: Bumped whenever the meaning of a lock's inputs changes, so old locks go stale.
INPUT_HASH_VERSION = "1"


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
    #: ``[project.conda] pypi-map``: how conda names map to PyPI names (mixed envs).
    pypi_map: tuple[tuple[str, str], ...] = ()
    pypi_settings: PypiSettings = attrs.field(factory=PypiSettings)
    #: Steps that run in this environment (not part of the hash: it is not an input).
    steps: tuple[str, ...] = ()
    #: Constraints from requirements files (``-c``): bound versions, install nothing.
    pypi_constraints: tuple[PypiPackage, ...] = ()
    #: The solve group this env agrees with (see flowenv.solve_groups), or None.
    solve_group: str | None = None
    #: sha256 over the inputs of every member of the solve group ("" outside a group):
    #: a change to any member can move this env's versions, so it is part of the hash.
    group_hash: str = ""
    #: Input files read into this env (their meaning is hashed through the packages).
    inputs: tuple[str, ...] = ()
    #: The platforms this env is locked for (a subset of project.platforms, in its order).
    platforms: tuple[str, ...] = ()
    system_requirements: SystemRequirements = attrs.field(factory=SystemRequirements)
    #: platform -> the env's full content there, for the platforms whose
    #: ``target.<platform>`` tables change it (only pypi, conda and
    #: system_requirements are set); every other platform uses the fields above.
    targets: tuple[tuple[str, EnvDecl], ...] = ()
    #: platform (and :meth:`_hash_key`) -> :meth:`input_hash`, filled as they are asked
    #: for: a lock run asks for each several times (freshness, grouping, the lock, the record).
    _input_hashes: dict[object, str] = attrs.field(
        factory=dict, init=False, repr=False, eq=False, hash=False
    )

    @property
    def kind(self) -> str:
        """``"conda"`` when any conda package is declared (conda or mixed env), else ``"pypi"``.

        One kind for every platform: a conda package on one platform makes the
        env's lock a conda-lock.yml everywhere.
        """
        return "conda" if self.conda or any(t.conda for _, t in self.targets) else "pypi"

    def pypi_on(self, platform: str) -> tuple[PypiPackage, ...]:
        """The PyPI packages resolved for ``platform`` (target tables applied)."""
        target = dict(self.targets).get(platform)
        return self.pypi if target is None else target.pypi

    def conda_on(self, platform: str) -> tuple[CondaPackage, ...]:
        """The conda packages solved for ``platform`` (target tables applied)."""
        target = dict(self.targets).get(platform)
        return self.conda if target is None else target.conda

    def system_on(self, platform: str) -> SystemRequirements:
        """The system requirements on ``platform`` (target tables applied, all names kept)."""
        target = dict(self.targets).get(platform)
        return self.system_requirements if target is None else target.system_requirements

    def pinned_on(self, platform: str) -> dict[str, str]:
        """package name -> the named index it comes from (and only from) on ``platform``."""
        return {p.name: p.index for p in self.pypi_on(platform) if p.index}

    def indexes_on(self, platform: str) -> tuple[tuple[str, str], ...]:
        """(name, URL) of each named index a package on ``platform`` is pinned to."""
        used = {p.index for p in self.pypi_on(platform) if p.index}
        return tuple((n, u) for n, u in self.pypi_settings.indexes if n in used)

    def hash_inputs(self, platform: str) -> dict[str, object]:
        """Everything that changes the resolution for ``platform``, in a canonical JSON-able form.

        Keys for the newer concepts (named indexes, system requirements) appear
        only when used, so that locks made before them stay fresh.
        """
        from flowenv.system import applicable

        pypi = self.pypi_on(platform)
        inputs: dict[str, object] = {
            "version": INPUT_HASH_VERSION,
            "kind": self.kind,
            "python": self.python,
            "pypi": [_hash_form(p) for p in pypi],
            "index-url": strip_credentials(self.pypi_settings.index_url or ""),
            "extra-index-urls": [strip_credentials(u) for u in self.pypi_settings.extra_index_urls],
            "find-links": [strip_credentials(u) for u in self.pypi_settings.find_links],
        }
        pinned = self.pinned_on(platform)
        if pinned:
            inputs["pinned-indexes"] = pinned
            inputs["indexes"] = {n: strip_credentials(u) for n, u in self.indexes_on(platform)}
        system = applicable(self.system_on(platform), platform)
        if system:
            inputs["system-requirements"] = dict(system)
        if self.pypi_constraints:
            inputs["pypi-constraints"] = [_hash_form(c) for c in self.pypi_constraints]
        if self.solve_group is not None:
            inputs["solve-group"] = [self.solve_group, self.group_hash]
        if self.kind == "conda":
            inputs |= {
                # Credentials are a secret and a rotating one: never part of a
                # lock's identity (a new token must not make every lock stale).
                "conda": [strip_credentials(c.match_spec()) for c in self.conda_on(platform)],
                "channels": [strip_credentials(c) for c in self.channels],
                "channel-priority": self.channel_priority,
                "virtual-packages": [list(v) for v in self.virtual_packages],
            }
            if pypi and self.pypi_map:
                # Which conda packages stand in for PyPI ones shapes the PyPI half
                # (of this platform: its PyPI packages may come from a target table).
                inputs["pypi-map"] = [list(m) for m in self.pypi_map]
        return inputs

    def input_hash(self, platform: str) -> str:
        """sha256 of :meth:`hash_inputs`; what a lock file records to decide staleness."""
        found = self._input_hashes.get(platform)
        if found is None:
            key = self._hash_key(platform)
            found = self._input_hashes.get(key)
            if found is None:
                inputs = self.hash_inputs(platform)
                canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
                found = self._input_hashes[key] = sha256_hex(canonical.encode())
            self._input_hashes[platform] = found
        return found

    def _hash_key(self, platform: str) -> object:
        """What :meth:`hash_inputs` depends on of ``platform``: platforms alike share a hash.

        Outside its target tables an env reads the same everywhere but for the
        system requirements that apply there, so such platforms (most, and
        every platform of a project without target tables) are hashed once:
        half of the hashing of a two-platform project.
        """
        if platform in dict(self.targets):
            return platform
        from flowenv.system import applicable

        return ("", applicable(self.system_requirements, platform))


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
    """``child`` over ``parent``, target tables aside (:func:`_per_platform` layers those)."""
    return EnvDecl(
        python=child.python or parent.python,
        pypi=_merge_by_name(parent.pypi, child.pypi, _pypi_key),
        conda=_merge_by_name(parent.conda, child.conda, lambda c: (c.name, c.channel or "")),
        channels=child.channels if child.channels is not None else parent.channels,
        platforms=child.platforms if child.platforms is not None else parent.platforms,
        system_requirements=child.system_requirements.over(parent.system_requirements),
        pypi_constraints=_merge_by_name(parent.pypi_constraints, child.pypi_constraints, _pypi_key),
        solve_group=child.solve_group or parent.solve_group,
        inputs=tuple(dict.fromkeys((*parent.inputs, *child.inputs))),
    )


def _pypi_key(package: PypiPackage) -> tuple[str, str, str]:
    return (package.name, package.marker, package.requirement())


def _fold(layers: Iterable[EnvDecl]) -> EnvDecl:
    merged = EnvDecl()
    for layer in layers:
        merged = _merge(merged, layer)
    return merged


def _per_platform(
    layers: list[EnvDecl], common: EnvDecl, platforms: Iterable[str]
) -> tuple[tuple[str, EnvDecl], ...]:
    """Each platform's content where target tables change it.

    Layered in file order, each table followed by its ``target.<platform>``,
    so a step's plain ``torch`` overrides base's linux-only ``torch`` and a
    step's own target table overrides both.
    """
    out = []
    for platform in platforms:
        if not any(layer.target(platform) != NO_TARGET for layer in layers):
            continue
        full = _fold(part for layer in layers for part in (layer, layer.target(platform)))
        content = EnvDecl(
            pypi=full.pypi, conda=full.conda, system_requirements=full.system_requirements
        )
        if (content.pypi, content.conda, content.system_requirements) != (
            common.pypi,
            common.conda,
            common.system_requirements,
        ):
            out.append((platform, content))
    return tuple(out)


def python_key(config: Config, env_name: str) -> tuple[str, ...]:
    """The key that sets ``env_name``'s Python, by the rules of :func:`build_environments`:
    its own table's, else its named env's (for a step), else base's."""
    named = dict(config.envs)
    steps = dict(config.steps)
    if env_name in steps and steps[env_name].has_own_content():
        step = steps[env_name]
        if step.python:
            return ("steps", env_name, "python")
        if step.env and named[step.env].python:
            return ("envs", step.env, "python")
    elif env_name in named and named[env_name].python:
        return ("envs", env_name, "python")
    return ("base", "python")


def build_environments(config: Config) -> Environments:
    """Merge every step over its parent and group steps that share an environment."""
    layers: dict[str, list[EnvDecl]] = {}  # env name -> its tables, least specific first
    step_envs: dict[str, str | None] = {}
    if not config.base.disabled:
        layers[BASE] = [config.base]
    for name, named in config.envs:
        # A named env takes only python from base (see the module doc).
        layers[name] = [attrs.evolve(named, python=named.python or config.base.python)]
    for name, step in config.steps:
        parent_name = step.env or BASE
        if step.disabled or (
            parent_name == BASE and config.base.disabled and not step.has_own_content()
        ):
            step_envs[name] = None
            continue
        if step.has_own_content():
            parent = layers[step.env] if step.env else [config.base]
            layers[name] = [*parent, step]
            step_envs[name] = name
        else:
            step_envs[name] = parent_name
    users: dict[str, list[str]] = {env: [] for env in layers}
    for step_name, env_name in step_envs.items():
        if env_name is not None:
            users[env_name].append(step_name)
    specs: list[EnvSpec] = []
    project = config.project
    # Steps share their parent's layers (the same list objects): fold those
    # once per parent, then merge each step over the result. Folding is left
    # to right, so that is the fold of all of them; at a hundred steps over
    # base it halves the merging.
    parent_folds: dict[tuple[int, ...], EnvDecl] = {}
    memo.SPECS.start()
    for env_name, env_layers in layers.items():
        # Everything _env_spec reads: the env's layers, its users and the three
        # project settings (platforms, conda, pypi). Layers compare by value, so
        # a table read again from a changed input file makes a new key.
        key = (
            env_name,
            tuple(env_layers),
            tuple(users[env_name]),
            project.platforms,
            project.conda,
            project.pypi,
        )
        spec: EnvSpec | None = memo.SPECS.get(key)
        if spec is None:
            parent_key = tuple(map(id, env_layers[:-1]))
            parent_fold = parent_folds.get(parent_key)
            if parent_fold is None:
                parent_fold = parent_folds[parent_key] = _fold(env_layers[:-1])
            spec = _env_spec(env_name, env_layers, parent_fold, users[env_name], project)
            memo.SPECS.put(key, spec)
        specs.append(spec)
    return Environments(
        envs=tuple(sorted(_with_group_hashes(specs), key=lambda e: e.name)),
        step_envs=tuple(sorted(step_envs.items())),
    )


def _env_spec(
    env_name: str,
    env_layers: list[EnvDecl],
    parent_fold: EnvDecl,
    users: list[str],
    project: ProjectSettings,
) -> EnvSpec:
    """The merged environment ``env_name`` (the fold of ``env_layers``, the last over the rest).

    Reads of the project its platforms, conda and pypi settings only
    (build_environments keys its memo by them).
    """
    decl = _merge(parent_fold, env_layers[-1])
    # The loader already rejected every environment without a Python version.
    assert decl.python, env_name
    platforms = decl.platforms if decl.platforms is not None else project.platforms
    return EnvSpec(
        name=env_name,
        python=decl.python,
        pypi=decl.pypi,
        conda=decl.conda,
        channels=decl.channels if decl.channels is not None else project.conda.channels,
        channel_priority=project.conda.channel_priority,
        virtual_packages=project.conda.virtual_packages,
        pypi_map=project.conda.pypi_map,
        pypi_settings=project.pypi,
        steps=tuple(sorted(users)),
        pypi_constraints=decl.pypi_constraints,
        solve_group=decl.solve_group,
        # A target table's files count too: lock --check digests every input.
        inputs=tuple(
            dict.fromkeys(
                (
                    *decl.inputs,
                    *(f for layer in env_layers for _, t in layer.targets for f in t.inputs),
                )
            )
        ),
        platforms=platforms,
        system_requirements=decl.system_requirements,
        targets=_per_platform(env_layers, decl, platforms),
    )


def _with_group_hashes(specs: Sequence[EnvSpec]) -> list[EnvSpec]:
    """Each grouped env with the hash of its whole group's inputs (see EnvSpec.group_hash)."""
    members: dict[str, list[EnvSpec]] = {}
    for spec in specs:
        if spec.solve_group is not None:
            members.setdefault(spec.solve_group, []).append(spec)
    hashes = {group: _group_hash(envs) for group, envs in members.items()}
    return [
        _grouped(spec, hashes[spec.solve_group]) if spec.solve_group else spec for spec in specs
    ]


def _group_hash(members: Sequence[EnvSpec]) -> str:
    """sha256 over every member's inputs on each of its platforms (memoised by the members)."""
    key = ("group", tuple(members))
    found: str | None = memo.SPECS.get(key)
    if found is None:
        found = sha256_hex(
            json.dumps(
                sorted([e.name, {p: e.hash_inputs(p) for p in e.platforms}] for e in members),
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        )
        memo.SPECS.put(key, found)
    return found


def _grouped(spec: EnvSpec, group_hash: str) -> EnvSpec:
    """``spec`` with its group's hash: the same object as last time, input hashes and all."""
    key = ("grouped", spec, group_hash)
    found: EnvSpec | None = memo.SPECS.get(key)
    if found is None:
        found = attrs.evolve(spec, group_hash=group_hash)
        memo.SPECS.put(key, found)
    return found
