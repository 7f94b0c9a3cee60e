"""The one way flowenv runs external programs: captured, and with secrets redacted in errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Re-exported: most callers know it from here.
from flowenv.url_credentials import redact as redact


def run(
    args: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` to completion with output captured; never raises on a non-zero exit."""
    child_env = dict(os.environ if env is None else env)
    # flowenv re-prints a tool's messages in its own errors: a tool that wraps them for a
    # terminal width it guessed (uv does, when COLUMNS is set narrow) would break them mid-line.
    child_env["COLUMNS"] = "10000"
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )


def describe_failure(args: Sequence[str | Path], result: subprocess.CompletedProcess[str]) -> str:
    """A redacted, human-readable account of a failed command's output."""
    output = (result.stderr or result.stdout or "").strip()
    return redact(output or f"{Path(str(args[0])).name} exited with status {result.returncode}")
