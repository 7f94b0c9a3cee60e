"""``hydrate``/``run`` by step name, with and without a configuration, and ``run``'s own syntax.

One project (base, a named env ``small`` and steps that run in each, or in
none) is locked and synced to a local-folder store once per test; the
executor side runs ``python -m flowenv`` in a directory with no flowenv.toml.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flowenv.cli import main
from tests.support.stores import run_flowenv

BODY = """\
[base]
python = "{python}"
pypi.packages = {{ delta = "0.5" }}

[envs.small]
pypi.packages = {{ beta = "1.0" }}

[steps.embed]
env = "small"

[steps.peek]
disabled = true

[steps.start]

[steps.train]
"""
PYTHON = "3.11"


@pytest.fixture
def synced(make_project, flowenv_cache: Path, tmp_path: Path) -> Path:
    """The project's directory, locked and synced to ``tmp_path/store`` (linux-64 only)."""
    root = make_project(
        BODY.format(python=PYTHON), project_extra=f'store = "{tmp_path / "store"}"\n'
    )
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync"]) == 0
    return root


def _executor(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    executor = tmp_path / "executor"
    executor.mkdir(exist_ok=True)
    env = dict(os.environ) | {"FLOWENV_STORE": str(tmp_path / "store"), "FLOWENV_PROJECT": "proj"}
    return executor, env


def _hydrated(where: list[str], *args: str, cwd: Path, env: dict[str, str]) -> dict[str, object]:
    ran = run_flowenv(*where, "hydrate", *args, "--json", cwd=cwd, env=env)
    assert ran.returncode == 0, ran.stderr
    data: dict[str, object] = json.loads(ran.stdout)
    return data


@pytest.mark.parametrize("with_config", [True, False], ids=["config", "no-config"])
def test_step_names_resolve_to_their_env(synced: Path, tmp_path: Path, with_config: bool) -> None:
    executor, env = _executor(tmp_path)
    where = ["-C", str(synced)] if with_config else []
    embed = _hydrated(where, "embed", "--prefix", str(tmp_path / "embed"), cwd=executor, env=env)
    start = _hydrated(where, "start", "--prefix", str(tmp_path / "start"), cwd=executor, env=env)
    small = _hydrated(where, "small", "--prefix", str(tmp_path / "small"), cwd=executor, env=env)
    base = _hydrated(where, "base", "--prefix", str(tmp_path / "base"), cwd=executor, env=env)

    ran = run_flowenv(*where, "hydrate", "embed", "--prefix", str(tmp_path / "embed"),
                      cwd=executor, env=env)  # fmt: skip
    assert ran.stderr == "flowenv: step 'embed' runs in env 'small'\n"
    # embed runs in the named env "small"; start is not declared, so it runs in base.
    assert (embed["env"], embed["env_id"]) == ("small", small["env_id"])
    assert (start["env"], start["env_id"]) == ("base", base["env_id"])
    assert embed["env_id"] != start["env_id"]
    site = tmp_path / "embed/lib/python3.11/site-packages"
    assert sorted(p.name for p in site.glob("*.dist-info")) == ["beta-1.0.dist-info"]


@pytest.mark.parametrize("with_config", [True, False], ids=["config", "no-config"])
def test_a_disabled_step_has_nothing_to_hydrate(
    synced: Path, tmp_path: Path, with_config: bool
) -> None:
    executor, env = _executor(tmp_path)
    where = ["-C", str(synced)] if with_config else []
    ran = run_flowenv(*where, "hydrate", "peek", cwd=executor, env=env)
    assert ran.returncode == 2
    assert ran.stderr == (
        "flowenv: error: step 'peek' runs in the system environment (disabled): "
        "there is nothing to hydrate\n"
    )


def test_an_unknown_name_without_a_step_map_names_the_env(tmp_path: Path) -> None:
    executor, env = _executor(tmp_path)
    (tmp_path / "store").mkdir()
    ran = run_flowenv("hydrate", "train", cwd=executor, env=env)
    assert ran.returncode == 4
    assert ran.stderr == (
        f"flowenv: error: {tmp_path / 'store'}: no env 'train' for linux-64 in project 'proj' "
        "(run `flowenv sync` first)\n"
    )


PRINT_PREFIX = "import sys; print(sys.prefix)"


@pytest.mark.parametrize(
    "form",
    [
        ["train", "--", "python", "-c", PRINT_PREFIX],
        ["train", "python", "-c", PRINT_PREFIX],
        ["train", "-p", "linux-64", "--", "python", "-c", PRINT_PREFIX],
        ["-p", "linux-64", "train", "--", "python", "-c", PRINT_PREFIX],
        ["train", "--platform", "linux-64", "--", "python", "-c", PRINT_PREFIX],
        ["train", "--ignore-system-requirements", "--", "python", "-c", PRINT_PREFIX],
        ["train", "--", "python", "-c", PRINT_PREFIX + "; print(sys.argv[1:])", "--", "-x"],
        ["train", "-q", "-C", ".", "--", "python", "-c", PRINT_PREFIX],
    ],
    ids=[
        "dashdash",
        "bare",
        "late-p",
        "early-p",
        "late-platform",
        "late-flag",
        "dashdash-in-cmd",
        "late-global",
    ],
)
def test_every_documented_run_form_works(synced: Path, tmp_path: Path, form: list[str]) -> None:
    executor, env = _executor(tmp_path)
    prefix = tmp_path / "train-env"
    ran = run_flowenv("run", "--prefix", str(prefix), *form, cwd=executor, env=env)
    assert ran.returncode == 0, ran.stderr
    expected = f"{prefix}\n"
    if "-x" in form:
        expected += "['--', '-x']\n"
    assert ran.stdout == expected


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (["train"], "no command: flowenv run ENV [OPTIONS] -- CMD..."),
        (["train", "--store", "x"], "no command: flowenv run ENV [OPTIONS] -- CMD..."),
        (["train", "--nope", "--", "python"], "unrecognized arguments: --nope"),
    ],
)
def test_run_without_a_command_is_a_usage_error(
    tmp_path: Path, form: list[str], message: str
) -> None:
    executor, env = _executor(tmp_path)
    ran = run_flowenv("run", *form, cwd=executor, env=env)
    assert (ran.returncode, ran.stderr) == (2, f"flowenv: error: {message}\n")


