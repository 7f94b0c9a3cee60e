"""What the warm server checks to know its code is still what is on disk.

The (mtime_ns, size) of each loaded module's file: an upgrade or an edit of
an editable install changes one of them. The server stamps its own modules
at start and those its children loaded (:mod:`flowenv.warm.memo_channel`),
and leaves when any changed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Container

Stamps = dict[str, tuple[int, int]]


def module_stamps(skip: Container[str] = ()) -> Stamps:
    """(mtime_ns, size) of every loaded module's file, but those in ``skip``."""
    stamps: Stamps = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path not in skip and path not in stamps:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                stamps[path] = (info.st_mtime_ns, info.st_size)
    return stamps


def changed(stamps: Stamps) -> bool:
    """Whether any file of ``stamps`` is gone or has another mtime or size."""
    for path, stamp in stamps.items():
        try:
            info = os.stat(path)
        except OSError:
            return True
        if (info.st_mtime_ns, info.st_size) != stamp:
            return True
    return False
