"""Where flowenv keeps machine-local caches (artifacts, the lock-check record, support layers).

Standard library only: the ``lock --check`` fast path reads its record from here.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FLOWENV_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$FLOWENV_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowenv``, else ``~/.cache/flowenv``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "flowenv").resolve()