def test_hydrate_takes_p_like_every_command(synced: Path, tmp_path: Path) -> None:
    executor, env = _executor(tmp_path)
    got = _hydrated([], "base", "-p", "linux-64", cwd=executor, env=env)
    assert got["platform"] == "linux-64"
    ran = run_flowenv("hydrate", "base", "-p", "osx-arm64", cwd=executor, env=env)
    assert (ran.returncode, ran.stderr) == (
        2,
        "flowenv: error: cannot hydrate a osx-arm64 env on this linux-64 machine\n",
    )


def test_a_directory_name_that_cannot_name_the_project_is_refused_where_the_store_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No [project] name: the directory's own is used, and "My Flow (v2)" is no store key.
    root = tmp_path / "My Flow (v2)"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        '[project]\nplatforms = ["linux-64"]\n\n[base]\npython = "3.11"\n'
    )
    store = (tmp_path / "store").as_uri()
    assert main(["-C", str(root), "lock"]) == 0  # locking needs no store name
    capsys.readouterr()
    expected = (
        f"{root / 'flowenv.toml'}: [project] sets no name, and the directory's name "
        "'My Flow (v2)' cannot be used: a project name may only use letters"
    )
    assert main(["-C", str(root), "sync", "--no-python", "--store", store]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert 'set name = "..." under [project]' in err
    # Hydrate inside the project takes the env id from the lock and needs no
    # name: it gets as far as the (empty) store.
    assert main(["-C", str(root), "hydrate", "base", "--store", store]) == 4
    assert "manifest.json is missing (run `flowenv sync`)" in capsys.readouterr().err
