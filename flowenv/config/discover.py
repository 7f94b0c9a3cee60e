"""Find the configuration file, the way pytest finds its rootdir.

Searched from the start directory upward: in each directory ``flowenv.toml``
wins, else a ``pyproject.toml`` that has a ``[tool.flowenv]`` table. An
explicit ``-c FILE`` is used as given and is an error when missing: never a
silent fallback to a discovered file.
"""

from __future__ import annotations

import re
from pathlib import Path

from flowenv._bounds import MAX_SOURCE_BYTES
from flowenv.errors import ConfigError, Diagnostic

CONFIG_NAME = "flowenv.toml"
PYPROJECT_NAME = "pyproject.toml"
_TOOL_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*flowenv\s*[\].]", re.MULTILINE)


def _pyproject_has_flowenv(path: Path) -> bool:
    # A regex, not a TOML parse: discovery runs on every command, including
    # `lock --check`, and most pyproject.toml files it meets are not ours.
    try:
        # Undecodable bytes cannot hide the header; load_config reports them if it is
        # ours. Past the size flowenv reads at all, load_config refuses it anyway.
        with path.open("rb") as handle:
            head = handle.read(MAX_SOURCE_BYTES + 1)
        return bool(_TOOL_TABLE.search(head.decode("utf-8", errors="replace")))
    except OSError:
        return False


def discover_config(start: Path | None = None, explicit: Path | None = None) -> Path:
    """The configuration file to use, or a :class:`ConfigError` saying where we looked."""
    if explicit is not None:
        path = explicit if explicit.is_absolute() else (start or Path.cwd()) / explicit
        if not path.is_file():
            raise ConfigError([Diagnostic(str(explicit), None, "", "no such configuration file")])
        return path
    origin = (start or Path.cwd()).resolve()
    for directory in (origin, *origin.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT_NAME
        if pyproject.is_file() and _pyproject_has_flowenv(pyproject):
            return pyproject
    raise ConfigError(
        [
            Diagnostic(
                str(origin),
                None,
                "",
                f"no {CONFIG_NAME} (or pyproject.toml with [tool.flowenv]) here or in any "
                "parent directory; create one or pass -c FILE",
            )
        ]
    )
