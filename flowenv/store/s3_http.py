"""HTTP for flowenv's S3 client: a pool of keep-alive connections per host, one exchange at a time.

Knows nothing of S3: it sends a request (bytes, or a slice of a file read
again on every try) and hands back the status, headers and body, or streams
the body into a file. Connections are pooled per host, not per thread:
sync's and hydrate's worker threads come and go, and a connection left in a
finished thread would stay open until the process ends. A pooled connection
the server closed while idle is reopened once, silently: that is keep-alive,
not a failure.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import weakref
from collections.abc import Mapping
from typing import IO, Any

import attrs

READ_BLOCK = 1 << 20
#: Bytes of an error answer's body read (its code and message are at the start).
ERROR_BODY_MAX = 64 << 10
#: Idle connections kept per host: enough for sync's and hydrate's 16 workers.
MAX_IDLE = 32
#: Where a connection goes: (scheme, host, port).
Where = tuple[str, str, "int | None"]


class EndpointConnectionError(ConnectionError):
    """The endpoint's name does not resolve: no answer, as far as flowenv is concerned."""


@attrs.frozen
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class FileBody:
    """A request body read from a file: ``length`` bytes at ``offset`` (re-read on a retry)."""

    path: str
    offset: int
    length: int

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            left = self.length
            while left:
                block = handle.read(min(READ_BLOCK, left))
                if not block:
                    raise OSError(f"{self.path} shrank while being uploaded")
                digest.update(block)
                left -= len(block)
        return digest.hexdigest()


class _Slice:
    """Exactly ``body.length`` bytes of an open file, as http.client reads a request body.

    http.client reads a file to its end: bytes a file gained since it was
    measured would follow the request on the keep-alive connection, where the
    server reads them as the next request (and its answer is taken for ours).
    A file that lost bytes would leave the server waiting for them.
    """

    def __init__(self, handle: IO[bytes], body: FileBody) -> None:
        self._handle = handle
        self._body = body
        self._left = body.length

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        block = self._handle.read(want) if want else b""
        if want and not block:
            raise OSError(f"{self._body.path} shrank while being uploaded")
        self._left -= len(block)
        return block


class ConnectionPool:
    """Keep-alive connections per host with the given timeouts and TLS verification."""

    def __init__(self, connect_timeout: float, read_timeout: float, verify: bool | str) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify = verify
        self._idle: dict[Where, list[http.client.HTTPConnection]] = {}
        self._ssl: Any = None
        self._guard = threading.Lock()
        weakref.finalize(self, _close_all, self._idle)

    def exchange(
        self,
        where: Where,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | FileBody,
        into: str | None = None,
    ) -> Answer:
        """One request on an idle pooled connection (a stale one is reopened once).

        ``into``: a successful answer's body is written to that file instead.
        """
        for fresh in (False, True):
            connection, reused = self._checkout(where, fresh)
            try:
                handle: IO[bytes] | None = None
                data: bytes | _Slice
                if isinstance(body, FileBody):
                    handle = open(body.path, "rb")  # noqa: SIM115 (closed below)
                    handle.seek(body.offset)
                    data = _Slice(handle, body)
                else:
                    data = body
                try:
                    connection.request(method, url, body=data, headers=dict(headers))
                finally:
                    if handle is not None:
                        handle.close()
                response = connection.getresponse()
                answer = _read(response, into)
                if not response.isclosed():  # a body left unread: the connection is spent
                    connection.close()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                connection.close()
                if not reused or fresh:
                    raise
            except BaseException:
                connection.close()
                raise
            else:
                self._checkin(where, connection)
                return answer
        raise AssertionError("unreachable")

    def idle(self, where: Where) -> list[http.client.HTTPConnection]:
        """The idle connections to ``where`` (for tests)."""
        return list(self._idle.get(where, []))

    def close(self) -> None:
        """Close every idle connection (also done when the pool is collected)."""
        _close_all(self._idle)

    def _checkout(self, where: Where, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        """An idle keep-alive connection to ``where`` (reused: True), or a new one."""
        if not fresh:
            with self._guard:
                idle = self._idle.get(where)
                connection = idle.pop() if idle else None
            if connection is not None:
                return connection, True
        scheme, host, port = where
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host,
                port,
                timeout=self.connect_timeout,
                context=self._ssl_context(),
                blocksize=1 << 16,
            )
        else:
            connection = http.client.HTTPConnection(
                host, port, timeout=self.connect_timeout, blocksize=1 << 16
            )
        try:
            connection.connect()
        except socket.gaierror as exc:
            raise EndpointConnectionError(f"cannot resolve {host}: {exc.strerror}") from None
        assert connection.sock is not None
        connection.sock.settimeout(self.read_timeout)
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, False

    def _checkin(self, where: Where, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:  # the server said "Connection: close"
            return
        with self._guard:
            idle = self._idle.setdefault(where, [])
            if len(idle) < MAX_IDLE:
                idle.append(connection)
                return
        connection.close()

    def _ssl_context(self) -> Any:
        if self._ssl is None:
            import ssl

            verify = self.verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl


def _read(response: http.client.HTTPResponse, into: str | None) -> Answer:
    headers = {k.lower(): v for k, v in response.getheaders()}
    if into is not None and response.status < 300:
        with open(into, "wb") as out:
            while block := response.read(READ_BLOCK):
                out.write(block)
        _check_complete(response)
        return Answer(response.status, headers, b"")
    # In blocks: read() allocates the whole claimed Content-Length at once (a
    # lying server's terabyte is a MemoryError). An error's body is only its
    # code and message: a bounded head of it is enough, and the connection,
    # its body unread, is then closed by the caller instead of reused.
    limit = ERROR_BODY_MAX if response.status >= 300 else None
    blocks: list[bytes] = []
    size = 0
    while limit is None or size < limit:
        block = response.read(READ_BLOCK if limit is None else min(READ_BLOCK, limit - size))
        if not block:
            break
        blocks.append(block)
        size += len(block)
    if limit is None:
        _check_complete(response)
    return Answer(response.status, headers, b"".join(blocks))


def _check_complete(response: http.client.HTTPResponse) -> None:
    # read(n) returns b"" when the server closes early, where read() would raise.
    if response.length:
        raise http.client.IncompleteRead(b"", response.length)


def _close_all(idle: dict[Where, list[http.client.HTTPConnection]]) -> None:
    for connections in list(idle.values()):
        while connections:
            connections.pop().close()
