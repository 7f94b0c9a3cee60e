"""The flowenv.toml keys that name input files, validated and read into :class:`EnvInputs`.

In any ``[base]``, ``[steps.NAME]`` or ``[envs.NAME]`` table::

    pypi.requirements = ["requirements.txt"]          # a path or an array of paths
    pypi.pyproject = { path = ".", extras = ["gpu"], groups = ["dev"] }   # or a path
    conda.environment-file = "environment.yml"

Paths are relative to the directory of the configuration file. Files are
read in the order environment-file, requirements, pyproject; the table's own
``packages`` then win over any file's entry for the same package name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from flowenv.config.locate import KeyPath
from flowenv.config.models import CondaPackage, EnvDecl, PypiPackage
from flowenv.errors import Diagnostic
from flowenv.inputs import EnvInputs, InputFileError

if TYPE_CHECKING:
    from flowenv.config.load import MissingSource

T = TypeVar("T")

PYPI_INPUT_KEYS = ("requirements", "pyproject")
CONDA_INPUT_KEYS = ("environment-file",)
PYPROJECT_KEYS = ("path", "extras", "groups")
LOCAL_PACKAGE_KEYS = ("path", "git", "rev", "subdirectory")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: Transports a git package may come from. Not ``ext::`` (runs a command) nor
#: scp-like ``host:path`` (not a URL PEP 508 can carry); no option-like ``-``.
_GIT_URL = re.compile(r"^(https|http|ssh|git|file)://[^\s#@]*(@[^\s#@/]+(/[^\s#@]*)?)?$")
_SUBDIRECTORY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class Validator(Protocol):
    """What this module needs of the configuration loader's validator."""

    file: str
    root: Path
    lock_root: Path | None
    missing_source: MissingSource | None
    diagnostics: list[Diagnostic]

    def error(self, path: KeyPath, message: str) -> None: ...

    def table(self, value: object, path: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any]: ...

    def string(self, table: Mapping[str, Any], key: str, path: KeyPath) -> str | None: ...

    def string_list(
        self, table: Mapping[str, Any], key: str, path: KeyPath
    ) -> tuple[str, ...] | None: ...


def _display(v: Validator, relative: str) -> str:
    return str(Path(v.file).parent / relative)


def _paths(v: Validator, table: Mapping[str, Any], key: str, path: KeyPath) -> tuple[str, ...]:
    """A path or an array of paths."""
    if isinstance(table.get(key), str):
        value = v.string(table, key, path)
        return (value,) if value else ()
    return v.string_list(table, key, path) or ()


def read_declared(
    v: Validator,
    pypi_table: Mapping[str, Any],
    conda_table: Mapping[str, Any],
    path: KeyPath,
    python: str | None,
) -> EnvInputs:
    """Read every input file the env table at ``path`` names; problems go to ``v``."""
    pypi_path: KeyPath = (*path, "pypi")
    conda_path: KeyPath = (*path, "conda")
    pypi: list[PypiPackage] = []
    constraints: list[PypiPackage] = []
    conda: tuple[CondaPackage, ...] = ()
    channels: tuple[str, ...] | None = None
    files: list[str] = []
    file_python: str | None = None

    environment = v.string(conda_table, "environment-file", conda_path)
    if environment:
        from flowenv.inputs.environment_yml import read_environment_yml

        try:
            env_file = read_environment_yml(
                v.root / environment,
                _display(v, environment),
                v.root,
                declared_python=python,
            )
        except InputFileError as exc:
            v.diagnostics.extend(exc.diagnostics)
        else:
            conda, channels, file_python = env_file.conda, env_file.channels, env_file.python
            pypi += env_file.pip.packages
            constraints += env_file.pip.constraints
            files += env_file.pip.files

    requirements = _paths(v, pypi_table, "requirements", pypi_path)
    if requirements:
        from flowenv.inputs.requirements import read_requirements

        try:
            read = read_requirements(((v.root / r, _display(v, r)) for r in requirements), v.root)
        except InputFileError as exc:
            v.diagnostics.extend(exc.diagnostics)
        else:
            pypi += read.packages
            constraints += read.constraints
            files += read.files

    if "pyproject" in pypi_table:
        project = _pyproject_inputs(v, pypi_table["pyproject"], (*pypi_path, "pyproject"))
        if project is not None:
            pypi += project.packages
            constraints += project.constraints
            files += project.files
    return EnvInputs(
        python=file_python,
        pypi=tuple(pypi),
        constraints=tuple(constraints),
        conda=conda,
        channels=channels,
        files=tuple(dict.fromkeys(files)),
    )


