"""Scratch directories whose removal need not hold up the caller.

Removing uv's scratch directory waits for the disk: uv renames its output
over the previous lock flowenv put there, ext4 (``auto_da_alloc``) starts
writing the new file back at once, and unlinking a file under writeback waits
for that write. That was 1.5 ms of each resolution in a one-step re-lock, on
its critical path. Within :func:`removed_later`, :func:`remove` hands the
directory to a background thread instead, and leaving the scope waits for
every such removal: nothing is left behind, even in a warm server's child,
which ends with ``os._exit`` (no thread outlives it unjoined).
"""

from __future__ import annotations

import _thread
import contextlib
import shutil
from collections.abc import Iterator

#: The open scope's pending removals, as locks their threads release (empty: no scope).
_pending: list[list[_thread.LockType]] = []
_guard = _thread.allocate_lock()


@contextlib.contextmanager
def removed_later() -> Iterator[None]:
    """Let :func:`remove` work in the background until the scope ends, then wait for it all.

    Within an open scope (a caller's, or another thread's), this one adds
    nothing: its removals are the outer scope's to wait for. A removal is
    either done at once or registered with a scope still open, which waits
    for it: none can be forgotten.
    """
    with _guard:
        outer = bool(_pending)
        if not outer:
            _pending.append([])
    if outer:
        yield
        return
    try:
        yield
    finally:
        with _guard:
            removals = _pending.pop()
        for done in removals:
            done.acquire()


def remove(directory: str) -> None:
    """Remove ``directory`` and everything in it: now, or in the background within a scope.

    Now, errors propagate as ``shutil.rmtree``'s do; in the background they are
    ignored (a scratch directory in the temp dir is not worth failing a lock for).
    """
    done = _thread.allocate_lock()
    done.acquire()
    with _guard:
        later = bool(_pending)
        if later:
            _pending[-1].append(done)
    if not later:
        shutil.rmtree(directory)
        return

    def run() -> None:
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            done.release()

    # _thread, not threading: Thread.start() waits until the new thread runs
    # (milliseconds on a busy machine); this one is joined through its lock.
    try:
        _thread.start_new_thread(run, ())
    except RuntimeError:  # no thread to be had: remove it here, as without a scope
        done.release()
        shutil.rmtree(directory)
