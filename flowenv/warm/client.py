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
        try:
            sock.connect(path)
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

    def forward(signum: int, frame: object) -> None:
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
        for name in FORWARDED:
            _signal.signal(getattr(_signal, name), forward)
        _signal.signal(_signal.SIGTSTP, suspend)

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
        # The child died (killed, out of memory): its uv processes must not outlive it.
        forward(_signal.SIGTERM, None)
        print(LOST_MESSAGE, file=sys.stderr)
        return 1
    return status


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
