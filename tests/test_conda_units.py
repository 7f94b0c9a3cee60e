"""The pure parts of conda locking: virtual packages, Python specs, wheel choice, the writer."""

from __future__ import annotations

from pathlib import Path

from flowenv.lockfiles.condalock import (
    CondaLock,
    LockedCondaPackage,
    parse_conda_lock,
    render_conda_lock,
)
from flowenv.lockfiles.layout import recorded_input_hash
from flowenv.lockfiles.pylock import LockedWheel
from flowenv.resolution.conda import best_wheel, python_spec, virtual_packages
from tests.support.conda_channel import conda_lock_parse


def test_default_virtual_packages_per_platform() -> None:
    assert virtual_packages("linux-64", ()) == (
        ("__archspec", "1", "x86_64"),
        ("__glibc", "2.28", "0"),
        ("__linux", "5.10", "0"),
        ("__unix", "0", "0"),
    )
    assert virtual_packages("osx-arm64", ()) == (
        ("__archspec", "1", "arm64"),
        ("__osx", "11.0", "0"),
        ("__unix", "0", "0"),
    )
    assert virtual_packages("win-64", ()) == (("__archspec", "1", "x86_64"), ("__win", "0", "0"))


def test_virtual_package_overrides_apply_only_where_they_exist() -> None:
    overrides = (
        ("__cuda", "12.2"),
        ("__glibc", "2.17"),
        ("__osx", "13.0"),
        ("__archspec", "1=zen4"),
    )
    assert virtual_packages("linux-64", overrides) == (
        ("__archspec", "1", "zen4"),
        ("__cuda", "12.2", "0"),
        ("__glibc", "2.17", "0"),
        ("__linux", "5.10", "0"),
        ("__unix", "0", "0"),
    )
    assert virtual_packages("osx-arm64", overrides) == (
        ("__archspec", "1", "zen4"),
        ("__osx", "13.0", "0"),
        ("__unix", "0", "0"),
    )


def test_python_spec_pins_patch_only_when_given() -> None:
    assert python_spec("3.11") == "python 3.11.*"
    assert python_spec("3.9.13") == "python ==3.9.13"


def _wheel(name: str) -> LockedWheel:
    return LockedWheel(name=name, url=f"https://files.example/{name}", sha256="0" * 64)


def test_best_wheel_ranks_by_the_target_platforms_tags() -> None:
    wheels = [
        _wheel("pkg-1.0-py3-none-any.whl"),
        _wheel("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        _wheel("pkg-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        _wheel("pkg-1.0-cp310-cp310-manylinux_2_17_x86_64.whl"),
    ]
    assert best_wheel(wheels, "linux-64", "3.11.7") == wheels[1]
    assert best_wheel(wheels, "osx-arm64", "3.11.7") == wheels[2]
    assert best_wheel(wheels, "win-64", "3.11.7") == wheels[0]
    assert best_wheel([wheels[3]], "linux-64", "3.11.7") is None


def _lock() -> CondaLock:
    return CondaLock(
        platforms=("linux-64",),
        channels=("https://conda.anaconda.org/conda-forge",),
        content_hash=(("linux-64", "c" * 64),),
        # All digits: YAML quotes it, and the layout regex must still read it.
        custom_metadata=(("flowenv-input-hash-linux-64", "1" * 64),),
        packages=(
            LockedCondaPackage(
                name="tzdata",
                version="2024a",
                manager="conda",
                platform="linux-64",
                url="https://conda.anaconda.org/conda-forge/noarch/tzdata-2024a-h0c530f3_0.conda",
                sha256="a" * 64,
                md5="b" * 32,
            ),
            LockedCondaPackage(
                name="attrs",
                version="23.2.0",
                manager="pip",
                platform="linux-64",
                url="https://files.example/attrs-23.2.0-py3-none-any.whl",
                sha256="d" * 64,
            ),
            LockedCondaPackage(
                name="python",
                version="3.11.7",
                manager="conda",
                platform="linux-64",
                url="https://conda.anaconda.org/conda-forge/linux-64/python-3.11.7-h0_0.conda",
                sha256="e" * 64,
                md5="f" * 32,
                dependencies=(("__glibc", ">=2.17,<3.0.a0"), ("tzdata", "")),
            ),
        ),
        sources=("../../flowenv.toml",),
    )


def test_writer_is_read_back_by_flowenv_conda_lock_and_the_layout_regex(tmp_path: Path) -> None:
    text = render_conda_lock(_lock())
    assert text == render_conda_lock(_lock())
    parsed = parse_conda_lock(text)
    assert parsed.packages == tuple(sorted(_lock().packages, key=lambda p: (p.manager, p.name)))
    assert parsed.custom_metadata == _lock().custom_metadata
    assert parsed.sources == ("../../flowenv.toml",)
    path = tmp_path / "conda-lock.yml"
    path.write_text(text)
    assert recorded_input_hash(path, "linux-64") == "1" * 64
    assert [(m, n) for _, m, n, *_ in conda_lock_parse(path)] == [
        ("conda", "python"),
        ("conda", "tzdata"),
        ("pip", "attrs"),
    ]


def test_writer_layout_is_stable() -> None:
    text = render_conda_lock(_lock())
    assert text.splitlines()[2:22] == [
        "version: 1",
        "metadata:",
        "  content_hash:",
        f"    linux-64: '{'c' * 64}'",
        "  channels:",
        "  - url: https://conda.anaconda.org/conda-forge",
        "    used_env_vars: []",
        "  platforms:",
        "  - linux-64",
        "  sources:",
        "  - '../../flowenv.toml'",
        "  custom_metadata:",
        f"    flowenv-input-hash-linux-64: '{'1' * 64}'",
        "package:",
        "- name: python",
        "  version: '3.11.7'",
        "  manager: conda",
        "  platform: linux-64",
        "  dependencies:",
        "    __glibc: '>=2.17,<3.0.a0'",
    ]
