"""Input readers on real files from public projects (see tests/data/inputs/NOTICE.rst)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lockfiles.pylock import read_pylock
from flowenv.spec import EnvSpec, build_environments

DATA = Path(__file__).parent / "data" / "inputs"


def _env(root: Path, body: str) -> EnvSpec:
    (root / "flowenv.toml").write_text(
        '[project]\nname = "real"\nplatforms = ["linux-64", "osx-arm64"]\n\n'
        + textwrap.dedent(body)
    )
    return build_environments(load_config(root / "flowenv.toml")).get("base")


def _pins(path: Path) -> set[str]:
    return {
        line.strip() for line in path.read_text().splitlines() if "==" in line and "#" not in line
    }


def test_flask_dev_requirements_with_includes(tmp_path: Path) -> None:
    shutil.copytree(DATA / "flask", tmp_path, dirs_exist_ok=True)
    env = _env(tmp_path, '[base]\npython = "3.13"\npypi.requirements = "requirements/dev.in"\n')
    assert env.inputs == (
        "requirements/dev.in",
        "requirements/docs.txt",
        "requirements/tests.txt",
        "requirements/typing.txt",
    )
    included = set().union(
        *(_pins(tmp_path / f"requirements/{n}.txt") for n in ("docs", "tests", "typing"))
    )
    # Every pin of the three included files (packaging==24.2 is in all three: once),
    # plus dev.in's own two unpinned packages.
    assert {p.requirement() for p in env.pypi} == included | {"pre-commit", "tox"}
    assert len(env.pypi) == len(included) + 2 == 43


def test_pymc_environment_yml_with_pip_section(tmp_path: Path) -> None:
    shutil.copy(DATA / "pymc/environment-dev.yml", tmp_path)
    env = _env(
        tmp_path, '[base]\npython = "3.12"\nconda.environment-file = "environment-dev.yml"\n'
    )
    assert env.kind == "conda"
    assert env.channels == ("conda-forge", "defaults")
    specs = [c.match_spec() for c in env.conda]
    assert len(specs) == 34
    assert "pytensor >=2.35.0,<2.36" in specs
    assert "mypy =1.15.0" in specs
    assert "blas" in specs
    assert [p.requirement() for p in env.pypi] == [
        "mcbackend>=0.4.0",
        "numdifftools>=0.9.40",
        "pymc-sphinx-theme>=0.16.0",
    ]


def test_flask_pyproject_with_extras_and_groups(tmp_path: Path) -> None:
    shutil.copy(DATA / "flask-pyproject/pyproject.toml", tmp_path)
    env = _env(
        tmp_path,
        """
        [base]
        python = "3.12"

        [base.pypi.pyproject]
        path = "."
        extras = ["async", "dotenv"]
        groups = ["tests", "gha-update"]
        """,
    )
    assert [p.requirement() for p in env.pypi] == [
        "asgiref",
        "asgiref>=3.2",
        "blinker>=1.9.0",
        "click>=8.1.3",
        'gha-update ; python_full_version >= "3.12"',
        "greenlet",
        "itsdangerous>=2.2.0",
        "jinja2>=3.1.2",
        "markupsafe>=2.1.1",
        "pytest",
        "python-dotenv",
        "werkzeug>=3.1.0",
    ]


def test_import_writes_a_config_over_a_real_pyproject(tmp_path: Path, capsys) -> None:
    shutil.copy(DATA / "flask-pyproject/pyproject.toml", tmp_path)
    args = ["-C", str(tmp_path), "import", "pyproject.toml", "--extra", "async", "--group", "tests"]
    assert main([*args, "-p", "linux-64"]) == 0
    assert (tmp_path / "flowenv.toml").read_text() == (
        "# Written by `flowenv import pyproject.toml`: the packages stay in that file.\n"
        "\n"
        "[project]\n"
        f'name = "{tmp_path.name}"\n'
        'platforms = ["linux-64"]\n'
        "\n"
        "[base]\n"
        "python = \"3.10\"  # the lowest Python requires-python = '>=3.10' allows\n"
        'pypi.pyproject = { path = "pyproject.toml", extras = ["async"], groups = ["tests"] }\n'
    )
    env = build_environments(load_config(tmp_path / "flowenv.toml")).get("base")
    assert "asgiref>=3.2" in [p.requirement() for p in env.pypi]


def test_import_a_real_environment_yml_without_a_python_pin(tmp_path: Path, capsys) -> None:
    shutil.copy(DATA / "pymc/environment-dev.yml", tmp_path)
    assert main(["-C", str(tmp_path), "import", "environment-dev.yml"]) == 0
    assert "is this interpreter's version; check it" in capsys.readouterr().err
    env = build_environments(load_config(tmp_path / "flowenv.toml")).get("base")
    assert env.channels == ("conda-forge", "defaults")
    assert len(env.conda) == 34
    assert env.inputs == ("environment-dev.yml",)


@pytest.mark.network
def test_flask_pinned_tests_requirements_lock_from_pypi(tmp_path: Path) -> None:
    shutil.copytree(DATA / "flask", tmp_path, dirs_exist_ok=True)
    _env(tmp_path, '[base]\npython = "3.13"\npypi.requirements = "requirements/tests.txt"\n')
    assert main(["-C", str(tmp_path), "lock"]) == 0
    pins = _pins(tmp_path / "requirements/tests.txt")
    for platform in ("linux-64", "osx-arm64"):
        locked = read_pylock(tmp_path / f"locks/base/pylock.{platform}.toml")
        assert {f"{p.name}=={p.version}" for p in locked} == pins
        assert all(w.sha256 for p in locked for w in p.wheels)
    before = {p: p.read_bytes() for p in (tmp_path / "locks").rglob("*.toml")}
    assert main(["-C", str(tmp_path), "lock", "--check"]) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "locks").rglob("*.toml")} == before


@pytest.mark.network
def test_existing_inputs_example_locks_a_solve_group_from_pypi(tmp_path: Path, capsys) -> None:
    root = tmp_path / "existing-inputs"
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "examples/existing-inputs",
        root,
        ignore=shutil.ignore_patterns("locks", ".flowenv"),
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    for platform in ("linux-64", "osx-arm64"):
        base = {p.name: p for p in read_pylock(root / f"locks/base/pylock.{platform}.toml")}
        train = {p.name: p for p in read_pylock(root / f"locks/train/pylock.{platform}.toml")}
        # Every package train shares with base is at base's version.
        assert {n: train[n].version for n in base} == {n: base[n].version for n in base}
        assert "scikit-learn" in train
        assert "scikit-learn" not in base
        assert Version(base["numpy"].version) < Version("2.3")  # constraints.txt
        assert ("pyarrow" in base) == (platform == "linux-64")
        assert base["featlib"].directory == "../../libs/featlib"
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--conflicts", "--exit-code"]) == 0
    assert capsys.readouterr().out == (
        "no package is locked at different versions in different envs\n"
    )
