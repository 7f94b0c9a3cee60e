"""The client side of the warm server: hand ``flowenv lock`` to it, or say "run it yourself".

:func:`flowenv.cli.main` calls :func:`run_served` before argparse, so this
module and what it imports are standard library only and add about a
millisecond to every ``flowenv lock`` (``_socket`` rather than ``socket``,
which imports ``enum``; no ``json``; ``_signal`` rather than ``signal``).

Once the child has sent its pid, the client forwards SIGINT, SIGTERM, SIGHUP
and SIGQUIT to the child's process group (a terminal would have sent them to
uv as well), stops and continues that group with itself on Ctrl-Z (SIGTSTP),
and exits with the child's status. If the connection ends before
the pid, nothing was done and the caller runs the command in-process; after
the pid, the child may have written files, so it is an error and never a re-run.
"""

from __future__ import annotations

import os
import sys

from flowenv.cli.fastpath import split_globals
from flowenv.warm import framing
from flowenv.warm.location import enabled, socket_path

# Not `from typing import TYPE_CHECKING`: see flowenv.lockfiles.freshness.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, NoReturn

#: The signals a terminal or a supervisor sends that the child's process group must get too.
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
LOST_MESSAGE = (
    "flowenv: error: the warm server's process for this command ended without an exit "
    "status; lock files may have been written (re-run `flowenv lock`, or set "
    "FLOWENV_SERVER=0 to run without the server)"
)


