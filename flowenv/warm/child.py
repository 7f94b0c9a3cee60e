"""One forked child of the warm server: become the client's process and run its command.

The child takes the client's terminal (fds 0, 1, 2 received with SCM_RIGHTS)
and rebuilds ``sys.stdin``/``stdout``/``stderr`` the way the interpreter
does at start-up (line-buffered on a terminal, stderr always, same encoding
and errors), takes its cwd, umask, environment (replaced wholesale) and
``sys.argv``, and runs :func:`flowenv.cli.answer` (the fast path, else the command) as
the console script would. It is the leader of a process group of its own, so the
signals the client forwards reach uv too; a watcher thread ends that group
when the client's connection closes (the client was killed).

The pid goes to the client only when the command commits (:func:`commit`,
called by ``flowenv lock`` once its configuration is loaded) or ends. Until
then the child may decline (:class:`Declined`) and the client runs the
command itself: a configuration that may run git (a git package, a local
package whose metadata names a ``git+`` URL) is declined, since git may ask
for credentials on a terminal and the child has none.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from flowenv.warm import framing

if TYPE_CHECKING:
    import io
    from socket import socket

# `flowenv lock` imports this module in every process for :func:`commit`: what
# only a child needs (io, signal, _thread) is imported inside the functions.

#: The connection to the client while this process is a warm child (None otherwise).
_connection: socket | None = None
_committed = False
_finished = False
#: The server's own stdio objects: dropping them would close fds 0-2, which are now the client's.
_replaced: list[Any] = []


#: The child's exit status when it handed the command back (the server counts what it served).
DECLINED_STATUS = 75


class Declined(BaseException):
    """This command must run in the client's own process (a BaseException: no handler eats it)."""


def commit(config: Any) -> None:
    """Tell the client the command is under way (its pid); decline what must not run here.

    A no-op outside a warm child. ``config`` is the loaded configuration.
    """
    global _committed
    if _connection is None or _committed:
        return
    if might_prompt(config):
        raise Declined
    _committed = True
    _connection.sendall(framing.reply(b"pid", os.getpid()))


#: A local package's files that may name its own dependencies (and so a git URL among them).
_METADATA_FILES = ("pyproject.toml", "setup.cfg", "setup.py")


def might_prompt(config: Any) -> bool:
    """Whether locking ``config`` may run git, which may ask for credentials on a terminal.

    A package built from a git repository, or a local package whose metadata
    names a ``git+`` URL (uv fetches it while building the package's metadata).
    """
    tables = [config.base, *(decl for _, decl in config.steps), *(decl for _, decl in config.envs)]
    tables += [target for decl in tables for _, target in decl.targets]
    packages = [p for decl in tables for p in (*decl.pypi, *decl.pypi_constraints)]
    if any(package.url.startswith("git+") for package in packages):
        return True
    for directory in {package.path for package in packages if package.path}:
        for name in _METADATA_FILES:
            with contextlib.suppress(OSError):
                if b"git+" in (config.root / directory / name).read_bytes():
                    return True
    return False


def _stdio(fd: int, template: Any, write: bool) -> io.TextIOWrapper:
    import io

    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    raw.name = ("<stdin>", "<stdout>", "<stderr>")[fd]  # as in the interpreter's messages
    # As CPython's create_stdio: newline "\n"; buffered (line-buffered on a
    # terminal, and stderr always) unless -u or PYTHONUNBUFFERED made the
    # server's own unbuffered (write-through, no buffer): the client's are too,
    # as the variable is part of the socket's name.
    buffered_stdio = not template.write_through
    buffer: Any = raw
    if not write:
        buffer = io.BufferedReader(raw)
    elif buffered_stdio:
        buffer = io.BufferedWriter(raw)
    stream = io.TextIOWrapper(
        buffer,
        encoding=template.encoding,
        errors=template.errors,
        newline="\n",
        line_buffering=buffered_stdio and (raw.isatty() or fd == 2),
        write_through=not buffered_stdio,
    )
    stream.mode = "w" if write else "r"  # type: ignore[misc]  # as create_stdio sets it
    return stream


