"""Run flowenv as the user ``nobody``: root ignores file modes, so permission tests need this.

The project is copied outside pytest's 0700 temp tree and made world-writable,
``prepare`` then takes away what the test is about (a directory's write bit,
a file's read bit), and flowenv runs under ``setpriv`` as uid/gid 65534.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@contextmanager
def shared_copy(root: Path) -> Iterator[Path]:
    """A world-writable copy of the project ``root``, removed afterwards."""
    shared = Path(tempfile.mkdtemp(prefix="flowenv-unprivileged-"))
    try:
        shutil.copytree(root, shared / root.name, symlinks=True)
        for directory, _, files in os.walk(shared):
            os.chmod(directory, 0o777)
            for name in files:
                os.chmod(Path(directory) / name, 0o666)
        yield shared / root.name
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@contextmanager
def run_as_nobody(
    root: Path, args: list[str], prepare: Callable[[Path], None]
) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    """``flowenv -C COPY ARGS`` as ``nobody`` after ``prepare(COPY)``; yields (result, COPY).

    The copy lives until the ``with`` block ends, so the test can inspect what
    the run left there.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    with shared_copy(root) as copy:
        prepare(copy)
        result = subprocess.run(
            [
                setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "flowenv",
                "-C",
                str(copy),
                *args,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": str(copy.parent)},
            check=False,
            cwd=copy.parent,
        )
        yield result, copy