def is_lock(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``flowenv [global options] lock ...``: the only command served."""
    parsed = split_globals(argv)
    return parsed is not None and bool(parsed[3]) and parsed[3][0] == "lock"


def check_only(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``flowenv [global options] lock --check``, which the fast path
    (:mod:`flowenv.cli.fastpath`) answers best when every lock is fresh."""
    parsed = split_globals(argv)
    return parsed is not None and parsed[3] == ["lock", "--check"]


def run_served(argv: Sequence[str]) -> int | None:
    """The exit status of ``flowenv ARGV`` run by the warm server; None: run it in-process."""
    if not is_lock(argv) or not enabled():
        return None
    path = socket_path()
    if path is None:
        return None
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        if sock.fileno() <= 2:
            # Our stdin, stdout or stderr is closed and the socket took its number:
            # sent as that stream, the child would write its output into the
            # connection. In-process, Python has None for a closed stream.
            return None
        try:
            sock.connect(path)
            if not _ours(sock):
                return None
            request = framing.encode_request(
                framing.RUN, os.getcwd(), _umask(), sys.argv, os.environb
            )
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
            sent = sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            # Nothing more once the request is whole: a fast child (a configuration
            # error) may have run and closed already, and an error here would send
            # the command to run a second time in-process.
            if sent < len(request):
                sock.sendall(request[sent:])
        except OSError:
            return None  # the request is incomplete: the server runs nothing
        return _await(sock)
    finally:
        sock.close()


def exit_now(status: int) -> NoReturn:
    """End this process with the served command's status, skipping the interpreter's finalisation.

    Nothing of the client's needs it (no file open, no atexit hook), and it
    cost ~2 ms of every served lock. Our own stdout and stderr (the child wrote
    to the same descriptors, unbuffered by us) are flushed first, as at exit.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status & 0xFF)


def _ours(sock: object) -> bool:
    """Whether the server listening on ``sock`` runs as our uid (Linux's SO_PEERCRED).

    Its private directory should make that so; this makes sure, before our
    environment and terminal go to it (a directory swapped after its check, a
    runtime directory others can write to). Elsewhere the directory is the check.
    """
    import _socket

    option = getattr(_socket, "SO_PEERCRED", None)
    if option is None:
        return True
    # struct ucred: pid, uid, gid (32 bits each).
    creds = sock.getsockopt(_socket.SOL_SOCKET, option, 12)  # type: ignore[attr-defined]
    return int.from_bytes(creds[4:8], sys.byteorder) == os.getuid()


def _umask() -> int:
    # The client is single-threaded here: nothing else creates a file while it is 0.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _await(sock: object) -> int | None:
    """Read the child's pid, then its exit status, forwarding signals in between."""
    import _signal  # type: ignore[import-not-found]  # `signal` imports enum

    tokens = _tokens(sock)
    pid: int | None = None
    forwarded: list[int] = []

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        try:  # noqa: SIM105 - contextlib is an import the client does without
            os.killpg(pid, signum)  # type: ignore[arg-type]  # set before this is installed
        except OSError:
            pass  # the group is gone: its status is on its way

    def suspend(signum: int, frame: object) -> None:
        # Ctrl-Z: the child's group stops with us and goes on when we do (`fg`, `bg`).
        forward(_signal.SIGSTOP, None)
        os.kill(os.getpid(), _signal.SIGSTOP)
        forward(_signal.SIGCONT, None)

    def install() -> None:
        # A signal ignored here (nohup's SIGHUP, a background job's SIGINT) is
        # ignored by the in-process command too: it stays ignored, and the
        # child, outside our terminal's session, never gets it either.
        for name, handler in (*((name, forward) for name in FORWARDED), ("SIGTSTP", suspend)):
            signum = getattr(_signal, name)
            if _signal.getsignal(signum) != _signal.SIG_IGN:
                _signal.signal(signum, handler)

    try:
        pid = _expect(tokens, b"pid")
        if pid is None:
            return None  # declined: the caller runs the command itself
        install()
    except KeyboardInterrupt:
        if pid is None:
            # Before the pid nothing was written; closing the connection ends the child.
            print("flowenv: interrupted", file=sys.stderr)
            return 130
        # Ctrl-C between the pid and the handlers: the child gets it all the same.
        forward(_signal.SIGINT, None)
        install()
    status = _expect(tokens, b"exit")
    if status is None:
        fatal = [signum for signum in forwarded if signum in _fatal_signals(_signal)]
        # The child died (killed, out of memory): its uv processes must not outlive it.
        forward(_signal.SIGTERM, None)
        if fatal:
            # Killed by the signal we passed on (`timeout`, a supervisor's
            # SIGTERM): die of it too, as the in-process command would have.
            _signal.signal(fatal[-1], _signal.SIG_DFL)
            os.kill(os.getpid(), fatal[-1])
        print(LOST_MESSAGE, file=sys.stderr)
        return 1
    return status


def _fatal_signals(signals: Any) -> tuple[int, ...]:
    """The forwarded signals that kill a Python process (SIGINT is a KeyboardInterrupt)."""
    return tuple(getattr(signals, name) for name in FORWARDED if name != "SIGINT")


def _tokens(sock: object) -> Iterator[bytes]:
    buffer = b""
    recv = sock.recv  # type: ignore[attr-defined]
    while True:
        head, sep, rest = buffer.partition(b"\0")
        if sep:
            buffer = rest
            yield head
            continue
        try:
            data = recv(4096)
        except OSError:
            return
        if not data:
            return
        buffer += data


def _expect(tokens: Iterator[bytes], word: bytes) -> int | None:
    for token in tokens:
        parsed = framing.parse_reply(token)
        if parsed is not None and parsed[0] == word:
            return parsed[1]
        return None
    return None


def _answers(path: str) -> bool:
    """Whether a server listens at ``path`` (one that just retired has removed its socket)."""
    import _socket

    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _inherited_fds() -> list[int]:
    """Descriptors above 2 a spawned process would inherit (flowenv's own are not inheritable).

    A caller's pipe (make's jobserver, a harness waiting for EOF) must not be
    held open for ten minutes by a server started in passing.
    """
    listing = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        names = os.listdir(listing)
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                continue  # the listing's own descriptor, closed by now
    return found


#: Servers running at once for one user at most (each holds ~20-40 MB for its idle time).
MAX_SERVERS = 8


def _running_servers(directory: str) -> int:
    """How many servers hold their lock file in ``directory``."""
    import fcntl

    try:
        names = [name for name in os.listdir(directory) if name.endswith(".sock.lock")]
    except OSError:
        return 0
    running = 0
    for name in names:
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            # Held by its server: ours fails. (A server starting this very moment
            # may find ours instead and leave: the next lock starts it again.)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            running += 1
        finally:
            os.close(fd)
    return running


def start_server() -> None:
    """Start a warm server in the background for the next ``flowenv lock`` (if one may run).

    Detached: a new session, stdio on /dev/null, no inherited descriptor, so
    it neither holds the terminal (or a caller's pipe) nor gets its signals. A server already
    running, or a rival started at the same moment, makes it exit at once.
    """
    if not enabled():
        return
    path = socket_path(create=True)
    if path is None or _answers(path):
        return  # e.g. a server that declined a configuration with git packages
    if _running_servers(os.path.dirname(path)) >= MAX_SERVERS:
        return  # one per environment would pile up (a loop over PYTHONHASHSEED...)
    null = os.devnull
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, null, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, null, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    # -c rather than -m: -m would put the cwd first on sys.path, and a `flowenv`
    # directory there would be imported instead of the installed package.
    code = "import sys; del sys.path[0]; from flowenv.warm.server import main; main(sys.argv[1:])"
    try:  # noqa: SIM105 - contextlib is an import the client does without
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-c", code, path],
            os.environ,
            file_actions=actions,
            setsid=True,
        )
    except (OSError, NotImplementedError):  # NotImplementedError: no setsid for posix_spawn
        pass  # no server: every lock simply runs in-process
