"""The hooks of .pre-commit-hooks.yaml, run by PyPI's pre-commit (``try-repo``) in a temp repo.

The offline tests run the repository's own hook definitions with one change,
``language: system``: pre-commit then runs ``entry`` from PATH (this
environment's ``flowenv``) instead of building a virtualenv from PyPI. Every
other key (entry, files, pass_filenames) is the published one. The network
test runs the file unchanged (``language: python``), which installs flowenv
and its dependencies from PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flowenv.cli import main
from tests.support.git_repo import commit_all, git, git_env, init_repo

REPO = Path(__file__).resolve().parents[1]
HOOKS_FILE = REPO / ".pre-commit-hooks.yaml"

ENV = """
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }
"""


def _hooks_repo(tmp_path: Path, language: str) -> Path:
    hooks = yaml.safe_load(HOOKS_FILE.read_text())
    for hook in hooks:
        hook["language"] = language
    root = tmp_path / "hooks-repo"
    root.mkdir()
    (root / ".pre-commit-hooks.yaml").write_text(yaml.safe_dump(hooks, sort_keys=False))
    init_repo(root)
    commit_all(root, "hooks")
    return root


def _try_repo(
    project: Path, hooks: Path, hook: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = git_env()
    # This interpreter's scripts first: `language: system` runs `flowenv` from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(hooks),
            hook,
            "--all-files",
            "--color",
            "never",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )


def _status(output: str, name: str) -> str:
    """pre-commit's verdict line for hook ``name`` (``Passed``/``Failed``/...)."""
    for line in output.splitlines():
        if line.startswith(name + "."):
            return line.rsplit(".", 1)[-1]
    raise AssertionError(f"no result line for {name!r} in:\n{output}")


def test_hook_definitions() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load(HOOKS_FILE.read_text())}
    assert sorted(hooks) == ["flowenv-check", "flowenv-lock"]
    assert hooks["flowenv-lock"]["entry"] == "flowenv git lock-hook"
    assert hooks["flowenv-check"]["entry"] == "flowenv lock --check"
    assert all(h["pass_filenames"] is False and h["language"] == "python" for h in hooks.values())


@pytest.fixture
def project(make_project) -> Path:
    root = init_repo(make_project(ENV))
    git(root, "add", "flowenv.toml")
    return root


def test_flowenv_lock_hook_fails_when_it_wrote_then_passes(project, tmp_path) -> None:
    hooks = _hooks_repo(tmp_path, "system")
    first = _try_repo(project, hooks, "flowenv-lock", tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert _status(first.stdout, "flowenv lock") == "Failed"
    assert (
        "flowenv: error:\nstale locks were re-locked; review and stage them:\n"
        "  locks/base/pylock.linux-64.toml  (base · linux-64)\n"
        "  locks/base/pylock.osx-arm64.toml  (base · osx-arm64)\n"
    ) in first.stdout
    assert (project / "locks/base/pylock.linux-64.toml").is_file()
    second = _try_repo(project, hooks, "flowenv-lock", tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _status(second.stdout, "flowenv lock") == "Passed"


def test_flowenv_check_hook_resolves_nothing(project, tmp_path) -> None:
    hooks = _hooks_repo(tmp_path, "system")
    assert main(["-q", "-C", str(project), "lock"]) == 0
    commit_all(project, "locked")
    assert (
        _status(_try_repo(project, hooks, "flowenv-check", tmp_path).stdout, "flowenv lock --check")
        == "Passed"
    )
    toml = project / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    stale = _try_repo(project, hooks, "flowenv-check", tmp_path)
    assert stale.returncode == 1
    assert _status(stale.stdout, "flowenv lock --check") == "Failed"
    assert "base · linux-64: stale (locks/base/pylock.linux-64.toml)" in stale.stdout
    # --check wrote nothing.
    assert git(project, "status", "--porcelain").stdout == " M flowenv.toml\n"


@pytest.mark.network
def test_published_hooks_install_from_pypi(project, tmp_path) -> None:
    """The hooks file as published: pre-commit builds a venv and installs this checkout into it."""
    source = tmp_path / "flowenv-src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tox", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"
        ),
    )
    init_repo(source)
    commit_all(source, "snapshot")
    result = _try_repo(project, source, "flowenv-lock", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _status(result.stdout, "flowenv lock") == "Failed"
    assert (project / "locks/base/pylock.osx-arm64.toml").is_file()


def test_lock_hook_fails_when_it_removed_an_obsolete_lock(make_project, capsys) -> None:
    root = make_project(
        '[base]\npython = "3.11"\n[steps.train]\npypi.packages = { beta = "1.5" }\n'
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().split("[steps.train]")[0])
    capsys.readouterr()
    assert main(["-C", str(root), "git", "lock-hook"]) == 1
    assert capsys.readouterr().err == (
        "flowenv: error:\n"
        "stale locks were re-locked; review and stage them:\n"
        "  locks/train/pylock.linux-64.toml  (obsolete, removed)\n"
        "  locks/train/pylock.osx-arm64.toml  (obsolete, removed)\n"
    )
    assert main(["-C", str(root), "git", "lock-hook"]) == 0
