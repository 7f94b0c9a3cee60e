"""The PyPI-only examples lock against the public index (``-m network``; off by default)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from flowenv.cli import main
from flowenv.locks.pylock import read_pylock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.network


def _copy(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns("locks", ".flowenv"))
    return root


def test_fractal_locks_per_platform_wheels_from_pypi(tmp_path: Path) -> None:
    root = _copy("fractal", tmp_path)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0
    linux = {p.name: p for p in read_pylock(root / "locks/plot/pylock.linux-64.toml")}
    mac = {p.name: p for p in read_pylock(root / "locks/plot/pylock.osx-arm64.toml")}
    assert linux["matplotlib"].version == mac["matplotlib"].version == "3.8.0"
    assert linux["pyfracgen"].version == "0.0.11"
    # One wheel per compiled package, built for the lock's own platform and Python.
    (linux_wheel,) = linux["matplotlib"].wheels
    (mac_wheel,) = mac["matplotlib"].wheels
    assert _tags(linux_wheel.name) == {("cp39", "manylinux", "x86_64")}
    assert _tags(mac_wheel.name) == {("cp39", "macosx", "arm64")}


_PLATFORM_TAG = re.compile(r"^(manylinux|musllinux|macosx)_?[0-9_]*?_(x86_64|aarch64|arm64)$")


def _tags(filename: str) -> set[tuple[str, str, str]]:
    """(interpreter, OS family, CPU) of every tag of a wheel file name."""
    _, _, _, tags = parse_wheel_filename(filename)
    found = set()
    for tag in tags:
        match = _PLATFORM_TAG.match(tag.platform)
        assert match, tag.platform
        found.add((tag.interpreter, match.group(1), match.group(2)))
    return found


def test_relocking_an_example_is_byte_identical(tmp_path: Path) -> None:
    root = _copy("fractal", tmp_path)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    before = {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")}
    assert main(["-q", "-C", str(root), "lock", "--upgrade"]) == 0
    assert {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")} == before


def test_every_platform_of_a_real_stack_agrees_on_versions(tmp_path: Path, capsys) -> None:
    # scikit-learn's unpinned dependencies (scipy, joblib, threadpoolctl) are
    # resolved per platform against PyPI; both platforms must pin the same versions.
    root = _copy("metaflow-loop", tmp_path)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    linux = {p.name: p for p in read_pylock(root / "locks/train/pylock.linux-64.toml")}
    mac = {p.name: p for p in read_pylock(root / "locks/train/pylock.osx-arm64.toml")}
    assert {"scipy", "joblib", "threadpoolctl"} <= set(linux)
    assert {n: p.version for n, p in linux.items()} == {n: p.version for n, p in mac.items()}
    assert _tags(linux["scipy"].wheels[0].name) == {("cp311", "manylinux", "x86_64")}
    assert {_tags(w.name).pop()[1] for w in mac["scipy"].wheels} == {"macosx"}
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert all(env["platform-differences"] == {} for env in described["envs"])
