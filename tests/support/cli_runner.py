"""In-process CLI runs for tests: what a user sees (exit code, stdout, stderr), and no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from flowenv.cli import main


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str


#: Every command that loads the configuration, with arguments that need no store or network.
CONFIG_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("lock",),
    ("lock", "--check"),
    ("show",),
    ("show", "--json"),
    ("sync", "--dry-run"),
    ("export", "base", "-p", "linux-64"),
    # On an executor these need no configuration, but one that is there is read.
    ("hydrate", "base"),
    ("run", "base", "--platform", "linux-64", "--", "true"),
)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """``flowenv ARGS`` in-process; a traceback (any exception escaping main) fails the test."""

    def run(*args: str | Path) -> Outcome:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
