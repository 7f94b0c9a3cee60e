"""The PyPI-only examples lock against the public index (``-m network``; off by default)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from flowenv.cli import main
from flowenv.lockfiles.pylock import read_pylock

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


def test_pytorch_example_cpu_on_the_laptop_cuda_on_the_cluster(tmp_path: Path) -> None:
    """Needs PyPI *and* download.pytorch.org (the CPU and CUDA builds come from its indexes)."""
    root = _copy("pytorch", tmp_path)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0
    locks = root / "locks"
    assert sorted(p.relative_to(locks).as_posix() for p in locks.rglob("*.toml")) == [
        "base/pylock.linux-64.toml",
        "base/pylock.osx-arm64.toml",
        "train/pylock.linux-64.toml",
    ]
    laptop = {p.name: p for p in read_pylock(locks / "base/pylock.osx-arm64.toml")}
    cpu = {p.name: p for p in read_pylock(locks / "base/pylock.linux-64.toml")}
    gpu = {p.name: p for p in read_pylock(locks / "train/pylock.linux-64.toml")}
    # The Mac: PyPI's own wheel. Linux CPU steps: the +cpu build and no CUDA wheels.
    assert laptop["torch"].version == "2.4.1"
    assert all(w.url.startswith("https://files.pythonhosted.org/") for w in laptop["torch"].wheels)
    assert cpu["torch"].version == "2.4.1+cpu"
    assert all(w.url.startswith("https://download.pytorch.org/") for w in cpu["torch"].wheels)
    assert not [name for name in cpu if name.startswith("nvidia-")]
    # The cluster: the +cu121 build with its nvidia-* wheels, which (explicit index)
    # come from PyPI like every package not pinned to PyTorch's index.
    assert gpu["torch"].version == "2.4.1+cu121"
    assert all(w.url.startswith("https://download.pytorch.org/") for w in gpu["torch"].wheels)
    nvidia = [name for name in gpu if name.startswith("nvidia-")]
    assert nvidia
    for name in [*nvidia, "numpy"]:
        assert all(w.url.startswith("https://files.pythonhosted.org/") for w in gpu[name].wheels)
    for lock in (cpu, gpu):
        (wheel,) = lock["numpy"].wheels
        assert _tags(wheel.name) == {("cp311", "manylinux", "x86_64")}


def test_pytorch_example_laptop_part_needs_pypi_only(tmp_path: Path) -> None:
    """The part of the example PyPI alone serves: the Mac lock never touches PyTorch's indexes."""
    root = _copy("pytorch", tmp_path)
    assert main(["-q", "-C", str(root), "lock", "base", "-p", "osx-arm64"]) == 0
    laptop = {p.name: p for p in read_pylock(root / "locks/base/pylock.osx-arm64.toml")}
    assert laptop["torch"].version == "2.4.1"
    assert not [name for name in laptop if name.startswith("nvidia-")]
    for package in laptop.values():
        assert all(w.url.startswith("https://files.pythonhosted.org/") for w in package.wheels)
    (wheel,) = laptop["torch"].wheels
    assert _tags(wheel.name) == {("cp311", "macosx", "arm64")}
    assert main(["-q", "-C", str(root), "lock", "--check", "base", "-p", "osx-arm64"]) == 0


def test_glibc_requirement_admits_real_manylinux_2_34_wheels(tmp_path: Path) -> None:
    """cryptography 45.0.5 on PyPI ships manylinux_2_34 wheels beside 2_28 and 2_17 ones."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'platforms = ["linux-64"]\n\n'
        "[base]\n"
        'python = "3.11"\n'
        'pypi.packages = { cryptography = "45.0.5" }\n\n'
        "[steps.modern]\n"
        'system-requirements = { glibc = "2.34" }\n'
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0

    def glibcs(env: str) -> set[str]:
        (package,) = [
            p
            for p in read_pylock(root / f"locks/{env}/pylock.linux-64.toml")
            if p.name == "cryptography"
        ]
        return {
            match.group(1)
            for wheel in package.wheels
            for match in [re.search(r"manylinux_(2_\d+)_x86_64", wheel.name)]
            if match
        }

    assert glibcs("base") == {"2_17", "2_28"}
    assert glibcs("modern") == {"2_17", "2_28", "2_34"}


def test_fractal_hydrates_where_python_3_9_13_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example pins the seeds' 3.9.13: sync stores uv's real CPython build, hydrate uses it.

    Needs GitHub (uv's python-build-standalone downloads) as well as PyPI.
    """
    import json
    import os

    from tests.support.pythons import path_without
    from tests.support.stores import run_flowenv

    monkeypatch.delenv("UV_PYTHON_DOWNLOADS_JSON_URL")  # uv's own list, real builds
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "sync-cache"))
    root = _copy("fractal", tmp_path)
    store = tmp_path / "store"
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert main(["-q", "-C", str(root), "sync", "-p", "linux-64", "--store", str(store)]) == 0
    record = json.loads((store / "interpreters/linux-64/cpython-3.9.13.json").read_text())
    assert record["key"] == "cpython-3.9.13-linux-x86_64-gnu"

    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")} | {
        "FLOWENV_CACHE_DIR": str(tmp_path / "node-cache"),
        "FLOWENV_STORE": str(store),
        "FLOWENV_PROJECT": "fractal",
        "PATH": path_without("3.9.13", os.environ["PATH"]),
        "XDG_DATA_HOME": str(tmp_path / "executor-data"),
    }
    probe = "import sys, matplotlib, pyfracgen; print(*sys.version_info[:3])"
    ran = run_flowenv("run", "plot", "--", "python", "-c", probe, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "3 9 13\n"
