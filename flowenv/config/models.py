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
    #: A PEP 508 environment marker ("" = every environment), as packaging prints it.
    marker: str = ""
    #: A direct reference (``name @ URL``), as written in a requirements file.
    url: str = ""
    #: A local package: its directory, relative to the project root (POSIX form).
    path: str = ""
    #: sha256 over a local package's source files (see flowenv.inputs.local).
    source_hash: str = ""
    #: The name of a ``[project.pypi.indexes]`` entry this package comes from, and
    #: only from (uv's explicit index); None = the default and extra indexes.
    index: str | None = None

    def requirement(self, root: Path | None = None) -> str:
        """The PEP 508 line handed to the resolver (``root`` locates a local package)."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        if self.path:
            base = root if root is not None else Path()
            line = f"{self.name}{extras} @ {(base / self.path).resolve().as_uri()}"
        elif self.url:
            line = f"{self.name}{extras} @ {self.url}"
        else:
            line = f"{self.name}{extras}{self.specifier}"
        if self.marker:
            # A space before ';' keeps a URL's last character apart from the marker.
            line += f" ; {self.marker}"
        return line

    def hash_form(self) -> str:
        """What the input hash records: the requirement, a local package by path and content.

        Never an absolute path, so that every checkout of the project hashes alike.
        """
        if not self.path:
            return self.requirement()
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name} @ {self.path}#sha256={self.source_hash}{marker}"


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


@attrs.frozen(kw_only=True, cache_hash=True)
class PypiSettings:
    """Where PyPI packages come from. Credentials never live here (env, netrc, keyring)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Named indexes (name -> URL) that serve only the packages pinned to them.
    indexes: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True, cache_hash=True)
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


# cache_hash: an EnvDecl (and the two settings beside it) is part of the key of every
# env in the configuration memo (flowenv.config.memo), looked up on every load; the
# fields are all immutable, so the hash never goes stale.
@attrs.frozen(kw_only=True, cache_hash=True)
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
    #: ``-c`` constraints from requirements files: they bound versions, install nothing.
    pypi_constraints: tuple[PypiPackage, ...] = ()
    #: The solve group this table's environment belongs to (see flowenv.solve_groups).
    solve_group: str | None = None
    #: Input files read into this table (requirements, environment.yml, pyproject), as written.
    inputs: tuple[str, ...] = ()
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
            or self.pypi_constraints
            or self.inputs
            or self.platforms is not None
            or self.system_requirements.items()
            or self.targets
        )

    def target(self, platform: str) -> EnvDecl:
        """The ``target.<platform>`` table (empty when there is none)."""
        for name, table in reversed(self.targets):  # as dict(): the last one wins
            if name == platform:
                return table
        return NO_TARGET


#: The empty declaration: what :meth:`EnvDecl.target` gives for a platform with no table.
#: Shared (it is frozen): building every env asks once per layer and platform.
NO_TARGET = EnvDecl()


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
