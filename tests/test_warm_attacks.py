"""The warm server under attack and odd callers: each test is a defect found and fixed.

Real processes, sockets and uv throughout (see tests/test_warm_server.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowenv.warm import framing
from tests.test_warm_server import (
    BODY,
    FLOWENV,
    PATIENCE,
    Warm,
    _after,
    _cold,
    _files,
    _marked,
    _Stall,
    _stalled_lock,
    _until,
    flowenv,
    stalled_project,
    warm,
    with_sitecustomize,
)

__all__ = ["stalled_project", "warm"]  # fixtures, used by name


def _shell(command: str, env: dict[str, str], root: Path) -> subprocess.CompletedProcess[str]:
    flowenv_cmd = " ".join(FLOWENV)
    return subprocess.run(
        ["sh", "-c", command.replace("FLOWENV", flowenv_cmd)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _started(warm: Warm, root: Path) -> int:
    """Lock ``root`` in-process (which starts the server for ``warm.env``); the server's pid."""
    first = flowenv("-C", root, "lock", env=warm.env)
    assert first.code == 0, first.err
    return warm.wait_for_server()


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-"])
def test_a_lock_with_stdin_stdout_or_stderr_closed_runs_as_in_process(
    make_project: Callable[..., Path], warm: Warm, closed: str
) -> None:
    # The client's socket took the closed stream's number and was sent as that
    # stream: the child wrote its output into the connection (stderr closed: the
    # error went to the client as a garbled reply, not to stdout as in-process).
    root = make_project(BODY)
    server = _started(warm, root)
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = ">=1"', "alpha = 3"))
    cold = _shell(f"FLOWENV lock {closed}", _cold(warm.env), root)
    assert cold.returncode == 2
    served = _shell(f"FLOWENV lock {closed}", warm.env, root)
    assert (served.returncode, served.stdout, served.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )
    assert warm.status() == (server, 0)  # it ran in-process


