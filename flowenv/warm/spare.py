"""The spare: a child the warm server forks ahead of the next ``flowenv lock``.

A child forked at the moment of a request starts with every page of the
server's heap shared: the lock's first touches (reference counts, the
allocator) copy ~1400 of them, and the fork itself is ~1 ms more before the
child runs. A spare pays both while nobody waits: forked when the server is
idle (no request arriving, no child running), it runs ``lock --check`` on a
small sample project, which touches what a lock touches, says it is ready
and waits on its channel (a socketpair to the server).

The server hands it the next request as it would have handed a fork: the
request's bytes and four descriptors (the client's connection, its stdin,
stdout and stderr) over the channel, then, after its check of its own
modules on disk, a one-byte verdict (``b"1"``: unchanged). From there the
spare is a child like any other (:func:`flowenv.warm.child.serve`).

The channel's end also ends the spare: a server that exits, is killed or
stops closes it, and an unused spare leaves with
:data:`~flowenv.warm.child.DECLINED_STATUS` (never counted as served).
A request that comes before the spare is ready is served by a fork, as
before; the spare waits for the next.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
from collections.abc import Callable

from flowenv.warm import framing

#: What the spare sends once it is ready.
READY = b"r"
#: The descriptors handed over: the connection, then the client's stdin, stdout, stderr.
_HANDED = 4
_FD_BYTES = array.array("i").itemsize * _HANDED
#: How long the server waits on a channel that does not take a request at once.
_HAND_TIMEOUT = 5.0


class Spare:
    """The server's side of one spare: its pid, its channel, whether it said it is ready."""

    __slots__ = ("channel", "pid", "ready")

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.ready = False

    @classmethod
    def fork(cls, forget: Callable[[], None], prepare: Callable[[], None]) -> Spare | None:
        """Fork a spare; None when it cannot be forked (the next request is forked as before).

        ``forget`` closes, in the spare, what it must not hold of the server's
        (listener, lock, selector, connections); ``prepare`` warms it up.
        """
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            try:
                ours.close()
                forget()
                _wait(theirs, prepare)
            finally:
                os._exit(1)  # never back into the server's loop, whatever happened
        theirs.close()
        ours.setblocking(False)
        return cls(pid, ours)

    def heard(self) -> bool:
        """Read what the spare said (its channel is readable): False when it is gone."""
        try:
            said = self.channel.recv(16)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if said == READY:
            self.ready = True
            return True
        return False

    def hand(self, data: bytes | bytearray, connection: socket.socket, fds: list[int]) -> bool:
        """Give the spare a whole request (``data``, length prefix included) and its
        descriptors; False when it could not take it (it died): fork instead."""
        self.channel.settimeout(_HAND_TIMEOUT)
        try:
            descriptors = array.array("i", [connection.fileno(), *fds])
            sent = self.channel.sendmsg(
                [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, descriptors.tobytes())]
            )
            if sent < len(data):
                self.channel.sendall(data[sent:])
        except OSError:
            return False
        return True

    def tell(self, current: bool) -> None:
        """Send the verdict on the server's modules, and let go of the spare."""
        with contextlib.suppress(OSError):  # it is gone already
            self.channel.sendall(b"1" if current else b"0")
        self.close()

    def close(self) -> None:
        self.channel.close()


def _wait(channel: socket.socket, prepare: Callable[[], None]) -> None:
    """The spare's life: warm up, say so, wait for a request and serve it (never returns)."""
    import signal

    from flowenv.warm.child import DECLINED_STATUS, serve

    # The server's handlers (SIGCHLD reaps its children, SIGTERM exits its
    # loop) are not ours; `serve` sets a child's own once it has a client.
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        prepare()
    try:
        channel.sendall(READY)
        received = _receive(channel)
    except OSError:
        received = None
    if received is None:
        os._exit(DECLINED_STATUS)  # the server is gone, or sent no whole request
    connection, request, fds = received
    # The verdict comes on the channel after the request: serve reads it there.
    serve(connection, request, fds, channel.detach())


def _receive(channel: socket.socket) -> tuple[socket.socket, framing.Request, list[int]] | None:
    """The request and its descriptors, read to the request's last byte and no further
    (the verdict byte that follows is :func:`flowenv.warm.child.serve`'s to read)."""
    head, ancillary, flags, _ = channel.recvmsg(4, socket.CMSG_SPACE(_FD_BYTES))
    fds = framing.received_fds(ancillary)
    while len(head) < 4:
        more = channel.recv(4 - len(head))
        if not more:
            break
        head += more
    body = bytearray()
    length = int.from_bytes(head, "big") if len(head) == 4 else -1
    while length >= 0 and len(body) < length:
        more = channel.recv(min(length - len(body), 1 << 16))
        if not more:
            break
        body += more
    request = framing.decode_request(bytes(body)) if len(body) == length else None
    if request is None or len(fds) != _HANDED or flags & socket.MSG_CTRUNC:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        return None
    connection = socket.socket(fileno=fds[0])
    connection.setblocking(True)
    return connection, request, fds[1:]
