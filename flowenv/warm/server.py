"""The warm server: import and warm up the lock path once, then fork a child per ``flowenv lock``.

Started in the background by the first in-process ``flowenv lock``
(:func:`flowenv.warm.client.start_server`) with the socket path as its one
argument. Single-threaded (forking a threaded process is unsafe): it takes
an exclusive ``flock`` on ``<socket>.lock`` (a rival or a live server: exit
quietly; a stale socket file left by a dead one: removed), imports and
exercises the lock path so that lazily compiled regexes and caches are
filled, freezes the heap for the children's copy-on-write, and binds.

Before each fork it re-checks the size and mtime of every module file it
has loaded: when flowenv (or attrs, or anything) changed on disk, it declines
the request (the client runs it in-process), removes its socket (only if it
is still its own) and exits, and the next lock starts a fresh server.

It exits after ``FLOWENV_SERVER_IDLE`` seconds (default 600) without a
request, and on ``flowenv server stop``.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import gc
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from flowenv.warm import framing
from flowenv.warm.location import socket_path

DEFAULT_IDLE = 600.0
#: How long a connected client may take to send its request before it is dropped.
_REQUEST_TIMEOUT = 5.0
_FD_BYTES = array.array("i").itemsize * 3
#: Seconds between checks that the socket file is still this server's.
_CHECK_EVERY = 5.0


def idle_seconds() -> float:
    try:
        return float(os.environ.get("FLOWENV_SERVER_IDLE", DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


def module_stamps() -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every loaded module's file: what a changed install changes."""
    stamps: dict[str, tuple[int, int]] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path not in stamps:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                stamps[path] = (info.st_mtime_ns, info.st_size)
    return stamps


def changed(stamps: dict[str, tuple[int, int]]) -> bool:
    for path, stamp in stamps.items():
        try:
            info = os.stat(path)
        except OSError:
            return True
        if (info.st_mtime_ns, info.st_size) != stamp:
            return True
    return False


_SAMPLE_CONFIG = """\
[project]
name = "warm-up"
platforms = ["linux-64", "osx-arm64"]
pypi.index-url = "file:///nonexistent/flowenv-warm-up/simple"

[base]
python = "3.11"
pypi.packages = { attrs = ">=23", numpy = "==1.26.*" }

[steps.train]
pypi.packages = { "torch[cuda]" = ">=2" }
"""

_SAMPLE_PYLOCK = """\
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "attrs"
version = "23.2.0"
wheels = [{ url = "https://example.invalid/attrs-23.2.0-py3-none-any.whl", \
hashes = { sha256 = "%s" } }]
""" % ("0" * 64)


#: Modules the lock path imports only when it gets that far (a resolution, a write).
_LATE_IMPORTS = (
    "encodings.ascii",
    "queue",
    "flowenv._atomic",
    "flowenv._threads",
    "flowenv.inputs",
    "flowenv.lock",
    "flowenv.resolution.pypi",
    "flowenv.lockfiles.pylock",
    "flowenv.engines.uv",
    "flowenv.solve_groups",
)


def warm_up() -> None:
    """Run the lock path on a small project, so the children find it all loaded and cached.

    The lock fails (its index does not exist, uv is offline) after the
    configuration, the envs, the freshness check and uv's start-up have all
    run once; caches and uv's state go to a temporary directory. Best effort:
    a failure here only means a colder child.
    """
    import importlib

    from flowenv.cli import run_command

    for name in _LATE_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="flowenv-warm-") as directory:
        root = Path(directory)
        (root / "flowenv.toml").write_text(_SAMPLE_CONFIG, encoding="utf-8")
        os.environ.update(
            UV_OFFLINE="1",
            UV_CACHE_DIR=str(root / "uv-cache"),
            FLOWENV_CACHE_DIR=str(root / "flowenv-cache"),
        )
        try:
            with open(os.devnull, "w") as null:
                for argv in (["lock", "--check"], ["lock"]):
                    with (
                        contextlib.suppress(Exception, SystemExit),
                        contextlib.redirect_stdout(null),
                        contextlib.redirect_stderr(null),
                    ):
                        run_command(["-q", "-C", directory, *argv], program=False)
            with contextlib.suppress(Exception):
                from flowenv.lockfiles.pylock import parse_pylock

                parse_pylock(_SAMPLE_PYLOCK)
        finally:
            os.environ.clear()
            os.environ.update(saved)


