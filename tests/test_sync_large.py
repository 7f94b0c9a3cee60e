"""Large artifacts stream from where they are: bounded memory, no copy in the cache, verified."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from flowenv.store import open_store
from tests.support.stores import StoreTarget, large_wheels_project, peak_rss_kib, s3_target


def _locked(
    endpoint: str, tmp_path: Path, *, count: int, megabytes: int
) -> tuple[StoreTarget, list[str], dict[str, str]]:
    """A locked project of ``count`` large wheels on a fresh bucket: the store, argv, env."""
    store = s3_target(endpoint)
    project = large_wheels_project(tmp_path, count, megabytes, store)
    env = {**os.environ, **store.env, "FLOWENV_CACHE_DIR": str(tmp_path / "cache")}
    flowenv = [sys.executable, "-m", "flowenv", "-C", str(project)]
    assert subprocess.run([*flowenv, "lock"], env=env, check=False).returncode == 0
    return store, flowenv, env


def test_three_large_artifacts_stream_to_s3(moto_process, tmp_path) -> None:
    store, flowenv, env = _locked(moto_process, tmp_path, count=3, megabytes=40)

    result, rss = peak_rss_kib([*flowenv, "sync"], env)
    assert result.returncode == 0, result.stderr
    assert "uploaded 3 artifacts (114.4 MiB)" in result.stdout
    # s3fs read each of these whole (three 40 MB files: well over 150 MiB); streamed, it is
    # the interpreter and the S3 client plus small buffers, whatever the sizes.
    assert rss < 150 * 1024, f"peak RSS {rss / 1024:.0f} MiB"
    # Not copied into the cache on the way.
    assert not (tmp_path / "cache" / "artifacts").exists()
    opened = open_store(store.url, store.options)
    wheels = sorted((tmp_path / "big-wheelhouse").glob("*.whl"))
    stored = {k.rsplit("/", 1)[-1]: k for k in opened.list_sizes("artifacts")}
    for wheel in wheels:
        data = opened.read(stored[wheel.name])
        assert data is not None
        assert hashlib.sha256(data).digest() == hashlib.sha256(wheel.read_bytes()).digest()


def test_large_artifact_that_does_not_match_its_lock_is_refused(moto_process, tmp_path) -> None:
    store, flowenv, env = _locked(moto_process, tmp_path, count=1, megabytes=20)
    wheel = next((tmp_path / "big-wheelhouse").glob("*.whl"))
    with wheel.open("r+b") as handle:
        handle.seek(10_000_000)
        handle.write(b"changed after locking")

    result = subprocess.run([*flowenv, "sync"], env=env, capture_output=True, text=True)
    assert result.returncode == 4
    assert f"sha256 mismatch for {wheel.name} from " in result.stderr
    assert result.stderr.rstrip().endswith("nothing was uploaded")
    assert open_store(store.url, store.options).list_sizes("artifacts") == {}
