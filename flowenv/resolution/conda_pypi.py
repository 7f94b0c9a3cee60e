"""Which conda packages of a mixed env are PyPI distributions, and under which PyPI name.

A conda package stands in for a PyPI distribution only when it *is* one.
That is decided from its record, never from its name alone:

* it is ``noarch: python``, or it depends on ``python`` or ``python_abi``
  (a compiled extension built for one Python): it installs into
  ``site-packages``;
* its PyPI name is a valid distribution name: the built-in table below (facts
  about where the two ecosystems spell a project differently), overridden by
  ``[project.conda] pypi-map``, else its own name, PEP 503-normalised;
* its version is a PEP 440 version as written (uv could pin nothing else;
  ``2024a`` is no PEP 440 version, though packaging would read it as ``2024a0``).

So conda-forge's ``tzdata`` (IANA data, ``noarch: generic``, version
``2024a``) is not PyPI's ``tzdata``, and ``_libgcc_mutex`` never reaches uv.
A ``pypi-map`` value of ``false`` says a package is no PyPI distribution
whatever its record says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import attrs

#: conda-forge name -> PyPI name, where they differ (facts, kept short; extend with pypi-map).
BUILTIN_PYPI_NAMES: Mapping[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "pyqt": "pyqt5",
    "tensorflow-base": "tensorflow",
    "ruamel_yaml": "ruamel-yaml",
    "typing_extensions": "typing-extensions",
}

#: Dependencies that mark a conda package as built for (and installed into) a Python.
_PYTHON_MARKERS = frozenset({"python", "python_abi", "pypy"})
_SEPARATORS = re.compile(r"[-_.]+")
_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@attrs.frozen(kw_only=True)
class CondaRecord:
    """The facts of a solved conda package the decision needs."""

    name: str
    version: str
    depends: tuple[str, ...] = ()
    #: ``"python"``, ``"generic"`` or None (arch-specific).
    noarch: str | None = None


def _normalize(name: str) -> str:
    return _SEPARATORS.sub("-", name).lower()


def pypi_name(record: CondaRecord, overrides: Mapping[str, str]) -> str | None:
    """The PyPI distribution ``record`` is, or None when it is none (see the module doc)."""
    name = record.name.lower()
    if name == "python":
        return None
    override = overrides.get(name)
    if override == "":
        return None
    depended = {d.strip().split(" ", 1)[0].lower() for d in record.depends}
    if record.noarch != "python" and not depended & _PYTHON_MARKERS:
        return None
    mapped = override or BUILTIN_PYPI_NAMES.get(name, name)
    return _normalize(mapped) if _PYPI_NAME.match(mapped) else None


def provided_distributions(
    records: Iterable[CondaRecord], overrides: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """PyPI name -> version of every distribution the conda side of a mixed env installs."""
    from packaging.version import InvalidVersion, Version

    table = dict(overrides)
    out: dict[str, str] = {}
    for record in records:
        name = pypi_name(record, table)
        if name is None:
            continue
        try:
            version = str(Version(record.version))
        except InvalidVersion:
            continue
        # packaging reads conda's "2024a" as 2024a0: only a version that is
        # already PEP 440 as conda writes it has a PyPI twin to pin.
        if version == record.version.lower():
            out[name] = version
    return out


#: A release-only version ("1.26.4"): ordered alike by PEP 440 and by conda.
_RELEASE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def conda_version_spec(specifier: str) -> str | None:
    """A PEP 440 specifier set as a conda version spec, or None when it does not translate cleanly.

    Only release-only versions translate (``1.26.4``, ``2``): PEP 440 and conda
    order pre-, post- and dev-releases and epochs differently. ``===`` never
    translates. ``""`` (any version) is ``""``.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specifiers = sorted(SpecifierSet(specifier), key=str)
    except InvalidSpecifier:
        return None
    parts = []
    for spec in specifiers:
        operator, version = spec.operator, spec.version
        release = version.removesuffix(".*")
        if operator == "===" or not _RELEASE.match(release):
            return None
        if version.endswith(".*"):
            # Only == and != take a wildcard (packaging enforces it).
            parts.append(f"{release}.*" if operator == "==" else f"!={release}.*")
        elif operator == "~=":
            # ~=1.4.2 is >=1.4.2 and 1.4.*; packaging guarantees two release parts or more.
            parts += [f">={release}", f"{release.rpartition('.')[0]}.*"]
        else:
            parts.append(f"{operator}{release}")
    return ",".join(parts)


@attrs.frozen(kw_only=True)
class PypiBound:
    """A PyPI requirement's bound on one distribution: its name and PEP 440 specifier set."""

    name: str
    specifier: str


def conda_constraints(
    records: Iterable[CondaRecord],
    bounds: Iterable[PypiBound],
    overrides: Iterable[tuple[str, str]],
) -> list[str]:
    """Conda constraints that move a solution to versions the PyPI ``bounds`` allow.

    For each record of the solution that *is* a PyPI distribution (see the
    module doc) at a version some bound on that distribution excludes, the
    bound as a conda match spec on the record's conda name (``numpy <2``),
    when it translates cleanly (:func:`conda_version_spec`). Bounds on
    distributions the solution does not hold, or already satisfied, add
    nothing; so a constraint never lands on a conda package that is not the
    distribution it bounds (conda-forge's ``tzdata``).
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    table = dict(overrides)
    by_name: dict[str, list[str]] = {}
    for bound in bounds:
        if bound.specifier:
            by_name.setdefault(_normalize(bound.name), []).append(bound.specifier)
    out: list[str] = []
    for record in records:
        name = pypi_name(record, table)
        version = provided_distributions([record], overrides=table.items()).get(name or "")
        if name is None or version is None:
            continue
        for text in by_name.get(name, ()):
            try:
                allowed = SpecifierSet(text).contains(version, prereleases=True)
            except InvalidSpecifier:
                continue
            translated = conda_version_spec(text)
            if not allowed and translated:
                out.append(f"{record.name} {translated}")
    return sorted(set(out))


def identity(
    manager: str,
    name: str,
    version: str,
    depends: Iterable[str],
    overrides: Mapping[str, str],
) -> str:
    """The name under which a locked package meets packages of other envs and ecosystems.

    A PyPI distribution (a pip package, or a conda package that is one: see
    the module doc) is its normalised PyPI name; any other conda package is
    ``NAME (conda)``, so conda-forge's ``tzdata`` never meets PyPI's.
    """
    if manager == "pip":
        return _normalize(name)
    record = CondaRecord(name=name, version=version, depends=tuple(depends))
    provided = provided_distributions([record], overrides.items())
    return next(iter(provided), f"{name} (conda)")


def same_version(version: str) -> str:
    """What two spellings of one PEP 440 version share (``1.26`` and ``1.26.0``: ``1.26``).

    conda's ``1.26.4`` and PyPI's ``1.26.4`` are one version; a text that is
    no PEP 440 version as written (conda's ``2024a``, which packaging would
    read as ``2024a0``) is only itself.
    """
    from packaging.utils import canonicalize_version
    from packaging.version import InvalidVersion, Version

    try:
        if str(Version(version)) != version.lower():
            return version
    except InvalidVersion:
        return version
    return canonicalize_version(version, strip_trailing_zero=True)
