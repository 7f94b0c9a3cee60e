"""The bytes the client and server exchange: NUL-separated fields, a version tag first.

Standard library only and no ``json``: the client imports this on every
``flowenv lock`` before anything else, so each millisecond counts.

A request is ``<4-byte big-endian length><VERSION>\\0<kind>\\0<field>\\0...``;
a run request's fields are the cwd, the umask (octal), the argv count, the
argv and then the environment as ``NAME=VALUE``. Every reply is one
``<word> <value>\\0`` token: ``pid N``, ``exit N``; ``server N``,
``served N``, ``spare N`` (a status).
"""

from __future__ import annotations

import os

# Not `from typing import TYPE_CHECKING`: see flowenv.lockfiles.freshness.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Bumped whenever the layout changes: a server of another version refuses the request.
VERSION = b"flowenv-warm/1"
RUN = b"run"
STATUS = b"status"
STOP = b"stop"
#: The largest request accepted (an environment of a few hundred kB is already absurd).
MAX_REQUEST = 4 << 20


class Request:
    """One decoded request (only ``kind`` for status and stop)."""

    __slots__ = ("argv", "cwd", "environ", "kind", "umask")

    def __init__(
        self,
        kind: bytes,
        cwd: bytes = b"",
        umask: int = 0o022,
        argv: list[bytes] | None = None,
        environ: dict[bytes, bytes] | None = None,
    ) -> None:
        self.kind = kind
        self.cwd = cwd
        self.umask = umask
        self.argv = argv or []
        self.environ = environ or {}


def encode_request(
    kind: bytes,
    cwd: str = "",
    umask: int = 0,
    argv: Sequence[str] = (),
    environ: Mapping[bytes, bytes] | None = None,
) -> bytes:
    """The request's bytes, length prefix included."""
    fields = [VERSION, kind]
    if kind == RUN:
        fields += [os.fsencode(cwd), b"%o" % umask, b"%d" % len(argv)]
        fields += [os.fsencode(arg) for arg in argv]
        fields += [name + b"=" + value for name, value in (environ or {}).items()]
    body = b"\0".join(fields) + b"\0"
    return len(body).to_bytes(4, "big") + body


def decode_request(body: bytes) -> Request | None:
    """The request in ``body`` (length prefix removed); None when malformed or another version."""
    fields = body.split(b"\0")
    if len(fields) < 3 or fields[0] != VERSION or fields[-1] != b"":
        return None
    kind, rest = fields[1], fields[2:-1]
    if kind != RUN:
        return Request(kind) if not rest else None
    try:
        cwd, umask, count = rest[0], int(rest[1], 8), int(rest[2])
    except (IndexError, ValueError):
        return None
    argv = rest[3 : 3 + count]
    if count < 0 or len(argv) != count:
        return None
    environ: dict[bytes, bytes] = {}
    for item in rest[3 + count :]:
        name, sep, value = item.partition(b"=")
        if not sep or not name:
            return None
        environ[name] = value
    return Request(kind, cwd, umask, argv, environ)


def reply(word: bytes, value: int) -> bytes:
    return b"%s %d\0" % (word, value)


def parse_reply(token: bytes) -> tuple[bytes, int] | None:
    """``(word, value)`` of one token (its NUL removed); None when malformed."""
    word, _, value = token.partition(b" ")
    try:
        return word, int(value)
    except ValueError:
        return None


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an ``SCM_RIGHTS`` message of ``recvmsg``'s ancillary data carries."""
    import array
    import socket

    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            fds.extend(received)
    return fds
