"""Find the configuration file, the way pytest finds its rootdir.

Searched from the start directory upward: in each directory ``flowenv.toml``
wins, else a ``pyproject.toml`` that has a ``[tool.flowenv]`` table. An
explicit ``-c FILE`` is used as given and is an error when missing: never a
silent fallback to a discovered file.
"""

from __future__ import annotations

import os
import re

# Not `from typing import TYPE_CHECKING`: typing costs the fast check a few ms,
# and so does pathlib, which discovery does without (it runs on every command).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

#: flowenv._bounds.MAX_SOURCE_BYTES, not imported: discovery is on the fast path.
_MAX_READ = 4 << 20

CONFIG_NAME = "flowenv.toml"
PYPROJECT_NAME = "pyproject.toml"
_TOOL_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*flowenv\s*[\].]", re.MULTILINE)


def _pyproject_has_flowenv(path: str) -> bool:
    # A regex, not a TOML parse: discovery runs on every command, including
    # `lock --check`, and most pyproject.toml files it meets are not ours.
    try:
        # Undecodable bytes cannot hide the header; load_config reports them if it is
        # ours. Past the size flowenv reads at all, load_config refuses it anyway.
        with open(path, "rb") as handle:
            head = handle.read(_MAX_READ + 1)
        return bool(_TOOL_TABLE.search(head.decode("utf-8", errors="replace")))
    except OSError:
        return False


def find_config(start: str | Path | None = None, explicit: str | Path | None = None) -> str | None:
    """The configuration file to use, or None; standard library only (the fast check uses it)."""
    if explicit is not None:
        path = os.path.join(start or os.getcwd(), explicit)
        return path if os.path.isfile(path) else None
    directory = os.path.realpath(start or os.getcwd())
    while True:
        candidate = os.path.join(directory, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        pyproject = os.path.join(directory, PYPROJECT_NAME)
        if os.path.isfile(pyproject) and _pyproject_has_flowenv(pyproject):
            return pyproject
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def discover_config(start: Path | None = None, explicit: Path | None = None) -> Path:
    """The configuration file to use, or a :class:`ConfigError` saying where we looked."""
    from pathlib import Path

    from flowenv.errors import ConfigError, Diagnostic

    found = find_config(start, explicit)
    if found is not None:
        return Path(found)
    if explicit is not None:
        raise ConfigError([Diagnostic(str(explicit), None, "", "no such configuration file")])
    origin = (start or Path.cwd()).resolve()
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
