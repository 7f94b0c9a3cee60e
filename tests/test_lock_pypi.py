"""Locking PyPI environments with real uv against the local test index."""

from __future__ import annotations

from pathlib import Path

from flowenv.cli import main
from flowenv.locks.pylock import read_pylock


def test_lock_selects_platform_specific_wheels(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { delta = "0.5" }
        """
    )
    assert main(["-C", str(root), "lock"]) == 0
    linux = {p.name: p for p in read_pylock(root / "locks/base/pylock.linux-64.toml")}
    mac = {p.name: p for p in read_pylock(root / "locks/base/pylock.osx-arm64.toml")}
    assert sorted(linux) == ["alpha", "beta", "delta", "gamma"]
    assert [w.name for w in linux["gamma"].wheels] == ["gamma-1.0-py3-none-manylinux_2_17_x86_64.whl"]
    assert [w.name for w in mac["gamma"].wheels] == ["gamma-1.0-py3-none-macosx_11_0_arm64.whl"]
    assert linux["alpha"].version == "2.0"


def test_relock_unchanged_is_byte_identical_and_resolves_nothing(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = ">=1" }
        """
    )
    assert main(["-C", str(root), "lock"]) == 0
    before = {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")}
    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 0
    out = capsys.readouterr().out
    assert out.split().count("fresh") == 2
    assert {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")} == before


def test_check_reports_stale_and_missing(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "base · linux-64: missing (locks/base/pylock.linux-64.toml)" in err
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "lock", "--check"]) == 0
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    capsys.readouterr()
    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert "base · osx-arm64: stale (locks/base/pylock.osx-arm64.toml)" in capsys.readouterr().err


def test_unsatisfiable_exits_3_and_touches_nothing(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock"]) == 0
    before = {p: p.read_bytes() for p in Path(root, "locks").rglob("*.toml")}
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'beta = "1.5", epsilon = "3.1"'))
    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 3
    err = capsys.readouterr().err
    assert "cannot resolve base · linux-64" in err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in Path(root, "locks").rglob("*.toml")} == before
