"""Locking PyPI environments with real uv against the local test index."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from flowenv.cli import is_interactive, main
from flowenv.config.load import load_config
from flowenv.engines.uv import uv_binary
from flowenv.lock import lock
from flowenv.lockfiles.pylock import read_pylock
from tests.support.wheels import WheelSpec


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
    assert [w.name for w in linux["gamma"].wheels] == [
        "gamma-1.0-py3-none-manylinux_2_17_x86_64.whl"
    ]
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


def test_every_failed_resolution_is_reported_in_a_stable_order(make_project, capsys) -> None:
    # Two jobs fail in parallel and finish in any order; the report must not, and a
    # failed lead platform does not hide its followers' failures.
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { beta = "1.5", epsilon = "3.1" }

        [steps.train]
        pypi.packages = { alpha = "9.9" }
        """
    )
    assert main(["-C", str(root), "lock", "-j", "4"]) == 3
    err = capsys.readouterr().err
    headers = [line for line in err.splitlines() if line.startswith("cannot resolve")]
    assert headers == [
        "cannot resolve base · linux-64:",
        "cannot resolve base · osx-arm64:",
        "cannot resolve train · linux-64:",
        "cannot resolve train · osx-arm64:",
    ]
    assert not (root / "locks").exists()


# -- installing a lock -----------------------------------------------------------


