"""The warm server on real data: the fractal example locked against pypi.org (``-m network``).

A served lock must write what an in-process lock writes, byte for byte, for
real wheels with real metadata (matplotlib's dozen dependencies, per-platform
markers), not only for the tests' own index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("flowenv")
FLOWENV = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flowenv"]


def _flowenv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWENV, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _locks(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "locks").rglob("*"))
        if p.is_file()
    }


def test_a_served_lock_of_the_fractal_example_is_the_in_process_one(tmp_path: Path) -> None:
    root = tmp_path / "fractal"
    root.mkdir()
    shutil.copy(REPO / "examples/fractal/flowenv.toml", root / "flowenv.toml")
    # mkdtemp in /tmp, not tmp_path: a socket path must stay under ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fw-", dir="/tmp"))
    env = {
        **os.environ,
        "FLOWENV_SERVER": "1",
        "FLOWENV_SERVER_DIR": str(directory),
        "FLOWENV_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("CI", None)
    try:
        cold = _flowenv("-C", str(root), "lock", env={**env, "FLOWENV_SERVER": "0"})
        assert cold.returncode == 0, cold.stderr
        expected = _locks(root)
        assert {"locks/base/pylock.linux-64.toml", "locks/plot/pylock.osx-arm64.toml"} <= set(
            expected
        )
        # The first lock with the server on runs in-process and starts the server...
        shutil.rmtree(root / "locks")
        first = _flowenv("-C", str(root), "lock", env=env)
        assert first.returncode == 0, first.stderr
        assert _locks(root) == expected
        # ...which serves the next one.
        status = ""
        for _ in range(300):
            status = _flowenv("server", "status", env=env).stdout
            if "locks served" in status:
                break
            time.sleep(0.1)
        served_before = int(re.findall(r"(\d+) locks served", status)[0])
        shutil.rmtree(root / "locks")
        served = _flowenv("-C", str(root), "lock", env=env)
        assert served.returncode == 0, served.stderr
        assert served.stdout == first.stdout
        assert _locks(root) == expected
        status = _flowenv("server", "status", env=env).stdout
        assert int(re.findall(r"(\d+) locks served", status)[0]) == served_before + 1
    finally:
        _flowenv("server", "stop", env=env)
        shutil.rmtree(directory, ignore_errors=True)