def _flush_stdio(status: int) -> int:
    """Flush stdout and stderr as the interpreter does at exit, and the status it then exits with.

    Output that cannot be written (``flowenv lock | head -0``: a closed pipe)
    prints "Exception ignored in: <stdout>..." and makes the status 120.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None or getattr(stream, "closed", True):
            continue
        try:
            stream.flush()
        except (OSError, ValueError) as exc:
            if stream is sys.stdout:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(
                        f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n"
                    )
                    sys.stderr.flush()
            status = 120
    return status


def _become_client(connection: socket, request: framing.Request, fds: list[int]) -> None:
    import signal

    _adopt_limits(connection)

    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    templates = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    _replaced.extend(templates)
    _replaced.extend((sys.stdin, sys.stdout, sys.stderr))
    stdin, stdout, stderr = (
        _stdio(fd, template, write=fd != 0) for fd, template in enumerate(templates)
    )
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    # The originals too: code that restores them (pytest, faulthandler) finds the client's.
    for name, stream in (("__stdin__", stdin), ("__stdout__", stdout), ("__stderr__", stderr)):
        setattr(sys, name, stream)
    os.chdir(request.cwd)
    os.umask(request.umask)
    os.environb.clear()
    os.environb.update(request.environ)
    _forget_the_servers_environment()
    sys.argv = [os.fsdecode(arg) for arg in request.argv]


def _adopt_limits(connection: socket) -> None:
    """Take the client's resource limits (``ulimit``), read from its process (Linux).

    A limit above what the server may raise to (a higher hard limit) cannot
    be taken: ValueError or OSError, and the client runs the command itself.
    """
    import resource
    import socket as _sockets
    import struct

    if not hasattr(resource, "prlimit") or not hasattr(_sockets, "SO_PEERCRED"):
        return
    creds = connection.getsockopt(_sockets.SOL_SOCKET, _sockets.SO_PEERCRED, 12)
    client = struct.unpack("3i", creds)[0]
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            limit = getattr(resource, name)
            # The client waits for our answer: its pid is still its own.
            theirs = resource.prlimit(client, limit)
            if resource.getrlimit(limit) != theirs:
                resource.setrlimit(limit, theirs)


def _forget_the_servers_environment() -> None:
    """Drop what was read from the server's environment and kept, as the client's differs.

    ``tempfile`` keeps the ``TMPDIR`` it first saw, ``time`` the ``TZ``, and
    :func:`flowenv.engines.uv.uv_binary` the ``PATH`` it may have searched.
    """
    import tempfile
    import time

    tempfile.tempdir = None
    time.tzset()
    uv = sys.modules.get("flowenv.engines.uv")
    if uv is not None:
        uv.uv_binary.cache_clear()


def _watch(connection: socket) -> None:
    """End this process group when the client goes away (it was killed: nobody waits)."""
    import signal

    try:
        data = connection.recv(1)
    except OSError:
        data = b""
    if not data and not _finished:
        os.killpg(os.getpgrp(), signal.SIGTERM)


def _exit_status(exc: SystemExit) -> int:
    # What the interpreter does with a SystemExit that reaches the top.
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def serve(connection: socket, request: framing.Request, fds: list[int], verdict: int) -> None:
    """Run the request in this (forked) process, report to the client, and exit. Never returns.

    ``verdict`` is a pipe on which the server says, after forking us, whether
    its code is still what is on disk (b"1"): anything else, and the command is
    handed back to the client, which runs it with the new code.
    """
    global _connection, _finished
    try:
        _become_client(connection, request, fds)
        current = os.read(verdict, 1) == b"1"
        os.close(verdict)
    except (OSError, ValueError):
        os._exit(DECLINED_STATUS)  # e.g. the cwd is gone: the client, in-process, will say so
    if not current:
        os._exit(DECLINED_STATUS)
    _connection = connection
    # _thread, not threading: Thread.start() waits until the new thread runs,
    # 0.5-3 ms of every lock on a busy machine, and this one needs no join.
    import _thread

    _thread.start_new_thread(_watch, (connection,))
    from flowenv.cli import answer

    try:
        status = answer(sys.argv[1:], program=True)
    except Declined:
        os._exit(DECLINED_STATUS)  # closing without a pid: the client runs it itself
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    status = _flush_stdio(status)
    _finished = True
    try:
        if not _committed:
            connection.sendall(framing.reply(b"pid", os.getpid()))
        connection.sendall(framing.reply(b"exit", status & 0xFF))
    finally:
        os._exit(0)
