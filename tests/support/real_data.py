"""Real ecosystem data (see tests/data/real/NOTICE.rst): conda-forge records and lock files.

The records are real (name, version, build, build number, depends,
constrains, noarch, license); :func:`real_channel` rebuilds them into a
``file://`` channel whose archives hold only metadata, so rattler solves
exactly what conda-forge's solver would see for these packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.conda_channel import CondaSpec, build_channel

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
#: Every real conda-lock v1 file of the corpus.
CONDA_LOCK_FILES: tuple[Path, ...] = (
    *sorted((REAL / "conda-lock").glob("*.yml")),
    *sorted((REAL / "rattler" / "conda-lock").glob("*.yml")),
)
#: conda-forge linux-64 records of a Python 3.11 solution (with _libgcc_mutex, _openmp_mutex).
LINUX_LOCK = REAL / "rattler" / "conda-lock" / "python-conda-lock.yml"
#: conda-forge osx-arm64 and noarch records (python 3.11.9, numpy 1.26.4, tzdata 2024a, ...).
CONDA_META = REAL / "rattler" / "conda-meta"


def _from_conda_meta(path: Path) -> CondaSpec:
    record = json.loads(path.read_text())
    return CondaSpec(
        name=record["name"],
        version=record["version"],
        subdir=record["subdir"],
        depends=tuple(record.get("depends", ())),
        constrains=tuple(record.get("constrains", ())),
        build_number=record["build_number"],
        build_string=record["build"],
        noarch=record.get("noarch"),
        license=record.get("license", ""),
    )


def _from_lock_entry(entry: dict[str, object]) -> CondaSpec:
    """A record as a conda-lock v1 entry states it (URL -> subdir and build)."""
    url = str(entry["url"])
    subdir = url.rsplit("/", 2)[-2]
    stem = url.rsplit("/", 1)[-1].removesuffix(".conda").removesuffix(".tar.bz2")
    build = stem.rsplit("-", 1)[-1]
    number = build.rsplit("_", 1)[-1]
    dependencies = dict(entry.get("dependencies") or {})  # type: ignore[call-overload]
    depends = tuple(f"{name} {spec}".strip() for name, spec in sorted(dependencies.items()))
    noarch = None
    if subdir == "noarch":
        # conda-lock v1 does not record noarch's kind: a noarch package that needs
        # python is a noarch: python one on conda-forge (pip, setuptools, wheel here).
        noarch = "python" if "python" in dependencies else "generic"
    return CondaSpec(
        name=str(entry["name"]),
        version=str(entry["version"]),
        subdir=subdir,
        depends=depends,
        build_number=int(number) if number.isdigit() else 0,
        build_string=build,
        noarch=noarch,
    )


def linux_records() -> tuple[CondaSpec, ...]:
    import yaml

    data = yaml.safe_load(LINUX_LOCK.read_text())
    return tuple(
        _from_lock_entry(p)
        for p in data["package"]
        if p["platform"] == "linux-64" and p["manager"] == "conda"
    )


def osx_arm64_records() -> tuple[CondaSpec, ...]:
    return tuple(_from_conda_meta(p) for p in sorted(CONDA_META.glob("*.json")))


@pytest.fixture(scope="session")
def real_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A channel of real conda-forge records: linux-64 Python 3.11.0 and osx-arm64 3.11.9 stacks."""
    return build_channel(
        (*linux_records(), *osx_arm64_records()), tmp_path_factory.mktemp("real-forge")
    )
