"""Conda envs: locked with rattler on the local test channel, synced to S3, hydrated offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flowenv.cli import main
from tests.support.conda_channel import CondaChannels
from tests.support.stores import run_flowenv, s3_target
from tests.test_store_conformance import store_invariants


def test_conda_env_sync_hydrate_run(
    make_project, conda_channels: CondaChannels, moto_server, tmp_path
) -> None:
    store = s3_target(moto_server)
    root = make_project(
        '[base]\npython = "3.11"\nconda.packages = { "scikit-learn" = "1.3.1" }\n',
        project_extra=f'conda.channels = ["{conda_channels.main_url}"]\n{store.project_lines()}',
    )
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    env = {**os.environ, **store.env, "FLOWENV_CACHE_DIR": str(tmp_path / "cache")}
    assert main(["-C", str(root), "lock"]) == 0
    synced = run_flowenv("-C", str(root), "sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.splitlines()[-1].startswith("uploaded 5 artifacts (")
    assert len(store_invariants(store)) == 1

    # The executor: a fresh cache, no project, and every channel gone.
    channels = conda_channels.main
    moved = channels.with_name("main-unreachable")
    channels.rename(moved)
    try:
        executor = tmp_path / "executor"
        executor.mkdir()
        exec_env = {**os.environ, **store.env, "FLOWENV_CACHE_DIR": str(tmp_path / "exec-cache")}
        hydrated = run_flowenv(
            "hydrate",
            "base",
            "--store",
            store.url,
            "--project",
            "proj",
            "--prefix",
            str(tmp_path / "env"),
            "--json",
            cwd=executor,
            env=exec_env,
        )
        assert hydrated.returncode == 0, hydrated.stderr
        info = json.loads(hydrated.stdout)
        assert (info["kind"], info["prefix"], info["reused"]) == (
            "conda",
            str(tmp_path / "env"),
            False,
        )
        prefix = Path(info["prefix"])
        meta = sorted(p.name.rsplit("-", 2)[0] for p in (prefix / "conda-meta").glob("*.json"))
        assert meta == ["joblib", "libgomp", "numpy", "python", "scikit-learn"]
        assert (
            prefix / "lib/python3.11/site-packages/sklearn/__init__.py"
        ).read_text() == "__version__ = '1.3.1'\n"
        ran = run_flowenv(
            "run",
            "base",
            "--store",
            store.url,
            "--project",
            "proj",
            "--prefix",
            str(prefix),
            "--",
            "sh",
            "-c",
            'cat "$CONDA_PREFIX/lib/numpy-1.26.0.txt"; python3.11',
            cwd=executor,
            env=exec_env,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == "numpy 1.26.0 for linux-64\nfake python 3.11.7\n"
    finally:
        moved.rename(channels)
