"""``flowenv show``: the merged spec of each step and the lock it uses, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.spec import build_environments

CONFIG = """\
[project]
name = "demo"
platforms = ["linux-64", "osx-arm64"]

[base]
python = "3.11"
pypi.packages = { alpha = "1.0", beta = ">=1" }

[steps.start]

[steps.train]
pypi.libraries = { Beta = "1.5", epsilon = "~=3.1" }

[steps.peekaboo]
disabled = true

[steps.finetune]
env = "gpu"
python = "3.10"
pypi.packages = { gamma = "1.0" }

[envs.gpu]
pypi.packages = { "delta[Extra_One]" = "0.5" }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flowenv.toml").write_text(CONFIG)
    return tmp_path


def test_show_text(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(project), "show"]) == 0
    assert capsys.readouterr().out == (
        "finetune: env finetune (pypi, python 3.10)\n"
        "    pypi   delta[extra-one]==0.5\n"
        "    pypi   gamma==1.0\n"
        "    lock   linux-64: locks/finetune/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/finetune/pylock.osx-arm64.toml (missing)\n"
        "peekaboo: disabled (system environment, no lock)\n"
        "start: env base (pypi, python 3.11)\n"
        "    pypi   alpha==1.0\n"
        "    pypi   beta>=1\n"
        "    lock   linux-64: locks/base/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/base/pylock.osx-arm64.toml (missing)\n"
        "train: env train (pypi, python 3.11)\n"
        "    pypi   alpha==1.0\n"
        "    pypi   beta==1.5\n"
        "    pypi   epsilon~=3.1\n"
        "    lock   linux-64: locks/train/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/train/pylock.osx-arm64.toml (missing)\n"
        "env gpu (pypi, python 3.11) [no step uses it]\n"
        "    pypi   delta[extra-one]==0.5\n"
        "    lock   linux-64: locks/gpu/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/gpu/pylock.osx-arm64.toml (missing)\n"
    )


def test_show_selected_and_undeclared_steps(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(project), "show", "end", "peekaboo"]) == 0
    assert capsys.readouterr().out == (
        "end: env base (pypi, python 3.11) [not declared: as base]\n"
        "    pypi   alpha==1.0\n"
        "    pypi   beta>=1\n"
        "    lock   linux-64: locks/base/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/base/pylock.osx-arm64.toml (missing)\n"
        "peekaboo: disabled (system environment, no lock)\n"
    )
    assert main(["-C", str(project), "show", "not-a-step"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: 'not-a-step' is not a step name (steps are Python identifiers)\n"
    )


def test_show_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "locks/base").mkdir(parents=True)
    (project / "locks/base/pylock.linux-64.toml").write_text('[tool.flowenv]\ninput-hash = "0"\n')
    envs = build_environments(load_config(project / "flowenv.toml"))
    assert main(["-C", str(project), "show", "train", "start", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "config": str(project / "flowenv.toml"),
        "platforms": ["linux-64", "osx-arm64"],
        "steps": [
            {"step": "train", "declared": True, "env": "train"},
            {"step": "start", "declared": True, "env": "base"},
        ],
        "envs": [
            {
                "name": "base",
                "kind": "pypi",
                "python": "3.11",
                "pypi": ["alpha==1.0", "beta>=1"],
                "pinned-indexes": {},
                "platforms": ["linux-64", "osx-arm64"],
                "conda": [],
                "channels": [],
                "system-requirements": {},
                "indexes": {},
                "targets": {},
                "steps": ["start"],
                "locks": {
                    "linux-64": {
                        "path": "locks/base/pylock.linux-64.toml",
                        "status": "stale",
                        "input-hash": envs.get("base").input_hash("linux-64"),
                    },
                    "osx-arm64": {
                        "path": "locks/base/pylock.osx-arm64.toml",
                        "status": "missing",
                        "input-hash": envs.get("base").input_hash("osx-arm64"),
                    },
                },
                "platform-differences": {},
            },
            {
                "name": "train",
                "kind": "pypi",
                "python": "3.11",
                "pypi": ["alpha==1.0", "beta==1.5", "epsilon~=3.1"],
                "pinned-indexes": {},
                "platforms": ["linux-64", "osx-arm64"],
                "conda": [],
                "channels": [],
                "system-requirements": {},
                "indexes": {},
                "targets": {},
                "steps": ["train"],
                "locks": {
                    "linux-64": {
                        "path": "locks/train/pylock.linux-64.toml",
                        "status": "missing",
                        "input-hash": envs.get("train").input_hash("linux-64"),
                    },
                    "osx-arm64": {
                        "path": "locks/train/pylock.osx-arm64.toml",
                        "status": "missing",
                        "input-hash": envs.get("train").input_hash("osx-arm64"),
                    },
                },
                "platform-differences": {},
            },
        ],
    }


def test_show_reports_fresh_after_lock(make_project, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n')
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert main(["-C", str(root), "show", "start"]) == 0
    assert capsys.readouterr().out == (
        "start: env base (pypi, python 3.11) [not declared: as base]\n"
        "    pypi   alpha==1.0\n"
        "    lock   linux-64: locks/base/pylock.linux-64.toml (fresh)\n"
        "    lock   osx-arm64: locks/base/pylock.osx-arm64.toml (missing)\n"
    )


def test_show_lists_base_when_no_declared_step_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # FractalFlow's shape: only `plot` is declared; start and end run in base.
    (tmp_path / "flowenv.toml").write_text(
        '[project]\nplatforms = ["linux-64"]\n[base]\npython = "3.11"\n'
        '[steps.plot]\npypi.packages = { gamma = "1.0" }\n'
    )
    assert main(["-C", str(tmp_path), "show"]) == 0
    assert capsys.readouterr().out == (
        "plot: env plot (pypi, python 3.11)\n"
        "    pypi   gamma==1.0\n"
        "    lock   linux-64: locks/plot/pylock.linux-64.toml (missing)\n"
        "env base (pypi, python 3.11) [steps not listed in the file]\n"
        "    lock   linux-64: locks/base/pylock.linux-64.toml (missing)\n"
    )


def test_show_survives_a_damaged_lock(make_project, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n')
    assert main(["-q", "-C", str(root), "lock"]) == 0
    (root / "locks/base/pylock.osx-arm64.toml").write_text("not [toml\n")
    capsys.readouterr()
    assert main(["-C", str(root), "show"]) == 0
    out = capsys.readouterr().out
    assert "osx-arm64: locks/base/pylock.osx-arm64.toml (stale)" in out
    assert "differs" not in out
