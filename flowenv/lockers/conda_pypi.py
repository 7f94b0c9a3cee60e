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
