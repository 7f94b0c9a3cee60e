"""``flowenv show --conflicts``: packages locked at different versions in different envs."""

from __future__ import annotations

import json
from pathlib import Path

from flowenv.cli import main
from tests.test_solve_groups import GROUPED, WHEELS

#: base and a step in one solve group: they cannot disagree.
AGREEING = """
[base]
python = "3.11"
solve-group = "flow"
pypi.packages = { alpha = "1.0" }

[steps.train]
pypi.packages = { beta = "1.0" }
"""


def test_conflicts_lists_packages_that_differ_between_envs(
    make_project, make_index, capsys
) -> None:
    root: Path = make_project(GROUPED, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 1
    out = capsys.readouterr().out
    assert out == (
        "packages locked at different versions in different envs "
        "(objects passed between these envs may not load):\n"
        "linux-64:\n"
        "  alpha                1.0          base (end), report, train (train)\n"
        "                       2.0          free (plot)\n"
        "not compared (lock missing or stale; run `flowenv lock`): base · osx-arm64, "
        "free · osx-arm64, report · osx-arm64, train · osx-arm64\n"
    )
    assert main(["-C", str(root), "show", "--conflicts", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["conflicts"] == [
        {
            "platform": "linux-64",
            "package": "alpha",
            "versions": {"1.0": ["base", "report", "train"], "2.0": ["free"]},
        }
    ]


def test_no_conflicts_when_every_env_agrees(make_project, capsys) -> None:
    root: Path = make_project(AGREEING)
    assert main(["-C", str(root), "lock"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 0
    assert capsys.readouterr().out == (
        "no package is locked at different versions in different envs\n"
    )


def test_exit_code_fails_when_a_lock_was_not_compared(make_project, capsys) -> None:
    root: Path = make_project(AGREEING)
    # Nothing locked: nothing differs, but nothing was compared either.
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 1
    assert "not compared (lock missing or stale" in capsys.readouterr().out
    assert main(["-C", str(root), "show", "--conflicts"]) == 0
    # One platform locked: the other is still not compared.
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 1
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 0


def test_conflicts_compare_conda_and_pypi_locks_by_name(
    make_project, conda_channels, capsys
) -> None:
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        conda.packages = { numpy = "1.25.2" }

        [steps.train]
        conda.packages = { numpy = "1.26.0" }

        [envs.web]
        pypi.packages = { numpy = "2.0.0" }

        [steps.serve]
        env = "web"
        """,
        project_extra=(
            f'conda.channels = ["{conda_channels.main_url}"]\n'
            f'pypi.find-links = ["{conda_channels.wheels}"]\n'
        ),
    )
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--conflicts", "--json"]) == 0
    conflicts = json.loads(capsys.readouterr().out)["conflicts"]
    assert conflicts == [
        {
            "platform": "linux-64",
            "package": "numpy",
            "versions": {"1.25.2": ["base"], "1.26.0": ["train"], "2.0.0": ["web"]},
        }
    ]
