"""Hydrate needs nothing but the store: the index, wheels and channel are deleted first.

Each test locks against its own copy of the wheel index (and conda channel),
syncs to the moto S3 server, deletes those copies, then builds and runs the
env in a separate process with a fresh cache, no project and every index
setting pointing at a port where nothing listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flowenv.cli import main
from tests.support.stores import StoreTarget, free_port, run_flowenv, s3_target
from tests.support.wheels import DEFAULT_WHEELS
from tests.test_store_conformance import store_invariants

#: Imports the env's packages, then prints the pip ones' versions from their metadata,
#: ``extra`` and whether the interpreter's prefix is the env's.
PROBE = (
    "import importlib.metadata as m, sys\n"
    "import {modules}\n"
    "print(*(f'{{d}}=={{m.version(d)}}' for d in {dists!r}), {extra}sys.prefix == {prefix!r})\n"
)


def _executor_env(store: StoreTarget, tmp_path: Path) -> dict[str, str]:
    """A fresh cache, the store's credentials, and indexes that cannot be reached."""
    dead = f"http://127.0.0.1:{free_port()}/simple"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    return (
        env
        | store.env
        | {
            "FLOWENV_CACHE_DIR": str(tmp_path / "executor-cache"),
            "UV_INDEX_URL": dead,
            "UV_DEFAULT_INDEX": dead,
            "PIP_INDEX_URL": dead,
            "UV_CACHE_DIR": str(tmp_path / "executor-uv-cache"),
        }
    )


def _run_in_env(
    store: StoreTarget, tmp_path: Path, modules: str, dists: list[str], extra: str = ""
) -> subprocess.CompletedProcess[str]:
    """``flowenv run base -- python -c PROBE`` on a fresh executor."""
    executor = tmp_path / "executor"
    executor.mkdir()
    prefix = tmp_path / "env"
    code = PROBE.format(modules=modules, dists=dists, extra=extra, prefix=str(prefix))
    return run_flowenv(
        "run",
        "base",
        "--store",
        store.url,
        "--project",
        "proj",
        "--prefix",
        str(prefix),
        "--",
        "python",
        "-c",
        code,
        cwd=executor,
        env=_executor_env(store, tmp_path),
    )


def _linux_only(root: Path) -> None:
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))


def test_pypi_env_hydrates_with_index_and_wheels_gone(
    make_project, make_index, moto_server, flowenv_cache, tmp_path
) -> None:
    index = make_index(DEFAULT_WHEELS)
    store = s3_target(moto_server)
    root = make_project(
        '[base]\npython = "3.11"\npypi.packages = { delta = "0.5" }\n',
        project_extra=store.project_lines(),
        index=index,
    )
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "sync"]) == 0
    assert len(store_invariants(store)) == 1

    shutil.rmtree(index.parent)
    shutil.rmtree(tmp_path / "index-wheels")
    ran = _run_in_env(
        store, tmp_path, "alpha, beta, delta, gamma", ["alpha", "beta", "delta", "gamma"]
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "alpha==2.0 beta==1.5 delta==0.5 gamma==1.0 True\n"


def mixed_project_on_s3(
    make_project, make_index, live_python_channel: Path, moto_server, tmp_path: Path, pypi: str
) -> tuple[Path, Path, Path, StoreTarget]:
    """(root, index, channel, store): a linux-64 env of conda's condapkg and the PyPI
    packages ``pypi`` (an inline table's body), on a copy of the live-Python channel,
    the test wheel index and a moto S3 store."""
    index = make_index(DEFAULT_WHEELS)
    channel = tmp_path / "channel"
    shutil.copytree(live_python_channel, channel)
    store = s3_target(moto_server)
    short = f"{sys.version_info[0]}.{sys.version_info[1]}"
    root = make_project(
        f'[base]\npython = "{short}"\n'
        'conda.packages = { condapkg = "2.1" }\n'
        f"pypi.packages = {{ {pypi} }}\n",
        project_extra=f'conda.channels = ["{channel.as_uri()}"]\n{store.project_lines()}',
        index=index,
    )
    _linux_only(root)
    return root, index, channel, store


def test_mixed_conda_pypi_env_hydrates_and_runs_with_channel_and_index_gone(
    make_project, make_index, live_python_channel: Path, moto_server, flowenv_cache, tmp_path
) -> None:
    root, index, channel, store = mixed_project_on_s3(
        make_project, make_index, live_python_channel, moto_server, tmp_path, 'delta = "0.5"'
    )
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "sync"]) == 0
    assert len(store_invariants(store)) == 1

    shutil.rmtree(channel)
    shutil.rmtree(index.parent)
    shutil.rmtree(tmp_path / "index-wheels")
    ran = _run_in_env(
        store,
        tmp_path,
        "condapkg, alpha, beta, delta, gamma",
        ["alpha", "beta", "delta", "gamma"],
        extra="'condapkg', condapkg.VERSION, ",
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "alpha==2.0 beta==1.5 delta==0.5 gamma==1.0 condapkg 2.1 True\n"
    prefix = tmp_path / "env"
    meta = sorted(p.name.rsplit("-", 2)[0] for p in (prefix / "conda-meta").glob("*.json"))
    assert meta == ["condapkg", "python"]
    site = prefix / f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    assert (site / "condapkg/__init__.py").read_text() == "VERSION = '2.1'\n"
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "alpha-2.0.dist-info",
        "beta-1.5.dist-info",
        "delta-0.5.dist-info",
        "gamma-1.0.dist-info",
    ]
