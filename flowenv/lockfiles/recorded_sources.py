"""The source hash the project's locks record for a local package whose directory is absent.

An executor may have the project's checkout without a local package's source
(the built wheel is in the store). ``hydrate`` and ``run`` inside such a
checkout still check that the lock is fresh for everything else: the loader
takes the missing package's hash from the locks themselves
(:func:`flowenv.config.load.load_config`'s ``missing_source``). Locks that
disagree on it (one of them stale) give no answer, and the loader reports the
missing directory as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowenv.errors import FlowenvError
from flowenv.lockfiles.freshness import CONDA_LOCK_NAME, lock_files


def recorded_source_hash(root: Path, lock_root: Path | None, directory: str) -> str | None:
    """The one hash every lock under ``lock_root`` records for ``directory`` (relative to
    ``root``), or None when none or several do."""
    if lock_root is None or not lock_root.is_dir():
        return None
    wanted = os.path.normpath(directory)
    found: set[str] = set()
    for lock in lock_files(lock_root):
        try:
            entries = _local_entries(lock)
        except FlowenvError:
            continue  # an unreadable lock vouches for nothing
        for relative, digest in entries:
            absolute = os.path.normpath(os.path.join(lock.parent, relative))
            if os.path.relpath(absolute, root) == wanted and len(digest) == 64:
                found.add(digest)
    return found.pop() if len(found) == 1 else None


def _local_entries(lock: Path) -> list[tuple[str, str]]:
    """(directory relative to the lock's folder, source hash) of each local package in ``lock``."""
    if lock.name == CONDA_LOCK_NAME:
        from flowenv.lockfiles.condalock import read_conda_lock

        return [(p.directory, p.source_hash) for p in read_conda_lock(lock).packages if p.directory]
    from flowenv.lockfiles.pylock import read_pylock

    return [
        (p.directory, p.source_hash) for p in read_pylock(lock) if p.directory and p.source_hash
    ]
