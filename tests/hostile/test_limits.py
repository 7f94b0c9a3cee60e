"""The machine's own limits (``ulimit -f``, ``ulimit -n``, a full disk) are one message, exit 2.

Not a flowenv bug, so no traceback: the README's exit-code table promises a
traceback only for bugs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BODY = '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'


def _flowenv_under(
    limit: int, value: int, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        resource.setrlimit(limit, (value, resource.getrlimit(limit)[1]))

    preexec: Callable[[], None] = limited
    return subprocess.run(
        [sys.executable, "-m", "flowenv", *args],
        cwd=cwd,
        env={**os.environ, "FLOWENV_SERVER": "0"},
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=preexec,  # the limit must apply to the child alone
    )


def test_a_file_size_limit_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    # 16 bytes: enough for tempfile's probe, not for the flowenv.toml `import` writes.
    # (Not `lock`: uv, which inherits the limit, would be killed writing its output.)
    (tmp_path / "requirements.txt").write_text("alpha==1.0\n")
    result = _flowenv_under(
        resource.RLIMIT_FSIZE, 16, "import", "requirements.txt", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("flowenv: error: File too large")
    assert result.stderr.rstrip().endswith("(a limit of this machine)")
    # Nothing half-written: no flowenv.toml, no temporary file beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt"]


@pytest.mark.skipif(sys.platform != "linux", reason="descriptor counts differ by platform")
def test_too_few_file_descriptors_is_an_error_not_a_traceback(make_project) -> None:
    root = make_project(BODY)
    result = _flowenv_under(resource.RLIMIT_NOFILE, 8, "-C", str(root), "lock")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "(a limit of this machine)" in result.stderr
