"""Where flowenv keeps machine-local caches (artifacts, the lock-check record, support layers).

Standard library only, and not even pathlib at import: the ``lock --check``
fast path reads its record from here.
"""

from __future__ import annotations

import os

# Not `from typing import TYPE_CHECKING`: typing costs the fast path a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

CACHE_ENV = "FLOWENV_CACHE_DIR"


def cache_root() -> str:
    """``$FLOWENV_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowenv``, else ``~/.cache/flowenv``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return os.path.realpath(os.path.expanduser(explicit))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.realpath(os.path.join(base, "flowenv"))


def default_cache_dir() -> Path:
    """:func:`cache_root` as a Path."""
    from pathlib import Path

    return Path(cache_root())
