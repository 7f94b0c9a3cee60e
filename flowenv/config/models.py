"""The configuration models, defined once: what a flowenv.toml means after validation.

Every model is frozen and keyword-only. Package names are normalised
(PEP 503 for PyPI, lower case for conda) and every package collection is a
tuple sorted by name, so equal configurations compare and hash equal.
"""

from __future__ import annotations

from pathlib import Path

import attrs

DEFAULT_LOCK_DIR = "locks"
DEFAULT_STORE = ".flowenv/store"
DEFAULT_CHANNELS: tuple[str, ...] = ("conda-forge",)


@attrs.frozen(kw_only=True)
class PypiPackage:
    """A PyPI requirement: ``name[extras]`` plus a PEP 440 specifier ("" = any version)."""

    name: str
    specifier: str = ""
    extras: tuple[str, ...] = ()
    #: The name of a ``[project.pypi.indexes]`` entry this package comes from, and
    #: only from (uv's explicit index); None = the default and extra indexes.
    index: str | None = None

    def requirement(self) -> str:
        """The PEP 508 line handed to the resolver."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras}{self.specifier}"


@attrs.frozen(kw_only=True)
class CondaPackage:
    """A conda requirement: optional ``channel::``, name and a conda version spec ("" = any)."""

    name: str
    spec: str = ""
    channel: str | None = None

    def match_spec(self) -> str:
        """The conda match spec string handed to the solver."""
        prefix = f"{self.channel}::" if self.channel else ""
        return f"{prefix}{self.name} {self.spec}".strip()


@attrs.frozen(kw_only=True)
class PypiSettings:
    """Where PyPI packages come from. Credentials never live here (env, netrc, keyring)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Named indexes (name -> URL) that serve only the packages pinned to them.
    indexes: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class CondaSettings:
    """Where conda packages come from, and how channels are prioritised."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    channel_priority: str = "strict"
    virtual_packages: tuple[tuple[str, str], ...] = ()
    #: conda name -> PyPI name over the built-in table; "" = "not a PyPI distribution".
    pypi_map: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class ProjectSettings:
    """The ``[project]`` table."""

    name: str
    platforms: tuple[str, ...]
    lock_dir: str = DEFAULT_LOCK_DIR
    store: str = DEFAULT_STORE
    store_options: tuple[tuple[str, object], ...] = ()
    pypi: PypiSettings = PypiSettings()
    conda: CondaSettings = CondaSettings()


@attrs.frozen(kw_only=True)
class SystemRequirements:
    """What the machine an env runs on must offer (pixi's ``[system-requirements]``).

    Versions as declared ("12", "2.28", "13.0"); None = not said here.
    """

    cuda: str | None = None
    glibc: str | None = None
    macos: str | None = None

    def items(self) -> tuple[tuple[str, str], ...]:
        """The requirements that are set, as (name, version) pairs in a stable order."""
        pairs = (("cuda", self.cuda), ("glibc", self.glibc), ("macos", self.macos))
        return tuple((name, value) for name, value in pairs if value is not None)

    def over(self, parent: SystemRequirements) -> SystemRequirements:
        """These requirements merged over ``parent``'s: each one said here wins."""
        return SystemRequirements(
            cuda=self.cuda or parent.cuda,
            glibc=self.glibc or parent.glibc,
            macos=self.macos or parent.macos,
        )


@attrs.frozen(kw_only=True)
class EnvDecl:
    """What one ``[base]``, ``[steps.NAME]`` or ``[envs.NAME]`` table declares, unmerged.

    ``None`` means "not said here" so that merging can tell an omission from a value.
    """

    python: str | None = None
    pypi: tuple[PypiPackage, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    channels: tuple[str, ...] | None = None
    disabled: bool = False
    env: str | None = None
    #: The subset of project.platforms this env is locked for (None = all of them).
    platforms: tuple[str, ...] | None = None
    system_requirements: SystemRequirements = SystemRequirements()
    #: ``target.<platform>`` tables: packages and requirements for one platform only
    #: (only ``pypi``, ``conda`` and ``system_requirements`` are set in them).
    targets: tuple[tuple[str, EnvDecl], ...] = ()

    def has_own_content(self) -> bool:
        """Whether this table changes anything over the environment it builds on."""
        return bool(
            self.python
            or self.pypi
            or self.conda
            or self.channels is not None
            or self.platforms is not None
            or self.system_requirements.items()
            or self.targets
        )

    def target(self, platform: str) -> EnvDecl:
        """The ``target.<platform>`` table (empty when there is none)."""
        return dict(self.targets).get(platform, EnvDecl())


@attrs.frozen(kw_only=True)
class Config:
    """A whole, validated flowenv configuration and where it came from."""

    path: Path
    root: Path
    project: ProjectSettings
    base: EnvDecl = EnvDecl()
    steps: tuple[tuple[str, EnvDecl], ...] = ()
    envs: tuple[tuple[str, EnvDecl], ...] = ()
    #: "tool.flowenv." when read from pyproject.toml, "" from flowenv.toml.
    key_prefix: str = ""

    @property
    def lock_root(self) -> Path:
        return self.root / self.project.lock_dir

    def step(self, name: str) -> EnvDecl:
        return dict(self.steps)[name]

    def named_env(self, name: str) -> EnvDecl:
        return dict(self.envs)[name]