class Server:
    def __init__(self, path: str, listener: socket.socket, lock: int) -> None:
        self.path = path
        self.lock = lock
        self.listener = listener
        info = os.stat(path)
        self.inode = (info.st_dev, info.st_ino)
        self.stamps = module_stamps()
        #: Children that ran their command to the end (not declined, not killed).
        self.served = 0

    def reap(self, *_: object) -> None:
        """Collect ended children (the SIGCHLD handler), counting those that served."""
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    return
                if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                    self.served += 1

    def close(self) -> None:
        """Stop listening; remove the socket file only if it is still this server's."""
        self.listener.close()
        if self.owns_socket():
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def owns_socket(self) -> bool:
        try:
            info = os.lstat(self.path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self.inode

    def serve(self, idle: float) -> None:
        deadline = time.monotonic() + idle
        while True:
            # Woken every few seconds: a server whose socket file was removed
            # can get no request, and would hold the lock a new one needs.
            self.listener.settimeout(max(0.01, min(_CHECK_EVERY, deadline - time.monotonic())))
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                if time.monotonic() >= deadline or not self.owns_socket():
                    return
                continue
            deadline = time.monotonic() + idle
            with connection:
                if not self.handle(connection):
                    return

    def handle(self, connection: socket.socket) -> bool:
        """Answer one connection; False when the server must exit."""
        connection.settimeout(_REQUEST_TIMEOUT)
        if not _same_user(connection):
            return True
        received = _receive(connection)
        if received is None:
            return True
        request, fds = received
        try:
            if request.kind == framing.STATUS:
                self.reap()
                connection.sendall(
                    framing.reply(b"server", os.getpid()) + framing.reply(b"served", self.served)
                )
                return True
            if request.kind == framing.STOP:
                self.close()
                connection.sendall(framing.reply(b"server", os.getpid()))
                return False
            if request.kind != framing.RUN or len(fds) != 3:
                return True
            if changed(self.stamps):
                return False  # the client, seeing no pid, runs the command itself
            if os.fork() == 0:
                # The child must not keep the flock alive after the server is gone.
                self.listener.close()
                os.close(self.lock)
                connection.settimeout(None)
                try:
                    from flowenv.warm.child import serve

                    serve(connection, request, fds)
                finally:
                    os._exit(1)  # never back into the accept loop, whatever happened
            return True
        except OSError:
            return True
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _same_user(connection: socket.socket) -> bool:
    """The peer runs as our uid (SO_PEERCRED on Linux, getpeereid elsewhere)."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return bool(uid == os.getuid())
    # Elsewhere the socket's 0700 directory is the check (no portable peer-credential call).
    return True


def _receive(connection: socket.socket) -> tuple[framing.Request, list[int]] | None:
    fds: list[int] = []
    try:
        data, ancillary, _flags, _addr = connection.recvmsg(65536, socket.CMSG_SPACE(_FD_BYTES))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if len(data) < 4:
            raise OSError("short request")
        length = int.from_bytes(data[:4], "big")
        if length > framing.MAX_REQUEST:
            raise OSError("request too large")
        body = bytearray(data[4:])
        while len(body) < length:
            chunk = connection.recv(min(65536, length - len(body)))
            if not chunk:
                raise OSError("request cut short")
            body += chunk
        request = framing.decode_request(bytes(body))
        if request is None:
            raise OSError("malformed request")
        return request, fds
    except OSError:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        return None


def main(argv: Sequence[str]) -> int:
    """``<socket path>``: serve there until idle, stopped or stale."""
    if len(argv) != 1:
        print("usage: python -m flowenv.warm.server SOCKET", file=sys.stderr)
        return 2
    path = argv[0]
    # The client computed this path; a server that would compute another one
    # (other interpreter options, another flowenv) would not behave like it.
    # (Before the chdir: a relative FLOWENV_SERVER_DIR is the client's cwd's.)
    if socket_path(create=True) != path:
        return 0
    os.chdir("/")  # hold no directory of the user's
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # a live server, or a rival starting this very moment
    warm_up()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead server's socket: we hold the lock, so nobody else's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    server = Server(path, listener, lock)
    signal.signal(signal.SIGCHLD, server.reap)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    gc.collect()
    gc.freeze()
    try:
        server.serve(idle_seconds())
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