def _into_closed_pipe(env: dict[str, str], root: Path) -> tuple[int, str]:
    read, write = os.pipe()
    os.close(read)  # every write gets EPIPE: `flowenv lock | head -0`, deterministically
    try:
        result = subprocess.run(
            [*FLOWENV, "lock", "-U"],
            env=env,
            cwd=root,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)
    return result.returncode, result.stderr


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_lock_into_a_closed_pipe_fails_as_in_process(
    make_project: Callable[..., Path], warm: Warm, unbuffered: bool
) -> None:
    # Served, the child's final flush swallowed EPIPE (exit 0, nothing said),
    # and its stdout was buffered even under PYTHONUNBUFFERED.
    env = {k: v for k, v in warm.env.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    variant = Warm(env, warm.directory, warm.variants)
    warm.variants.append(env)
    root = make_project(BODY)
    server = _started(variant, root)
    cold_code, cold_err = _into_closed_pipe(_cold(env), root)
    served_code, served_err = _into_closed_pipe(env, root)
    if unbuffered:
        # The first print fails: a traceback (its frames differ), exit 1.
        assert (served_code, cold_code) == (1, 1)
        assert served_err.splitlines()[-1] == cold_err.splitlines()[-1]
        assert served_err.splitlines()[-1].startswith("BrokenPipeError")
    else:
        # The flush at exit fails: the interpreter's "Exception ignored", exit 120.
        assert (served_code, served_err) == (cold_code, cold_err)
        assert cold_code == 120
    assert variant.status()[0] == server


def _socket_of(warm: Warm) -> str:
    found = re.search(r"socket (\S+)\)", flowenv("server", "status", env=warm.env).out)
    assert found is not None
    return found[1]


def test_clients_that_stall_mid_request_delay_no_other_lock(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # The server read each request to its end before accepting the next
    # connection: one client stopped mid-request (Ctrl-Z, or hostile, a byte
    # every few seconds) held every other `flowenv lock` waiting, for ever.
    root = make_project(BODY)
    server = _started(warm, root)
    path = _socket_of(warm)
    request = framing.encode_request(framing.RUN, str(root), 0o022, ["flowenv", "lock"], {})
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for byte in request:
                if stop.wait(1.0):
                    return
                sock.send(bytes([byte]))

    # Idle connections as well, more than the server keeps: the oldest are dropped.
    stalled = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(40)]
    trickler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        trickler.connect(path)
        thread = threading.Thread(target=trickle, args=(trickler,), daemon=True)
        thread.start()
        for sock in stalled:
            sock.connect(path)
        shutil.rmtree(root / "locks")
        served = flowenv("-C", root, "lock", env=warm.env)  # hung here before the fix
        assert served.code == 0, served.err
        assert len(_files(root)) == 4
    finally:
        stop.set()
        trickler.close()
        for sock in stalled:
            sock.close()
    assert warm.status() == (server, 1)  # served, and the server still answers


_RECORDER = """
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
listener.listen(8)
listener.settimeout(60)
total = 0
while True:
    connection, _ = listener.accept()
    connection.settimeout(5)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except OSError:
        pass
    connection.close()
    if received == b"END":
        break
    total += len(received)
print(total, flush=True)
"""


def _as_nobody(code: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a process as another uid")
    return subprocess.Popen(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
            *args,
        ],
        text=True,
        **popen,
    )


def test_a_server_of_another_uid_at_our_socket_gets_nothing(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # The client sent its environment (secrets included) and terminal to
    # whatever listened at its socket path; the directory's check happens
    # before, and a swapped directory or a runtime directory others can write
    # to put someone else's server there.
    root = make_project(BODY)
    path = _socket_of(warm)
    Path(path).parent.mkdir(mode=0o700, exist_ok=True)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(path)  # listen() is nobody's: the peer credentials are the listener's
    try:
        recorder = _as_nobody(
            _RECORDER, str(bound.fileno()), pass_fds=(bound.fileno(),), stdout=subprocess.PIPE
        )
        bound.close()
        _until(
            lambda: _listening(path) or recorder.poll() is not None,
            "nobody's server to listen",
        )
        result = flowenv("-C", root, "lock", env=warm.env)
        assert result.code == 0, result.err
        assert len(_files(root)) == 4  # run in-process
        with socket.socket(socket.AF_UNIX) as end:
            end.connect(path)
            end.sendall(b"END")
        out, _ = recorder.communicate(timeout=60)
    finally:
        bound.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
    # Not a byte from our client (nor from the probes).
    assert out.strip() == "0"


def _listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_served_lock_under_nohup_survives_a_hangup(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    # The client replaced nohup's ignored SIGHUP with its forwarder: a closed
    # terminal killed the served lock that the in-process one would have finished.
    root, stall, _ = stalled_project
    client, _ = _stalled_lock(
        stalled_project,
        warm,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )

    def hang_up_then_release() -> None:
        client.send_signal(signal.SIGHUP)
        stall.release.set()

    out, err = _after(client, hang_up_then_release)
    assert client.returncode == 0, err
    assert "written  base · linux-64" in out
    assert len(_files(root)) == 1


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_served_lock_terminated_dies_of_the_signal_as_in_process(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    # `timeout` or a supervisor's SIGTERM: in-process, flowenv dies of it; served,
    # the client said "ended without an exit status" and exited 1.
    root, _, marker = stalled_project
    client, _ = _stalled_lock(stalled_project, warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = _after(client, lambda: client.send_signal(signal.SIGTERM))
    assert client.returncode == -signal.SIGTERM, err
    assert "without an exit status" not in err
    assert not _files(root)
    _until(lambda: _marked(marker) == [], "uv to end")


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_client_that_runs_unlike_the_server_gets_a_server_of_its_own(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # Groups, niceness, CPUs, namespaces and the loader's variables are the
    # server's in its children, not the client's: `nice flowenv lock` once made
    # every later lock (and its uv) run niced, and a client in `unshare -n`
    # was served with the network it had shut out.
    if _nice(os.getpid()) > 12:
        pytest.skip("already too nice to be niced by 7")
    plain = _socket_of(warm)
    prefixes = [["nice", "-n", "7"]]
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) > 1:
        prefixes.append(["taskset", "-c", str(min(os.sched_getaffinity(0)))])
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefixes.append(["setpriv", "--groups=4242"])
    if os.geteuid() == 0 and shutil.which("unshare"):
        prefixes.append(["unshare", "-n"])
    for prefix in prefixes:
        status = subprocess.run(
            [*prefix, *FLOWENV, "server", "status"], env=warm.env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stderr
        assert plain not in status.stdout, prefix
    for name in ("LD_LIBRARY_PATH", "LD_PRELOAD"):
        variant = warm.variant(**{name: ""})
        assert _socket_of(variant) != plain, name

    # For real: a niced lock starts a niced server; a plain one is not served by it.
    root = make_project(BODY)

    def lock(*prefix: str) -> None:
        result = subprocess.run(
            [*prefix, *FLOWENV, "-C", str(root), "lock"],
            env=warm.env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr

    lock("nice", "-n", "7")
    _until(lambda: re.search(r"\(pid (\d+)", _niced_status(warm)) is not None, "niced server")
    niced = re.search(r"\(pid (\d+)", _niced_status(warm))
    assert niced is not None
    assert _nice(int(niced[1])) == _nice(os.getpid()) + 7
    lock()
    server = warm.wait_for_server()
    assert server != int(niced[1])
    assert _nice(server) == _nice(os.getpid())
    warm.variants.append(warm.env)  # the niced server is stopped by a niced `server stop`
    subprocess.run([*["nice", "-n", "7"], *FLOWENV, "server", "stop"], env=warm.env, check=True)


def _niced_status(warm: Warm) -> str:
    return subprocess.run(
        ["nice", "-n", "7", *FLOWENV, "server", "status"],
        env=warm.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _limited(limit: int, value: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(limit, (value, value))

    return apply


@pytest.mark.skipif(not hasattr(os, "fork"), reason="resource limits are POSIX")
def test_a_served_lock_runs_under_the_clients_resource_limits(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # The child ran under the server's limits: `ulimit -f 0` (or -n, -v) made an
    # in-process lock fail and a served one succeed.
    import resource

    root = make_project(BODY)
    server = _started(warm, root)
    outcomes = []
    for env in (_cold(warm.env), warm.env):
        shutil.rmtree(root / "locks", ignore_errors=True)
        result = subprocess.run(
            [*FLOWENV, "-C", str(root), "lock"],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=_limited(resource.RLIMIT_FSIZE, 0),
        )
        # The traceback's outer frames differ: its last line is the error.
        last = result.stderr.splitlines()[-1:]
        outcomes.append((result.returncode, result.stdout, last, _files(root)))
    assert outcomes[0][0] != 0
    assert outcomes[1] == outcomes[0]
    assert warm.status() == (server, 1)  # the child ran it, and failed as in-process


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_no_more_than_max_servers_are_started(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # One server per environment (PYTHON*, LC_*, nice...) and no bound: a loop
    # over PYTHONHASHSEED left one server per value running for ten minutes.
    import fcntl

    from flowenv.warm.client import MAX_SERVERS

    root = make_project(BODY)
    held = []
    try:
        for number in range(MAX_SERVERS):  # what running servers hold
            handle = open(warm.directory / f"lock-{number:016x}.sock.lock", "w")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(handle)
        marker = uuid.uuid4().hex
        result = flowenv("-C", root, "lock", env={**warm.env, "FLOWENV_TEST_MARKER": marker})
        assert result.code == 0, result.err
        assert len(_files(root)) == 4
        # posix_spawn has returned before the lock did: a server would be running now.
        assert _marked(marker) == []
    finally:
        for handle in held:
            handle.close()
    assert warm.status() == (None, None)


_RAW_CLIENT = """
import os, socket, sys
from flowenv.warm import framing
path, root = sys.argv[1:]
request = framing.encode_request(
    framing.RUN, root, 0o022, ["flowenv", "-C", root, "lock"], dict(os.environb)
)
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.connect(path)
    fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
    reply = b""
    try:
        sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        while chunk := sock.recv(4096):
            reply += chunk
    except OSError:
        pass  # refused: closed before or while the request went
print(repr(reply))
"""


@pytest.mark.parametrize(
    "confined",
    [["unshare", "-n"], ["setpriv", "--no-new-privs"], ["setpriv", "--groups=4242"]],
)
def test_a_confined_process_of_our_uid_is_not_served(
    make_project: Callable[..., Path], warm: Warm, confined: list[str]
) -> None:
    # A process of our uid in another namespace, under no_new_privs (a sandbox)
    # or with other groups could send a request straight to the socket, and
    # have its lock (uv, builds) run by the server outside its confinement.
    if os.geteuid() != 0 or shutil.which(confined[0]) is None:
        pytest.skip(f"needs root and {confined[0]}")
    root = make_project(BODY)
    server = _started(warm, root)
    shutil.rmtree(root / "locks")
    result = subprocess.run(
        [*confined, sys.executable, "-c", _RAW_CLIENT, _socket_of(warm), str(root)],
        env=warm.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "b''"  # refused: no pid, no status
    assert not (root / "locks").exists()
    assert warm.status() == (server, 0)
    # The same request, unconfined, is served.
    plain = subprocess.run(
        [sys.executable, "-c", _RAW_CLIENT, _socket_of(warm), str(root)],
        env=warm.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "exit 0" in plain.stdout, plain.stderr
    assert len(_files(root)) == 4


def test_server_stop_ends_the_servers_of_other_environments_too(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # One server per environment (LANG, PYTHON*, nice...): `server stop` ended
    # only the one of the caller's environment and left the others running.
    root = make_project(BODY)
    other = warm.variant(LC_ALL="C")
    _started(warm, root)
    _started(other, root)
    stopped = flowenv("server", "stop", env=warm.env)
    assert stopped.code == 0, stopped.err
    assert "stopped 1 warm server(s) of other environments too" in stopped.out
    warm.wait_all_gone()
    assert other.status() == (None, None)


def test_a_runtime_directory_others_may_write_to_is_not_used(warm: Warm) -> None:
    # XDG_RUNTIME_DIR only had to be ours: in one that others may write to,
    # they could rename our flowenv directory away and put theirs in its place.
    runtime = warm.directory / "run"  # short: a socket path stays under ~100 bytes
    (runtime / "flowenv").mkdir(parents=True, mode=0o700)
    env = {k: v for k, v in warm.env.items() if k != "FLOWENV_SERVER_DIR"}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    runtime.chmod(0o700)
    assert str(runtime / "flowenv") in flowenv("server", "status", env=env).out
    runtime.chmod(0o777)
    out = flowenv("server", "status", env=env).out
    assert str(runtime) not in out
    assert f"/tmp/flowenv-{os.getuid()}" in out or "not private" in out


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc")
def test_malformed_requests_are_dropped_without_leaking_a_descriptor(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    root = make_project(BODY)
    server = _started(warm, root)
    path = _socket_of(warm)
    baseline = _fd_count(server)
    good = framing.encode_request(framing.RUN, str(root), 0o022, ["flowenv", "lock"], {})
    pipes = [os.pipe() for _ in range(3)]
    spare = [fd for pair in pipes for fd in pair]

    def rights(fds: list[int]) -> list[tuple[int, int, bytes]]:
        packed = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, packed)]

    creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    attacks: list[tuple[bytes, list[tuple[int, int, bytes]]]] = [
        (b"\xff\xff\xff\xff" + b"x" * 100, rights(spare[:3])),  # 4 GiB announced
        (good[:-5], rights(spare[:3])),  # cut short, then closed
        (good, []),  # no descriptors
        (good, rights(spare)),  # six descriptors
        (good, [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)]),  # no rights at all
        (framing.encode_request(framing.RUN)[:4] + b"garbage\0", rights(spare[:3])),
        (good + b"trailing", rights(spare[:3])),
    ]
    try:
        for data, ancillary in attacks:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(path)
                with contextlib.suppress(OSError):
                    sock.sendmsg([data], ancillary)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(PATIENCE)
                assert sock.recv(4096) == b"", data[:20]  # dropped: nothing run
    finally:
        for fd in spare:
            os.close(fd)
    assert warm.status() == (server, 0)  # still serving, nothing served
    _until(lambda: _fd_count(server) == baseline, "the server to hold no dropped descriptor")


def test_a_server_whose_modules_changed_leaves_on_a_request_it_cannot_read(
    make_project: Callable[..., Path], warm: Warm, tmp_path: Path
) -> None:
    # Only a readable run request checked the modules: after an edit that
    # changed the wire format (an editable install), the old server refused
    # every new client's request, each of which ran in-process and reset its
    # idle time, so it never left and no new server could start.
    old, module = with_sitecustomize(warm, tmp_path)
    root = make_project(BODY)
    _started(old, root)
    module.write_text("LOADED = True  # upgraded\n")
    other_version = b"flowenv-warm/999\0run\0/\0" + b"22\0" + b"0\0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(_socket_of(old))
        sock.sendall(len(other_version).to_bytes(4, "big") + other_version)
        sock.settimeout(PATIENCE)
        assert sock.recv(4096) == b""
    old.wait_all_gone()
