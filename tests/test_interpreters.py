"""The interpreter comes from the store: sync stores the CPython build, hydrate installs it offline.

uv is pointed at a download list the tests build (tests/support/pythons.py) through its
documented ``UV_PYTHON_DOWNLOADS_JSON_URL``; the build is a small archive that runs an
interpreter of another minor version than the test run's own. The executor runs with a
PATH that holds no interpreter of that version, the list and archive deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.interpreters import PythonBuild, interpreter_key
from flowenv.store.layout import artifact_key
from tests.support.pythons import (
    build_archive,
    other_interpreter,
    path_without,
    write_download_list,
)
from tests.support.stores import run_flowenv
from tests.test_cache_warm import hydrate_at_once

FOUND = other_interpreter()
pytestmark = pytest.mark.skipif(
    FOUND is None or sys.platform != "linux",
    reason="needs a CPython of another minor version on this (linux) machine",
)
BODY = """\
[base]
python = "{python}"
pypi.packages = {{ delta = "0.5" }}
"""
PROBE = "import sys, delta, alpha; print(*sys.version_info[:3], sys.prefix)"


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:
    """(version, archive, download list); uv of this process uses the list."""
    assert FOUND is not None
    real, version = FOUND
    archive = build_archive(real, version, tmp_path / "python-builds")
    listing = write_download_list(
        archive, version, ["linux-64"], tmp_path / "python-builds" / "downloads.json"
    )
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(listing))
    return version, archive, listing


def _synced(make_project, tmp_path: Path, python: str) -> Path:
    store = tmp_path / "store"
    root = make_project(BODY.format(python=python), project_extra=f'store = "{store}"\n')
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync"]) == 0
    return store


def _executor_env(store: Path, cache: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    return env | {
        "FLOWENV_CACHE_DIR": str(cache),
        "FLOWENV_STORE": str(store),
        "FLOWENV_PROJECT": "proj",
        "PATH": path,
        # uv would otherwise look for managed interpreters in the user's data directory.
        "XDG_DATA_HOME": str(cache.parent / "executor-data"),
    }


def test_sync_stores_the_build_once_content_addressed(
    make_project, build, flowenv_cache: Path, tmp_path: Path, capsys
) -> None:
    version, archive, _ = build
    store = _synced(make_project, tmp_path, version)

    record_key = interpreter_key("linux-64", version)
    stored = PythonBuild.from_json(
        (store / record_key).read_bytes(), record_key, platform="linux-64", python=version
    )
    sha256 = stored.sha256
    assert stored == PythonBuild(
        python=version,
        version=version,
        key=f"cpython-{version}-linux-x86_64-gnu",
        platform="linux-64",
        sha256=sha256,
        filename=archive.name,
        size=archive.stat().st_size,
    )
    in_store = store / artifact_key(sha256, archive.name)
    assert in_store.read_bytes() == archive.read_bytes()
    # A second sync finds the record and asks uv for nothing.
    os.environ["UV_PYTHON_DOWNLOADS_JSON_URL"] = str(tmp_path / "missing.json")
    capsys.readouterr()
    assert main(["-C", str(tmp_path / "proj"), "sync"]) == 0
    out = capsys.readouterr().out
    assert "uploaded 0 artifacts (0 B), 4 already there, 0 manifests written" in out


def test_hydrate_installs_the_stored_build_offline_when_none_is_local(
    make_project, build, flowenv_cache: Path, tmp_path: Path
) -> None:
    version, archive, _ = build
    store = _synced(make_project, tmp_path, version)
    shutil.rmtree(archive.parent)  # the list and the archive: only the store has the build
    cache = tmp_path / "node-cache"
    env = _executor_env(store, cache, path_without(version, os.environ["PATH"]))
    executor = tmp_path / "executor"
    executor.mkdir()

    prefix = tmp_path / "env"
    ran = run_flowenv(
        "run", "base", "--prefix", str(prefix), "--", "python", "-c", PROBE, env=env, cwd=executor
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{version.replace('.', ' ')} {prefix}\n"
    key = f"cpython-{version}-linux-x86_64-gnu"
    assert (cache / "python" / key).is_dir()

    # The next env finds the installed build in the cache; the store's copy is not read again.
    record = store / interpreter_key("linux-64", version)
    record.rename(record.with_suffix(".away"))
    again = run_flowenv(
        "hydrate", "base", "--prefix", str(tmp_path / "env2"), env=env, cwd=executor
    )
    assert again.returncode == 0, again.stderr

    # Prune keeps the build while an env uses it, and drops it once none does.
    shutil.rmtree(prefix)
    pruned = run_flowenv("cache", "prune", env=env, cwd=executor)
    assert pruned.returncode == 0, pruned.stderr
    assert (cache / "python" / key).is_dir()
    shutil.rmtree(tmp_path / "env2")
    pruned = run_flowenv("cache", "prune", env=env, cwd=executor)
    assert pruned.returncode == 0, pruned.stderr
    assert not (cache / "python" / key).exists()
    info = json.loads(run_flowenv("cache", "info", "--json", env=env, cwd=executor).stdout)
    assert (info["artifacts"], info["envs"]) == (0, [])


def test_gc_keeps_the_stored_build_executors_need(
    make_project, build, flowenv_cache: Path, tmp_path: Path
) -> None:
    """No manifest names a CPython build: gc must keep it all the same, or an executor
    without a local interpreter could no longer hydrate a rooted env."""
    version, archive, _ = build
    store = _synced(make_project, tmp_path, version)
    shutil.rmtree(archive.parent)
    root = tmp_path / "proj"
    assert main(["-q", "-C", str(root), "store", "gc", "--grace", "0"]) == 0
    record_key = interpreter_key("linux-64", version)
    stored = PythonBuild.from_json(
        (store / record_key).read_bytes(), record_key, platform="linux-64", python=version
    )
    assert (store / stored.artifact_key).is_file()

    cache = tmp_path / "node-cache"
    env = _executor_env(store, cache, path_without(version, os.environ["PATH"]))
    executor = tmp_path / "executor"
    executor.mkdir()
    ran = run_flowenv(
        "run",
        "base",
        "--prefix",
        str(tmp_path / "env"),
        "--",
        "python",
        "-c",
        PROBE,
        env=env,
        cwd=executor,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(version.replace(".", " ") + " ")


def test_a_matching_local_interpreter_wins_over_the_store(
    make_project, build, flowenv_cache: Path, tmp_path: Path
) -> None:
    version, _, _ = build
    assert FOUND is not None
    real = FOUND[0]
    store = _synced(make_project, tmp_path, version)
    cache = tmp_path / "node-cache"
    path = f"{real.parent}:{path_without(version, os.environ['PATH'])}"
    env = _executor_env(store, cache, path)

    ran = run_flowenv("hydrate", "base", "--prefix", str(tmp_path / "env"), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert not (cache / "python").exists()
    assert not any((cache / "artifacts").rglob("*.tar.gz"))


def test_a_tampered_build_in_the_store_is_refused(
    make_project, build, flowenv_cache: Path, tmp_path: Path
) -> None:
    version, archive, _ = build
    store = _synced(make_project, tmp_path, version)
    stored = next((store / "artifacts").rglob(archive.name))
    stored.write_bytes(stored.read_bytes() + b"\0")
    cache = tmp_path / "node-cache"
    env = _executor_env(store, cache, path_without(version, os.environ["PATH"]))

    prefix = tmp_path / "env"
    ran = run_flowenv("hydrate", "base", "--prefix", str(prefix), env=env, cwd=tmp_path)
    assert ran.returncode == 4
    assert f"sha256 mismatch for {archive.name} from {store}/artifacts/sha256/" in ran.stderr
    assert not prefix.exists()
    assert not (cache / "python").exists()


def test_without_a_build_anywhere_hydrate_says_what_to_install(
    make_project, flowenv_cache: Path, tmp_path: Path, capsys
) -> None:
    assert FOUND is not None
    version = FOUND[1]
    store = _synced(make_project, tmp_path, version)  # uv's list is empty (conftest)
    assert f"uv knows no CPython {version} build for linux-64" in capsys.readouterr().err
    env = _executor_env(store, tmp_path / "node-cache", path_without(version, os.environ["PATH"]))

    ran = run_flowenv("hydrate", "base", "--prefix", str(tmp_path / "env"), env=env, cwd=tmp_path)
    assert ran.returncode == 2
    assert ran.stderr.startswith(
        f"flowenv: error:\nbase · linux-64: no Python {version} interpreter on this machine and "
        f"none in the store (hydrate never downloads one); install Python {version} here, or "
        f"run `flowenv sync` where a CPython {version} build can be fetched:\n"
    )


def test_a_build_uv_cannot_fetch_fails_sync_with_a_way_out(
    make_project, build, flowenv_cache: Path, tmp_path: Path, capsys
) -> None:
    version, archive, _ = build
    archive.unlink()
    root = make_project(BODY.format(python=version), project_extra=f'store = "{tmp_path / "s"}"\n')
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    capsys.readouterr()

    assert main(["-q", "-C", str(root), "sync", "-p", "linux-64"]) == 4
    err = capsys.readouterr().err
    assert err.startswith(
        f"flowenv: error:\nlinux-64: cannot fetch CPython cpython-{version}-linux-x86_64-gnu:\n"
    )
    assert err.endswith(
        f"(`flowenv sync --no-python` syncs without it; executors then need a local Python "
        f"{version})\n"
    )
    assert not (tmp_path / "s" / interpreter_key("linux-64", version)).exists()
    assert main(["-q", "-C", str(root), "sync", "-p", "linux-64", "--no-python"]) == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(sha256="nothex"), "refusing artifact without a valid sha256"),
        (lambda d: d.update(filename="../../etc/passwd"), "not a plain file name"),
        (lambda d: d.update(key="cpython-3.9.1-linux-x86_64-gnu/../x"), "invalid CPython build"),
        (lambda d: d.update(platform="osx-arm64"), "refusing it"),
        (lambda d: d.pop("size"), "'size'"),
        (lambda d: d.update(format=2), "not a flowenv interpreter record"),
    ],
    ids=["sha256", "filename", "key", "platform", "size", "format"],
)
def test_a_damaged_record_is_refused(edit, message: str) -> None:
    build = PythonBuild(
        python="3.9",
        version="3.9.13",
        key="cpython-3.9.13-linux-x86_64-gnu",
        platform="linux-64",
        sha256="a" * 64,
        filename="cpython-3.9.13+20220802-x86_64-unknown-linux-gnu-install_only.tar.gz",
        size=10,
    )
    data = json.loads(build.to_json())
    assert PythonBuild.from_json(build.to_json(), "r", platform="linux-64", python="3.9") == build
    edit(data)
    from flowenv.errors import StoreError

    with pytest.raises(StoreError) as caught:
        PythonBuild.from_json(
            json.dumps(data).encode(), "s/r.json", platform="linux-64", python="3.9"
        )
    assert caught.value.message.startswith("s/r.json: ")
    assert message in caught.value.message


def test_16_fresh_executors_at_once_install_the_stored_build_once(
    make_project, build, flowenv_cache: Path, tmp_path: Path
) -> None:
    """A fan-out on a new node: every hydrate needs the store's Python at the same moment."""
    version, archive, _ = build
    store = _synced(make_project, tmp_path, version)
    shutil.rmtree(archive.parent)
    cache = tmp_path / "node-cache"
    env = _executor_env(store, cache, path_without(version, os.environ["PATH"]))
    prefixes = [tmp_path / f"worker-{i}" for i in range(16)]
    hydrate_at_once(env, prefixes, tmp_path)

    minor = version.rsplit(".", 1)[0]
    installs = sorted(p.name for p in (cache / "python").iterdir() if p.name.startswith("cpython"))
    # One build, and the minor-version link uv makes beside it; one archive in the cache.
    assert installs == [f"cpython-{v}-linux-x86_64-gnu" for v in sorted([version, minor])]
    assert [p.name for p in (cache / "artifacts").rglob("*.tar.gz")] == [archive.name]
    for prefix in prefixes:
        ran = subprocess.run(
            [str(prefix / "bin/python"), "-c", PROBE], capture_output=True, text=True, check=False
        )
        assert ran.stdout == f"{version.replace('.', ' ')} {prefix}\n", ran.stderr
