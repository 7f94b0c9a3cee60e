"""The configuration memo's way back from a warm child to the server (:mod:`flowenv.config.memo`).

The memo pays only across runs, and each run is a fresh fork: what a child
learnt dies with it unless it is sent back. So before each fork the server
opens a pipe (:func:`open_channel`); the child, once its client has its exit
status 0 and no longer waits, writes :func:`flowenv.config.memo.export` into
it (:func:`send`) and exits; the server reads it as it arrives, registered in
its selector beside the connections (:class:`MemoReader`: never a blocking
read, a size cap, and a child that dies mid-send leaves a short payload that
is dropped), and adopts it (:func:`receive`), so the next fork inherits it.

With the memo come the (mtime, size) stamps of every module the child had
loaded: the server adds those it did not load itself to the stamps it
checks before each fork, so it exits (and its memo with it) when any code
that computed an entry changes on disk.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Container
from typing import Any

from flowenv.warm.stamps import module_stamps

#: Read at most this much per wake-up, so one large payload never holds up the accept loop.
_CHUNK = 256 << 10


def open_channel() -> tuple[int, int] | None:
    """A pipe (read end, write end) for one child's memo; None when none can be had (no fds)."""
    try:
        read, write = os.pipe()
    except OSError:
        return None
    os.set_blocking(read, False)
    return read, write


def close_channel(channel: tuple[int, int] | None) -> None:
    for fd in channel or ():
        with contextlib.suppress(OSError):
            os.close(fd)


class MemoReader:
    """The read end of one child's channel, and what has arrived of its payload so far."""

    __slots__ = ("data", "fd", "pid")

    def __init__(self, fd: int, pid: int = 0) -> None:
        self.fd = fd
        #: The child writing it.
        self.pid = pid
        self.data = bytearray()

    def read(self) -> bytes | bool:
        """What has arrived: the whole payload at EOF, True to wait for more, False to drop it."""
        from flowenv.config.memo import MAX_PAYLOAD

        try:
            chunk = os.read(self.fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return bytes(self.data)
        self.data += chunk
        return len(self.data) <= MAX_PAYLOAD

    def drain(self) -> bytes | bool:
        """:meth:`read` for as long as there is something to read now: for a child that
        has exited, what is left of its payload is in the pipe's buffer."""
        import select

        while True:
            outcome = self.read()
            if outcome is not True or not select.select([self.fd], [], [], 0)[0]:
                return outcome

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def preserving(run: Callable[[], None]) -> None:
    """``run()`` (a spare's warm-up on a sample project) with the memo put back as it was:
    the sample's configuration would otherwise push out the one the next lock needs."""
    from flowenv.config import memo

    saved = memo.snapshot()
    try:
        run()
    finally:
        memo.restore(saved)


def receive(payload: bytes, stamps: dict[str, tuple[int, int]]) -> bool:
    """Adopt a child's memo; add its modules' stamps to ``stamps``. False if it was unusable."""
    from flowenv.config import memo

    extra = memo.adopt(payload)
    if not isinstance(extra, dict):
        return False
    for path, stamp in extra.items():
        stamps.setdefault(path, stamp)
    return True


#: In a child: the write end of its channel, the memo it was forked with and the
#: module files the server already watches (set by :func:`in_child` right after the fork).
_child_fd: int | None = None
_inherited: Any = None
_known: Container[str] = ()


def in_child(channel: tuple[int, int] | None, known: Container[str]) -> None:
    """In a child just forked (or a spare): keep its channel's write end, close the read
    end, and note what it starts from (``known``: the module files the server stamps)."""
    global _child_fd, _inherited, _known
    if channel is None:
        return
    os.close(channel[0])
    _child_fd = channel[1]
    from flowenv.config import memo

    _inherited = memo.inherited()
    _known = known


def send_back() -> None:
    """Send this child's memo through its channel, if it has one."""
    if _child_fd is not None:
        send(_child_fd, _inherited, _known)


def send(fd: int, since: Any, known: Container[str] = ()) -> None:
    """Write this process's memo (a delta against ``since``) into ``fd``; called after
    the client has its status.

    The client's stdio is let go first: a shell pipeline or a caller reading
    the command's output waits for EOF, not for the memo. The write blocks
    only on the pipe's buffer, which the server drains as it arrives. With
    the memo go the stamps of the modules this process loaded that are not
    in ``known``.
    """
    memo = sys.modules.get("flowenv.config.memo")
    if memo is None:
        return  # no configuration was loaded: nothing was learnt
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    view = memoryview(memo.export(since, module_stamps(skip=known)))
    while view:
        view = view[os.write(fd, view) :]
