"""The one exception root of flowenv and the exit code each failure maps to.

Every *expected* failure is a :class:`FlowenvError`; the CLI prints its message
and exits with its ``exit_code``, without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char, f"\\u{ord(char):04x}")


EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_RESOLUTION = 3
EXIT_STORE = 4


class FlowenvError(Exception):
    """Root of every error flowenv reports to the user."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(FlowenvError):
    """The command line asks for something that does not exist or cannot be."""

    exit_code = EXIT_USAGE


@attrs.frozen
class Diagnostic:
    """One problem in a configuration file, located by file, line and key path."""

    file: str
    line: int | None
    key_path: str
    message: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{where}: {self.message}"
        )
        # One diagnostic is one line: a key or value quoted from a hostile file
        # must not break it, nor send escape sequences to the terminal.
        return _CONTROL.sub(_escape, text)


class ConfigError(FlowenvError):
    """A configuration file is missing, unreadable or invalid; carries every problem at once."""

    exit_code = EXIT_USAGE

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


class WriteError(FlowenvError):
    """A local file flowenv must write (a lock, an export) cannot be written."""

    exit_code = EXIT_USAGE


class LockFileError(FlowenvError):
    """A lock file cannot be read or is not what its format says (an input error)."""

    exit_code = EXIT_USAGE


class CheckFailed(FlowenvError):
    """A check found something: a stale lock, a non-empty diff with ``--exit-code``."""

    exit_code = EXIT_CHECK_FAILED


class ResolutionError(FlowenvError):
    """A resolver could not produce a lock: unsatisfiable specs, a missing package."""

    exit_code = EXIT_RESOLUTION


class StoreError(FlowenvError):
    """A store or transfer failed, or an artifact did not match its hash."""

    exit_code = EXIT_STORE
