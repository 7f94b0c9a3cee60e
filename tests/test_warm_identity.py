"""The warm server's socket name: one server per interpreter, whatever name started it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROBE = "from flowenv.warm.location import socket_path; print(socket_path())"


def _socket_of(python: Path, directory: Path) -> str:
    env = {**os.environ, "FLOWENV_SERVER_DIR": str(directory)}
    return subprocess.run(
        [str(python), "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_a_venvs_python_and_python3_share_one_server() -> None:
    # The console script's shebang names one of them, `python -m flowenv` often the other:
    # with two servers, a server started by one was never found by the other.
    here = Path(sys.executable)
    names = [here.with_name(n) for n in ("python", "python3") if here.with_name(n).exists()]
    if len(names) < 2:
        pytest.skip("this interpreter has no python/python3 pair")
    # mkdtemp in /tmp (0700), not tmp_path: a socket path must stay under ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fw-", dir="/tmp"))
    try:
        paths = {_socket_of(python, directory) for python in names}
    finally:
        shutil.rmtree(directory)
    assert len(paths) == 1
    assert paths.pop().startswith(str(directory))
