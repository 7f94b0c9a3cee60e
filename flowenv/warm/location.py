"""Where the warm server's socket lives, whether it may be used, and its name.

The directory is ``$FLOWENV_SERVER_DIR`` when set (tests use it), else
``$XDG_RUNTIME_DIR/flowenv`` when that directory is ours and only ours to
write, else
``/tmp/flowenv-<uid>``. It is created 0700 and refused (everything then
runs in-process) when it is a symlink, not ours, or open to group or others:
anyone who could bind a socket there could answer our ``flowenv lock``.

The socket's name is a short hash of what decides how the server behaves:
the uid, the interpreter, flowenv's version and package directory, every
environment variable that affects interpreter start-up, loading or text
encoding (``PYTHON*``, ``LANG``, ``LC_*``, ``LD_*``), and what a forked child
keeps of the server rather than of its client: the gid and groups, the
niceness, the CPUs it may run on and the Linux namespaces. A process differing in any of them gets,
and starts, a server of its own rather than one that would behave unlike it.

Standard library only (and :mod:`flowenv._sha256`): the client imports this
before argparse.
"""

from __future__ import annotations

import os
import stat
import sys

from flowenv._sha256 import sha256_hex

#: Below the AF_UNIX path limit everywhere (104 bytes on macOS and the BSDs, 108 on Linux).
MAX_SOCKET_PATH = 100
#: Environment variable names (and prefixes) that change how Python starts or encodes text.
#: The dynamic loader's (LD_PRELOAD, LD_LIBRARY_PATH...) shape the server's process itself.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "DYLD_")
_STARTUP_NAMES = ("LANG", "LANGUAGE", "GLIBC_TUNABLES")
#: Linux namespaces: a client in another one (a container, `unshare -n` for an
#: offline build) sees other files, network and pids than a server outside it.
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def off_reason(environ: os._Environ[str] | dict[str, str] = os.environ) -> str | None:
    """Why ``flowenv lock`` may not go through a warm server here; None when it may."""
    if environ.get("FLOWENV_SERVER", "1") == "0":
        return "FLOWENV_SERVER=0"
    if environ.get("CI"):
        return "CI is set"
    import _socket

    if not (
        hasattr(os, "fork")
        and hasattr(_socket, "AF_UNIX")
        and hasattr(_socket, "SCM_RIGHTS")
        and hasattr(_socket.socket, "sendmsg")
    ):
        return "this platform has no fork or Unix sockets"
    return None


def enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether ``flowenv lock`` may go through a warm server at all here."""
    return off_reason(environ) is None


def _safe_directory(path: str, create: bool) -> bool:
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def server_directory(create: bool = False) -> str | None:
    """The socket's directory (made when ``create``); None when it is missing or unsafe."""
    chosen = os.environ.get("FLOWENV_SERVER_DIR", "")
    if not chosen:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if runtime and _owned(runtime):
            chosen = os.path.join(runtime, "flowenv")
        else:
            chosen = f"/tmp/flowenv-{os.getuid()}"
    # Absolute: the server resolves it from "/", not from the client's cwd.
    chosen = os.path.abspath(chosen)
    return chosen if _safe_directory(chosen, create) else None


def _owned(path: str) -> bool:
    """Ours, and writable by nobody else: in a runtime directory others may
    write to, they could swap our ``flowenv`` directory for theirs."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def identity() -> bytes:
    """What the socket's name is a hash of (see the module docstring)."""
    import flowenv

    parts = [
        str(os.getuid()),
        # A server started with other interpreter options (-O, -X ...) would not run as we do.
        repr(sys.flags),
        repr(sorted(sys._xoptions.items())),
        # The interpreter, not the name it was started by: a venv's python and
        # python3 (one console script's shebang says one, `python -m` the other)
        # are one program, and sys.prefix tells venvs that share it apart.
        os.path.realpath(sys.executable),
        sys.prefix,
        flowenv.__version__,
        os.path.dirname(os.path.abspath(flowenv.__file__)),
    ]
    # What the child inherits from the server, not from the client: its groups
    # (file access), niceness and CPUs (`nice`, `taskset`: uv's too), namespaces.
    parts += [str(os.getgid()), repr(sorted(os.getgroups()))]
    parts.append(str(os.getpriority(os.PRIO_PROCESS, 0)) if hasattr(os, "getpriority") else "")
    if hasattr(os, "sched_getaffinity"):
        parts.append(repr(sorted(os.sched_getaffinity(0))))
    for namespace in NAMESPACES:
        try:
            parts.append(os.readlink(f"/proc/self/ns/{namespace}"))
        except OSError:
            parts.append("")
    parts += sorted(
        f"{name}={value}"
        for name, value in os.environ.items()
        if name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
    )
    return "\0".join(parts).encode("utf-8", "surrogateescape")


def socket_path(create: bool = False) -> str | None:
    """The socket this process's ``flowenv lock`` would use; None when none may be used."""
    directory = server_directory(create)
    if directory is None:
        return None
    path = os.path.join(directory, f"lock-{sha256_hex(identity())[:16]}.sock")
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None
