"""kill -9 in the middle of a sync to a real S3 server process, then a re-run completes it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from flowenv.cli import main
from flowenv.store import open_store
from tests.support.stores import many_wheels_project, s3_target
from tests.test_store_conformance import store_invariants


def test_kill_9_mid_sync_then_rerun_completes(moto_process, tmp_path) -> None:
    store = s3_target(moto_process)
    project = many_wheels_project(tmp_path, count=120, size=200_000, store=store)
    assert main(["-C", str(project), "lock"]) == 0
    env = {**os.environ, "FLOWENV_CACHE_DIR": str(tmp_path / "cache")}
    opened = open_store(store.url, store.options)

    sync = subprocess.Popen(
        [sys.executable, "-m", "flowenv", "-C", str(project), "sync", "-j", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill as soon as some, but not all, artifacts are in the store.
    while sync.poll() is None:
        uploaded = [k for k in opened.list_sizes("artifacts") if k.endswith(".whl")]
        if uploaded:
            sync.send_signal(signal.SIGKILL)
            break
    sync.wait()
    assert sync.returncode == -signal.SIGKILL, "sync finished before it could be interrupted"

    keys = opened.list_sizes()
    present = [k for k in keys if k.endswith(".whl")]
    assert 0 < len(present) < 120
    # No manifest (nor alias) can exist yet, and none ever names a missing artifact.
    assert store_invariants(store) == []
    assert [k for k in keys if k.startswith("projects/")] == []

    rerun = subprocess.run(
        [sys.executable, "-m", "flowenv", "-C", str(project), "sync"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    last = rerun.stdout.splitlines()[-1]
    summary = re.fullmatch(
        rf"uploaded (\d+) artifacts \(.*\), (\d+) already there, 1 manifest written to "
        rf"{re.escape(store.url)}",
        last,
    )
    assert summary is not None, last
    uploaded, already = int(summary[1]), int(summary[2])
    # A PUT the killed process had sent whole may still land after the listing
    # above (the server finishes it): "already there" is at least what was listed.
    assert uploaded + already == 120
    assert already >= len(present)
    assert len(store_invariants(store)) == 1
    assert len([k for k in opened.list_sizes() if k.endswith(".whl")]) == 120
