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
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from flowenv.warm import framing, memo_channel
from flowenv.warm.location import NAMESPACES, socket_path
from flowenv.warm.spare import Spare
from flowenv.warm.stamps import changed, module_stamps

DEFAULT_IDLE = 600.0
#: How long a connected client may take to send its whole request before it is dropped.
_REQUEST_TIMEOUT = 5.0
#: Connections whose request is still arriving; beyond this the oldest is dropped
#: (its client runs in-process). Each holds at most one request (4 MiB) and 3 fds.
_MAX_ARRIVING = 16
_FD_BYTES = array.array("i").itemsize * 3
#: Seconds between checks that the socket file is still this server's.
_CHECK_EVERY = 5.0


def idle_seconds() -> float:
    try:
        return float(os.environ.get("FLOWENV_SERVER_IDLE", DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


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
    "resource",  # each child takes its client's limits (~0.4 ms to import)
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

    for name in _LATE_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _run_sample(["lock", "--check"], ["lock"])
    from flowenv.cli.parser import kept_parser

    kept_parser("lock")  # every child's `lock` parses with it
    with contextlib.suppress(Exception):
        from flowenv.lockfiles.pylock import parse_pylock

        parse_pylock(_SAMPLE_PYLOCK)


def prepare_spare() -> None:
    """What a spare (:mod:`flowenv.warm.spare`) runs while it waits: the sample's
    ``lock --check``, which touches what a lock touches short of starting uv."""
    _run_sample(["lock", "--check"])


def _run_sample(*commands: list[str]) -> None:
    """Run each ``flowenv lock`` command line on the sample project, output discarded."""
    from flowenv.cli import answer

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
                for argv in commands:
                    with (
                        contextlib.suppress(Exception, SystemExit),
                        contextlib.redirect_stdout(null),
                        contextlib.redirect_stderr(null),
                    ):
                        answer(["-q", "-C", directory, *argv], program=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)


class _Arriving:
    """A connection whose request is still arriving: read as it comes, never waited on."""

    __slots__ = ("connection", "data", "deadline", "fds")

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.data = bytearray()
        self.fds: list[int] = []

    def read(self) -> framing.Request | bool:
        """What has arrived: the whole request, True to wait for more, False to drop it."""
        try:
            data, ancillary, flags, _addr = self.connection.recvmsg(
                65536, socket.CMSG_SPACE(_FD_BYTES)
            )
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.fds.extend(framing.received_fds(ancillary))
        # More descriptors than a request's three (the kernel closed any beyond
        # the buffer): a client of ours never sends them.
        if not data or len(self.fds) > 3 or flags & socket.MSG_CTRUNC:
            return False
        self.data += data
        if len(self.data) < 4:
            return True
        length = int.from_bytes(self.data[:4], "big")
        if length > framing.MAX_REQUEST or len(self.data) - 4 > length:
            return False
        if len(self.data) - 4 < length:
            return True
        request = framing.decode_request(bytes(self.data[4:]))
        return False if request is None else request

    def close(self) -> None:
        self.connection.close()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class Server:
    def __init__(self, path: str, listener: socket.socket, lock: int) -> None:
        self.path = path
        self.lock = lock
        self.listener = listener
        info = os.stat(path)
        self.inode = (info.st_dev, info.st_ino)
        self.stamps = module_stamps()
        self.confinement = confinement("self")
        #: Children that ran their command to the end (not declined, not killed).
        self.served = 0
        # Requests are read as they arrive, from every connection at once: a
        # client that stalls mid-request (stopped with Ctrl-Z, or hostile)
        # delays no other lock.
        self.arriving: dict[socket.socket, _Arriving] = {}
        #: Children's configuration memos still arriving (flowenv.warm.memo_channel), by fd.
        self.memos: dict[int, memo_channel.MemoReader] = {}
        self.selector = selectors.DefaultSelector()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ)
        #: Children serving a request now (a spare's pid joins once it has one).
        self.active: set[int] = set()
        self.spare: Spare | None = None
        # SIGCHLD wakes the loop (signal.set_wakeup_fd): a child that ended is
        # the moment to fork the next spare, not the next timeout.
        self.wakeup, self.wakeup_write = os.pipe()
        os.set_blocking(self.wakeup, False)
        os.set_blocking(self.wakeup_write, False)
        self.selector.register(self.wakeup, selectors.EVENT_READ)

    def reap(self) -> None:
        """Collect ended children, counting those that served; drop a spare that was stopped.

        Only ever called from the loop, never from the SIGCHLD handler (which
        only wakes the loop): a child that ended at once could otherwise be
        reaped between its fork and its entry in ``active``, and stay there for
        ever, and with it no spare would be forked again.
        """
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
                if pid == 0:
                    break
                if os.WIFSTOPPED(status):
                    # A stopped spare would take a request and sit on it (the
                    # client waiting) until continued: it is let go (it leaves
                    # when continued), and the next request is forked. A stopped
                    # child serving a client (Ctrl-Z) is simply stopped.
                    if self.spare is not None and pid == self.spare.pid:
                        self.drop_spare()
                    continue
                if pid in self.active and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                    self.served += 1
                self.active.discard(pid)

    def close(self) -> None:
        """Stop listening; remove the socket file only if it is still this server's."""
        self.listener.close()
        if self.owns_socket():
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        # Their clients, seeing no pid, run their commands themselves.
        for arriving in list(self.arriving.values()):
            self.drop(arriving)
        if self.spare is not None:
            self.spare.close()  # it sees the channel end and leaves
            self.spare = None

    def forget(self) -> None:
        """In a child: drop what is the server's. It must not keep the flock alive after
        the server is gone, nor hold other clients' connections or the spare's channel
        (their ends would never see EOF), nor write our SIGCHLD wake-ups."""
        signal.set_wakeup_fd(-1)
        self.listener.close()
        os.close(self.lock)
        self.selector.close()
        os.close(self.wakeup)
        os.close(self.wakeup_write)
        for other in self.arriving.values():
            other.close()
        if self.spare is not None:
            self.spare.close()
        for reader in self.memos.values():
            reader.close()

    def keep_spare(self) -> None:
        """Fork a spare when there is none and nothing else runs (no request arriving,
        no child serving): it warms up in time nobody waits for."""
        if self.spare is not None or self.active or self.arriving:
            return
        self.settle_memos()
        channel = memo_channel.open_channel()

        def forget() -> None:
            self.forget()
            memo_channel.in_child(channel, self.stamps)

        self.spare = Spare.fork(forget, lambda: memo_channel.preserving(prepare_spare))
        if self.spare is not None:
            self.selector.register(self.spare.channel, selectors.EVENT_READ)
            self.await_memo(channel, self.spare.pid)
        else:
            memo_channel.close_channel(channel)

    def await_memo(self, channel: tuple[int, int] | None, pid: int) -> None:
        """Read a forked child's memo as it arrives (its write end is the child's alone)."""
        if channel is None:
            return
        read, write = channel
        os.close(write)
        reader = memo_channel.MemoReader(read, pid)
        try:
            self.selector.register(read, selectors.EVENT_READ, reader)
        except (OSError, ValueError):
            reader.close()
            return
        self.memos[read] = reader

    def read_memo(self, reader: memo_channel.MemoReader, outcome: bytes | bool) -> None:
        """Take what has arrived of a child's memo; adopt it whole (a cut one is dropped).

        A spare forked before it keeps its older memo: it still serves the next
        lock sooner than a fork would, and an entry it lacks is only computed
        again (a miss costs tens of microseconds, a fork milliseconds).
        """
        if outcome is True:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(reader.fd)
        self.memos.pop(reader.fd, None)
        reader.close()
        if outcome is not False and outcome:
            memo_channel.receive(outcome, self.stamps)

    def settle_memos(self) -> None:
        """Adopt the memos of children that have exited, before a spare is forked to
        inherit them (what is left of each is in its pipe's buffer: no wait)."""
        for reader in list(self.memos.values()):
            if reader.pid not in self.active and (
                self.spare is None or reader.pid != self.spare.pid
            ):
                self.read_memo(reader, reader.drain())

    def drop_spare(self) -> None:
        if self.spare is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.spare.channel)
            self.spare.close()
            self.spare = None

    def owns_socket(self) -> bool:
        try:
            info = os.lstat(self.path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self.inode

    def drop(self, arriving: _Arriving) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(arriving.connection)
        self.arriving.pop(arriving.connection, None)
        arriving.close()

    def serve(self, idle: float) -> None:
        deadline = time.monotonic() + idle
        while True:
            now = time.monotonic()
            for arriving in [a for a in self.arriving.values() if a.deadline <= now]:
                self.drop(arriving)
            # Woken every few seconds: a server whose socket file was removed
            # can get no request, and would hold the lock a new one needs.
            wake = min(deadline, now + _CHECK_EVERY, *(a.deadline for a in self.arriving.values()))
            events = self.selector.select(max(0.01, wake - now))
            self.reap()
            if not events and not self.arriving:
                if time.monotonic() >= deadline or not self.owns_socket():
                    return
                self.keep_spare()
                continue
            for key, _ in events:
                if key.fileobj is self.listener:
                    if self.accept():
                        deadline = time.monotonic() + idle
                    continue
                if key.fileobj == self.wakeup:
                    with contextlib.suppress(OSError):
                        os.read(self.wakeup, 4096)
                    continue
                if isinstance(key.data, memo_channel.MemoReader):
                    self.read_memo(key.data, key.data.read())
                    continue
                if self.spare is not None and key.fileobj is self.spare.channel:
                    if not self.spare.heard():
                        self.drop_spare()  # it died: the next is forked when all is quiet
                    continue
                arriving = self.arriving.get(key.fileobj)  # type: ignore[call-overload]
                if arriving is None:
                    continue  # dropped by an earlier event of this round
                outcome = arriving.read()
                if outcome is True:
                    continue
                self.selector.unregister(arriving.connection)
                del self.arriving[arriving.connection]
                try:
                    if outcome is False:
                        # Unreadable, maybe from a flowenv whose wire format changed
                        # (an edited editable install): when our modules changed,
                        # leave, or its every lock would run in-process while we live.
                        if changed(self.stamps):
                            return
                    elif not self.handle(arriving, outcome):
                        return
                finally:
                    arriving.close()
            self.keep_spare()

    def accept(self) -> bool:
        """Take a new connection (from our own uid only) to read its request as it arrives."""
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return False  # e.g. out of descriptors: the client sees its connection end
        if not _same_user(connection, self.confinement):
            connection.close()
            return False
        connection.setblocking(False)
        if len(self.arriving) >= _MAX_ARRIVING:
            self.drop(min(self.arriving.values(), key=lambda a: a.deadline))
        self.arriving[connection] = _Arriving(connection, time.monotonic() + _REQUEST_TIMEOUT)
        self.selector.register(connection, selectors.EVENT_READ)
        return True

    def handle(self, arriving: _Arriving, request: framing.Request) -> bool:
        """Answer one whole request; False when the server must exit."""
        connection, fds = arriving.connection, arriving.fds
        connection.settimeout(_REQUEST_TIMEOUT)
        try:
            if request.kind == framing.STATUS:
                self.reap()
                ready = self.spare.pid if self.spare is not None and self.spare.ready else 0
                connection.sendall(
                    framing.reply(b"server", os.getpid())
                    + framing.reply(b"served", self.served)
                    + framing.reply(b"spare", ready)
                )
                return True
            if request.kind == framing.STOP:
                self.close()
                connection.sendall(framing.reply(b"server", os.getpid()))
                return False
            if request.kind != framing.RUN or len(fds) != 3:
                return True
            # Whether our modules changed on disk is decided while the child
            # starts (0.4 ms of stats off every lock's path): the child runs
            # nothing before it has this verdict, and declines on a change.
            spare = self.spare
            if spare is not None and spare.ready:
                if spare.hand(arriving.data, connection, fds):
                    # A child serving a client now: no longer the spare.
                    self.active.add(spare.pid)
                    self.selector.unregister(spare.channel)
                    self.spare = None
                    current = not changed(self.stamps)
                    spare.tell(current)
                    return current  # changed: the child declines, the client runs it, we leave
                # It could not take the request (it died, or took part of it and
                # stalled): let it go, it must never get a second one.
                self.drop_spare()
            verdict, tell = os.pipe()
            channel = memo_channel.open_channel()
            try:
                pid = os.fork()
            except OSError:
                memo_channel.close_channel(channel)
                raise
            if pid == 0:
                os.close(tell)
                self.forget()
                memo_channel.in_child(channel, self.stamps)
                connection.settimeout(None)
                try:
                    from flowenv.warm.child import serve

                    serve(connection, request, fds, verdict)
                finally:
                    os._exit(1)  # never back into the accept loop, whatever happened
            self.active.add(pid)
            self.await_memo(channel, pid)
            os.close(verdict)
            current = not changed(self.stamps)
            with contextlib.suppress(OSError):  # the child is gone already
                os.write(tell, b"1" if current else b"0")
            os.close(tell)
            return current
        except OSError:
            return True


#: What confines a process beyond its uid, as /proc shows it (Linux): its namespaces
#: (NAMESPACES) and these lines of /proc/PID/status.
_STATUS_LINES = (
    b"Groups:",
    b"CapEff:",
    b"CapBnd:",
    b"NoNewPrivs:",
    b"Seccomp:",
    b"Seccomp_filters:",
)


def confinement(pid: int | str) -> tuple[bytes | str, ...]:
    """The namespaces, groups, capabilities and sandbox (seccomp, no_new_privs) of ``pid``."""
    found: list[bytes | str] = []
    for namespace in NAMESPACES:
        try:
            found.append(os.readlink(f"/proc/{pid}/ns/{namespace}"))
        except OSError:
            found.append("")
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            found += [line for line in status if line.startswith(_STATUS_LINES)]
    except OSError:
        found.append("")
    return tuple(found)


def _same_user(connection: socket.socket, ours: tuple[bytes | str, ...]) -> bool:
    """The peer is like us: our uid and gid (SO_PEERCRED on Linux) and our ``confinement``.

    A process of our uid in a container, a sandbox (seccomp, no_new_privs, other
    namespaces) or with fewer groups or capabilities would otherwise have its
    lock, and what it runs (uv, builds), run by us outside its confinement.
    """
    if hasattr(socket, "SO_PEERCRED"):
        creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
        return (uid, gid) == (os.getuid(), os.getgid()) and confinement(pid) == ours
    # Elsewhere the socket's 0700 directory is the check (no portable peer-credential call).
    return True


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
    signal.set_wakeup_fd(server.wakeup_write)
    # A handler of its own (not SIG_DFL) so that SIGCHLD writes the wake-up fd;
    # the loop reaps (Server.reap).
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
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