def _pyproject_inputs(v: Validator, raw: object, path: KeyPath) -> Any:
    from flowenv.inputs.pyproject import pyproject_file, read_pyproject

    if isinstance(raw, str):
        table: dict[str, Any] = {"path": raw}
    else:
        table = v.table(raw, path, PYPROJECT_KEYS)
        if not table.get("path") and isinstance(raw, dict):
            table = {**table, "path": "."}
    where = v.string(table, "path", path) if "path" in table else None
    if not where:
        return None
    extras = v.string_list(table, "extras", path) or ()
    groups = v.string_list(table, "groups", path) or ()
    file = pyproject_file(v.root / where)
    relative = Path(where) / "pyproject.toml" if file != v.root / where else Path(where)
    try:
        return read_pyproject(file, _display(v, relative.as_posix()), v.root, extras, groups)
    except InputFileError as exc:
        v.diagnostics.extend(exc.diagnostics)
        return None


def local_package(
    v: Validator, name: str, extras: tuple[str, ...], spec: object, path: KeyPath
) -> PypiPackage | None:
    """``name = { path = "libs/mylib" }``: a package built from the project's own source.

    Or ``{ git = "URL", rev = "COMMIT" }``: a package built from a git commit
    (a full commit id only: a branch or tag can move, and the lock must not).
    """
    from flowenv.inputs.local import LocalPackageError, source_hash

    table = v.table(spec, path, LOCAL_PACKAGE_KEYS)
    if "git" in table:
        return _git_package(v, name, extras, table, path)
    where = v.string(table, "path", path)
    if not where:
        if "path" not in table:
            v.error(
                path,
                'expected a version string, a local package { path = "DIR" } or '
                '{ git = "URL", rev = "COMMIT" }',
            )
        return None
    for key in ("rev", "subdirectory"):
        if key in table:
            v.error((*path, key), f"'{key}' goes with 'git', not with 'path'")
    directory = (v.root / where).resolve()
    try:
        relative = directory.relative_to(v.root.resolve()).as_posix()
    except ValueError:
        v.error((*path, "path"), f"'{where}' is outside the project ({v.root})")
        return None
    try:
        digest = source_hash(directory, v.lock_root)
    except LocalPackageError as exc:
        recorded = None
        if v.missing_source is not None and not directory.exists():
            recorded = v.missing_source(v.root, v.lock_root, relative)
        if recorded is None:
            v.error((*path, "path"), f"'{where}': {exc}")
            return None
        digest = recorded
    return PypiPackage(name=name, extras=extras, path=relative, source_hash=digest)


def with_inputs(decl: EnvDecl, inputs: EnvInputs) -> EnvDecl:
    """``decl`` with what its input files declare; the table's own packages win by name."""
    own_pypi = {p.name for p in decl.pypi}
    own_conda = {c.name for c in decl.conda}
    # Files that include one another often pin one package alike: keep one copy.
    pypi = list(dict.fromkeys(p for p in inputs.pypi if p.name not in own_pypi)) + list(decl.pypi)
    conda = [c for c in inputs.conda if c.name not in own_conda] + list(decl.conda)
    return attrs.evolve(
        decl,
        python=decl.python or inputs.python,
        pypi=tuple(sorted(pypi, key=pypi_sort_key)),
        conda=tuple(sorted(conda, key=lambda c: (c.name, c.channel or ""))),
        channels=decl.channels if decl.channels is not None else inputs.channels,
        pypi_constraints=tuple(sorted(dict.fromkeys(inputs.constraints), key=pypi_sort_key)),
        inputs=inputs.files,
    )


def pypi_sort_key(package: PypiPackage) -> tuple[str, str, str]:
    """Packages of one name may differ by marker (``numpy<2 ; python_version < "3.9"``)."""
    return (package.name, package.marker, package.requirement())


def _git_package(
    v: Validator, name: str, extras: tuple[str, ...], table: Mapping[str, Any], path: KeyPath
) -> PypiPackage | None:
    url = v.string(table, "git", path)
    rev = v.string(table, "rev", path)
    subdirectory = v.string(table, "subdirectory", path)
    if "path" in table:
        v.error((*path, "path"), "a package comes from 'path' or from 'git', not both")
        return None
    if rev is None or not _COMMIT.match(rev):
        v.error(
            (*path, "rev"),
            "expected the full 40-character commit id the package is built from "
            f"(got {rev!r}): a branch or tag can move, a locked env must not",
        )
        return None
    if not url:
        return None
    if not _GIT_URL.match(url):
        v.error(
            (*path, "git"),
            f"expected an https://, http://, ssh://, git:// or file:// repository URL "
            f"without spaces or '#' (got {url!r})",
        )
        return None
    if subdirectory is not None and (
        not _SUBDIRECTORY.match(subdirectory) or ".." in subdirectory.split("/")
    ):
        v.error(
            (*path, "subdirectory"),
            f"expected a relative path inside the repository, '/'-separated, of letters, "
            f"digits, '.', '_' and '-', without '..' (got {subdirectory!r})",
        )
        return None
    fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
    return PypiPackage(name=name, extras=extras, url=f"git+{url}@{rev}{fragment}")
