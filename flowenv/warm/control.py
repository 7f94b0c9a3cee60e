"""``flowenv server status|stop`` as a library: ask the warm server this environment would use."""

from __future__ import annotations

import os
import socket

import attrs

from flowenv.warm import framing
from flowenv.warm.location import off_reason, socket_path


@attrs.frozen(kw_only=True)
class ServerState:
    """What is known of the warm server: off (and why), or its socket and, if running, its pid."""

    off_reason: str | None = None
    socket: str | None = None
    pid: int | None = None
    #: Locks its children ran to the end (declined and killed ones not counted).
    served: int | None = None
    #: Servers of other environments (LANG, nice...) that ``stop`` ended too.
    others: int = 0
    #: The pid of its spare when one is ready for the next lock (flowenv.warm.spare).
    spare: int | None = None


def _ask(path: str, kind: bytes) -> dict[bytes, int]:
    """The server's reply tokens to ``kind``, read to the end; empty when none answers."""
    answer: dict[bytes, int] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.settimeout(10)
            connection.connect(path)
            connection.sendall(framing.encode_request(kind))
            data = b""
            while chunk := connection.recv(4096):
                data += chunk
        except OSError:
            return answer
    for token in data.split(b"\0"):
        parsed = framing.parse_reply(token)
        if parsed is not None:
            answer[parsed[0]] = parsed[1]
    return answer


def state() -> ServerState:
    """Whether a warm server would be used here, where, and whether one is running."""
    reason = off_reason()
    if reason is not None:
        return ServerState(off_reason=reason)
    path = socket_path()
    if path is None:
        return ServerState(off_reason="its directory is missing, not private or too long a path")
    answer = _ask(path, framing.STATUS)
    return ServerState(
        socket=path,
        pid=answer.get(b"server"),
        served=answer.get(b"served"),
        spare=answer.get(b"spare") or None,
    )


def stop() -> ServerState:
    """End the running server (if any), and those of other environments in its directory.

    Its state as it was, with how many others were stopped. Returns once they have let go.
    """
    before = state()
    if before.socket is None:
        return before
    if before.pid is not None:
        _ask(before.socket, framing.STOP)
    # Each environment that differs in what the socket's name hashes (LANG,
    # PYTHON*, nice...) has a server of its own: `stop` is for all of them.
    directory = os.path.dirname(before.socket)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    others = 0
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith("lock-") and name.endswith(".sock") and path != before.socket:
            others += b"server" in _ask(path, framing.STOP)
    return attrs.evolve(before, others=others)