def _uv(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # --no-config: the developer's uv.toml must not change what the test sees.
    return subprocess.run(
        [uv_binary(), *map(str, args), "--no-config", "--offline", "--color", "never"],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_lock_installs_offline_into_a_fresh_venv(make_project, tmp_path: Path) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { delta = "0.5" }
        """
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    venv = tmp_path / "venv"
    created = _uv("venv", "--python", sys.executable, venv)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    # uv 0.13 reads PEP 751 files with `pip sync` (and `pip install -r`) as a preview feature.
    synced = _uv(
        "pip",
        "sync",
        "--preview-features",
        "pylock",
        "--python",
        python,
        root / "locks/base/pylock.linux-64.toml",
    )
    assert synced.returncode == 0, synced.stderr
    imported = subprocess.run(
        [
            python,
            "-c",
            "import alpha, beta, gamma, delta\n"
            "print(alpha.VERSION, beta.VERSION, gamma.TAG, delta.VERSION)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout == "2.0 1.5 py3-none-manylinux_2_17_x86_64 0.5\n"
    # The environments marker makes an installer refuse a lock made for another platform.
    refused = _uv(
        "pip",
        "sync",
        "--preview-features",
        "pylock",
        "--python",
        python,
        root / "locks/base/pylock.osx-arm64.toml",
    )
    assert refused.returncode == 2
    assert "error: The target environment is not supported by the lockfile" in refused.stderr


# -- what gets resolved -------------------------------------------------------------


def test_identical_specs_are_resolved_once(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }

        [steps.train]
        pypi.packages = { beta = "1.0" }

        [steps.score]
        pypi.packages = { beta = "1.0" }
        """
    )
    planned: list[int] = []
    resolved: list[str] = []
    results = lock(
        load_config(root / "flowenv.toml"), on_plan=planned.append, on_resolved=resolved.append
    )
    # One job per distinct spec, all its platforms (the lead first, see test_lock_platforms).
    assert planned == [2]
    assert sorted(resolved) == ["base · linux-64, osx-arm64", "score, train · linux-64, osx-arm64"]
    assert [(r.target.label, r.status) for r in results] == [
        ("base · linux-64", "written"),
        ("base · osx-arm64", "written"),
        ("score · linux-64", "written"),
        ("score · osx-arm64", "written"),
        ("train · linux-64", "written"),
        ("train · osx-arm64", "written"),
    ]
    for platform in ("linux-64", "osx-arm64"):
        name = f"pylock.{platform}.toml"
        assert (root / "locks/train" / name).read_bytes() == (
            root / "locks/score" / name
        ).read_bytes()
    # Unchanged input: nothing is planned, nothing resolved.
    planned.clear()
    resolved.clear()
    again = lock(
        load_config(root / "flowenv.toml"), on_plan=planned.append, on_resolved=resolved.append
    )
    assert planned == [0]
    assert resolved == []
    assert {r.status for r in again} == {"fresh"}


def _pins(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(path)}


def test_upgrade_and_upgrade_package(make_project, make_index, capsys) -> None:
    index = make_index(
        [
            WheelSpec(name="alpha", version="1.0"),
            WheelSpec(name="beta", version="1.0"),
        ]
    )
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = ">=1" }
        """,
        index=index,
    )
    linux = root / "locks/base/pylock.linux-64.toml"
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert _pins(linux) == {"alpha": "1.0"}
    # Newer versions are published after the first lock.
    make_index([WheelSpec(name="alpha", version="1.1"), WheelSpec(name="beta", version="2.0")])
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = ">=1"', 'alpha = ">=1", beta = ">=1"'))
    # A changed input re-resolves, but what was pinned stays pinned.
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert _pins(linux) == {"alpha": "1.0", "beta": "2.0"}
    make_index([WheelSpec(name="beta", version="2.1")])
    assert main(["-q", "-C", str(root), "lock", "--upgrade-package", "alpha"]) == 0
    assert _pins(linux) == {"alpha": "1.1", "beta": "2.0"}
    assert main(["-C", str(root), "lock", "--upgrade"]) == 0
    assert _pins(linux) == {"alpha": "1.1", "beta": "2.1"}
    assert capsys.readouterr().out == (
        "  written  base · linux-64  locks/base/pylock.linux-64.toml\n"
        "  written  base · osx-arm64  locks/base/pylock.osx-arm64.toml\n"
    )
    # An upgrade that finds nothing new resolves but leaves the bytes alone.
    assert main(["-C", str(root), "lock", "--upgrade"]) == 0
    assert capsys.readouterr().out == (
        "unchanged  base · linux-64  locks/base/pylock.linux-64.toml\n"
        "unchanged  base · osx-arm64  locks/base/pylock.osx-arm64.toml\n"
    )


# -- selection --------------------------------------------------------------------


def test_env_and_platform_selection(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }

        [steps.train]
        pypi.packages = { beta = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock", "train", "--platform", "osx-arm64"]) == 0
    assert (
        capsys.readouterr().out
        == "  written  train · osx-arm64  locks/train/pylock.osx-arm64.toml\n"
    )
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("pylock.*")) == [
        "locks/train/pylock.osx-arm64.toml",
    ]
    assert main(["-C", str(root), "lock", "--check", "train", "-p", "osx-arm64"]) == 0
    assert capsys.readouterr().out == "all locks are fresh\n"
    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert capsys.readouterr().err == (
        "flowenv: error:\nstale locks (run `flowenv lock`):\n"
        "  base · linux-64: missing (locks/base/pylock.linux-64.toml)\n"
        "  base · osx-arm64: missing (locks/base/pylock.osx-arm64.toml)\n"
        "  train · linux-64: missing (locks/train/pylock.linux-64.toml)\n"
    )


def test_unknown_env_and_platform_are_usage_errors(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"

        [steps.train]
        pypi.packages = { beta = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock", "trian"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: no environment named 'trian' (did you mean 'train'?); known: base, train\n"
    )
    assert main(["-C", str(root), "lock", "--check", "-p", "win-64"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: platform 'win-64' is not in project.platforms (linux-64, osx-arm64)\n"
    )
    assert main(["-C", str(root), "lock", "-p", "linux64"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: platform 'linux64' is not in project.platforms (linux-64, osx-arm64)\n"
    )
    assert not (root / "locks").exists()


def test_missing_package_exits_3_with_the_resolver_explanation(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { nosuch = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    assert capsys.readouterr().err == (
        "flowenv: error:\ncannot resolve base · linux-64:\n"
        "error: No solution found when resolving dependencies\n"
        "  cause: Because nosuch was not found in the package registry and you require "
        "nosuch==1.0, we can conclude that your requirements are unsatisfiable.\n"
    )
    assert not (root / "locks").exists()


# -- progress ---------------------------------------------------------------------


def test_no_progress_display_when_not_a_terminal(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }
        """
    )
    assert main(["-C", str(root), "lock"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == (
        "  written  base · linux-64  locks/base/pylock.linux-64.toml\n"
        "  written  base · osx-arm64  locks/base/pylock.osx-arm64.toml\n"
    )


def test_progress_display_only_on_a_terminal_outside_ci(
    make_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }
        """
    )
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w", encoding="utf-8") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setenv("CI", "true")
        assert not is_interactive()
        monkeypatch.delenv("CI")
        monkeypatch.setenv("TERM", "xterm")
        assert is_interactive()
        assert main(["-C", str(root), "lock"]) == 0
        tty.flush()
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert b"resolving" in shown


# -- obsolete locks ----------------------------------------------------------------


def test_lock_of_a_removed_step_is_flagged_then_removed(make_project, capsys) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }

        [steps.train]
        pypi.packages = { beta = "1.5" }
        """
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    (root / "locks/train/NOTES.txt").write_text("the user's own file\n")
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().split("[steps.train]")[0])
    capsys.readouterr()

    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert capsys.readouterr().err == (
        "flowenv: error:\n"
        "stale locks (run `flowenv lock`):\n"
        "  locks/train/pylock.linux-64.toml: obsolete (nothing in flowenv.toml uses it)\n"
        "  locks/train/pylock.osx-arm64.toml: obsolete (nothing in flowenv.toml uses it)\n"
    )
    # A partial lock knows only part of the project: it removes nothing.
    assert main(["-C", str(root), "lock", "base"]) == 0
    assert (root / "locks/train/pylock.linux-64.toml").exists()

    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "  removed  locks/train/pylock.linux-64.toml",
        "  removed  locks/train/pylock.osx-arm64.toml",
    ]
    # Only lock files are flowenv's: the user's file (and so its directory) stays.
    assert sorted(p.name for p in (root / "locks/train").iterdir()) == ["NOTES.txt"]
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0


def test_lock_of_a_dropped_platform_is_removed_with_its_empty_directory(
    make_project, capsys
) -> None:
    root = make_project(
        '[base]\npython = "3.11"\n[steps.train]\npypi.packages = { beta = "1.5" }\n'
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"'))
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 1
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert sorted(p.relative_to(root).as_posix() for p in (root / "locks").rglob("*")) == [
        "locks/base",
        "locks/base/pylock.linux-64.toml",
        "locks/train",
        "locks/train/pylock.linux-64.toml",
    ]
    toml.write_text(toml.read_text().split("[steps.train]")[0])
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert not (root / "locks/train").exists()
