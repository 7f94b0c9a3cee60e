"""The warm server (flowenv.warm): a served `flowenv lock` is the in-process one, only sooner.

Real processes throughout: the installed ``flowenv`` console script, real
servers in a private socket directory (stopped at teardown), real uv against
the tests' wheel index, and a real slow index for the signal tests.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support.index_server import serve_handler
from tests.support.local_package import write_local_package
from tests.support.wheels import build_simple_index

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX"), reason="no fork or Unix sockets"
)

_SCRIPT = Path(sys.executable).with_name("flowenv")
FLOWENV = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flowenv"]
#: Long enough for any wait on a loaded machine; only reached when something is wrong.
PATIENCE = 60.0

BODY = """
[base]
python = "3.11"
pypi.packages = { alpha = ">=1" }

[steps.train]
pypi.packages = { delta = "0.5" }
"""


@attrs.frozen
class Run:
    code: int
    out: str
    err: str


def flowenv(*args: str | Path, env: dict[str, str], **kwargs: Any) -> Run:
    result = subprocess.run(
        [*FLOWENV, *map(str, args)], env=env, capture_output=True, text=True, timeout=300, **kwargs
    )
    return Run(result.returncode, result.stdout, result.stderr)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {PATIENCE} s: {what}")
        time.sleep(0.05)


def _lock_free(path: Path) -> bool:
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


@attrs.frozen
class Warm:
    """An environment whose `flowenv lock` uses a warm server in ``directory``."""

    env: dict[str, str]
    directory: Path
    #: Every environment a test used: each may have its own server to stop.
    variants: list[dict[str, str]] = attrs.field(factory=list)

    def variant(self, **changes: str) -> Warm:
        env = {**self.env, **changes}
        self.variants.append(env)
        return Warm(env, self.directory, self.variants)

    def status(self) -> tuple[int | None, int | None]:
        """(server pid, locks it served), (None, None) when none is running."""
        out = flowenv("server", "status", env=self.env).out
        match = re.search(r"pid (\d+), (\d+) locks served", out)
        return (int(match[1]), int(match[2])) if match else (None, None)

    def wait_for_server(self) -> int:
        _until(lambda: self.status()[0] is not None, "the warm server to answer")
        pid = self.status()[0]
        assert pid is not None
        return pid

    def wait_all_gone(self) -> None:
        """Every server that used this directory has exited (its flock is free)."""
        _until(
            lambda: all(_lock_free(p) for p in self.directory.glob("*.lock")),
            "the warm servers to exit",
        )


@pytest.fixture
def warm() -> Iterator[Warm]:
    # mkdtemp, not tmp_path: a socket path must stay under ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fw-", dir="/tmp" if os.path.isdir("/tmp") else None))
    env = dict(
        os.environ, FLOWENV_SERVER="1", FLOWENV_SERVER_DIR=str(directory), FLOWENV_SERVER_IDLE="120"
    )
    env.pop("CI", None)
    state = Warm(env, directory, [env])
    try:
        yield state
    finally:
        for variant in state.variants:
            flowenv("server", "stop", env=variant)
        state.wait_all_gone()
        shutil.rmtree(directory)


def _cold(env: dict[str, str]) -> dict[str, str]:
    return {**env, "FLOWENV_SERVER": "0"}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "locks").rglob("*"))
        if p.is_file()
    }


def _written(root: Path) -> list[Path]:
    """Every file under the project's lock dir (temporary ones included)."""
    return [p for p in (root / "locks").rglob("*") if p.is_file()]


def _twin(root: Path, name: str) -> Path:
    twin = root.parent / name
    twin.mkdir()
    shutil.copy2(root / "flowenv.toml", twin / "flowenv.toml")
    return twin


def test_the_first_lock_starts_the_server_and_the_next_is_served_identically(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    cold_root = make_project(BODY)
    warm_root = _twin(cold_root, "served")
    cold = flowenv("-C", cold_root, "lock", env=_cold(warm.env))
    assert cold.code == 0, cold.err
    assert not list(warm.directory.iterdir())  # FLOWENV_SERVER=0: no server either

    first = flowenv("-C", warm_root, "lock", env=warm.env)
    assert first == cold
    server = warm.wait_for_server()
    assert warm.status() == (server, 0)  # the first lock ran in-process

    shutil.rmtree(warm_root / "locks")
    served = flowenv("-C", warm_root, "lock", env=warm.env)
    assert served == cold
    assert _files(warm_root) == _files(cold_root)
    assert warm.status() == (server, 1)

    # Global options after the command, and a quiet, fresh lock: served too.
    again = flowenv("lock", "-C", warm_root, "train", env=warm.env)
    assert again == flowenv("lock", "-C", cold_root, "train", env=_cold(warm.env))
    assert "fresh" in again.out
    assert warm.status() == (server, 2)
    # Every other command runs in-process.
    assert flowenv("-C", warm_root, "show", env=warm.env).code == 0
    assert warm.status() == (server, 2)


def test_a_fresh_served_lock_is_answered_by_the_childs_fast_path(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    """A lock with nothing to do takes the fast path in the child, as it would in-process:
    the full path would have rewritten the freshness record."""
    from flowenv.lockfiles.freshness import record_path

    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0  # in-process; starts the server
    server = warm.wait_for_server()
    # A lock's stat vouches for nothing in the seconds after it was written
    # (flowenv.lockfiles.freshness): the first lock after that records them.
    time.sleep(3.1)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    record = record_path(root / "flowenv.toml")
    before = (record.read_bytes(), record.stat().st_mtime_ns)
    # A quiet lock: what the fast path answers (it prints nothing when all is fresh).
    served = flowenv("-q", "-C", root, "lock", env=warm.env)
    assert served == Run(0, "", "")
    assert warm.status() == (server, 2)
    assert (record.read_bytes(), record.stat().st_mtime_ns) == before
    # The full path, for contrast: the same lock, not quiet, records again.
    assert "fresh" in flowenv("-C", root, "lock", env=warm.env).out
    assert warm.status() == (server, 3)
    assert record.stat().st_mtime_ns != before[1]


@pytest.mark.parametrize(
    ("edit", "code", "expected"),
    [
        # A configuration error: file, line and key path, exit 2.
        (
            lambda text: text.replace('alpha = ">=1"', "alpha = 3"),
            2,
            r"flowenv\.toml:\d+: base\.pypi\.packages\.alpha",
        ),
        # A resolution failure: exit 3.
        (
            lambda text: text.replace('alpha = ">=1"', 'beta = "1.5", epsilon = "3.1"'),
            3,
            r"cannot resolve base",
        ),
    ],
)
def test_a_served_failure_reports_exactly_what_an_in_process_one_does(
    make_project: Callable[..., Path],
    warm: Warm,
    edit: Callable[[str], str],
    code: int,
    expected: str,
) -> None:
    root = make_project(BODY)
    toml = root / "flowenv.toml"
    toml.write_text(edit(toml.read_text()))
    cold = flowenv("-C", root, "lock", env=_cold(warm.env))
    assert cold.code == code
    assert re.search(expected, cold.err), cold.err
    assert "Traceback" not in cold.err
    assert flowenv("-C", root, "lock", env=warm.env) == cold  # in-process; starts the server
    server = warm.wait_for_server()
    assert flowenv("-C", root, "lock", env=warm.env) == cold
    assert warm.status() == (server, 1)
    assert not _written(root)


def test_ci_and_flowenv_server_0_bypass_a_running_server(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    server = warm.wait_for_server()
    for bypass in ({"CI": "1"}, {"FLOWENV_SERVER": "0"}):
        shutil.rmtree(root / "locks")
        result = flowenv("-C", root, "lock", env={**warm.env, **bypass})
        assert result.code == 0, result.err
        assert warm.status() == (server, 0)
        off = flowenv("server", "status", env={**warm.env, **bypass}).out
        assert off.startswith("warm server off: ")


@pytest.mark.parametrize("unsafe", ["group-writable", "symlink"])
def test_an_unsafe_socket_directory_is_refused(
    make_project: Callable[..., Path], warm: Warm, tmp_path: Path, unsafe: str
) -> None:
    if unsafe == "group-writable":
        directory = warm.directory / "open"
        directory.mkdir(mode=0o700)
        directory.chmod(0o770)
    else:
        target = warm.directory / "private"
        target.mkdir(mode=0o700)
        directory = warm.directory / "link"
        directory.symlink_to(target)
    env = {**warm.env, "FLOWENV_SERVER_DIR": str(directory)}
    root = make_project(BODY)
    result = flowenv("-C", root, "lock", env=env)
    assert result.code == 0, result.err
    assert not list(directory.iterdir())  # no socket: no server was started
    assert "not private" in flowenv("server", "status", env=env).out


def with_sitecustomize(warm: Warm, tmp_path: Path) -> tuple[Warm, Path]:
    """A variant whose processes all load a sitecustomize module: edit it (the Path
    returned) as an upgrade or an editable install's edit would be."""
    site = tmp_path / "site"
    site.mkdir()
    module = site / "sitecustomize.py"
    module.write_text("LOADED = True\n")
    return warm.variant(PYTHONPATH=str(site)), module


def test_a_changed_module_retires_the_server_and_its_request_runs_in_process(
    make_project: Callable[..., Path], warm: Warm, tmp_path: Path
) -> None:
    old, module = with_sitecustomize(warm, tmp_path)
    env = old.env
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=env).code == 0
    first = old.wait_for_server()

    module.write_text("LOADED = True  # upgraded\n")
    shutil.rmtree(root / "locks")
    result = flowenv("-C", root, "lock", env=env)
    assert result.code == 0, result.err
    assert len(_files(root)) == 4
    # The old server declined and left; the in-process lock started a new one.
    second = old.wait_for_server()
    assert second != first
    assert old.status() == (second, 0)


def test_an_idle_server_exits_by_itself(make_project: Callable[..., Path], warm: Warm) -> None:
    idle = warm.variant(FLOWENV_SERVER_IDLE="1")
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=idle.env).code == 0
    idle.wait_for_server()
    idle.wait_all_gone()
    assert not list(warm.directory.glob("*.sock"))


@pytest.mark.parametrize("source", ["git package", "local package with a git dependency"])
def test_a_lock_that_may_run_git_is_run_in_process_not_by_the_server(
    make_project: Callable[..., Path], warm: Warm, source: str
) -> None:
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    server = warm.wait_for_server()
    git_url = f"git+file:///nonexistent/gitlib@{'a' * 40}"
    if source == "git package":
        table = f'gitlib = {{ git = "{git_url[4:].split("@")[0]}", rev = "{"a" * 40}" }}'
    else:
        write_local_package(root / "libs" / "mylib", "mylib", "1.0", [f"gitlib @ {git_url}"])
        table = 'mylib = { path = "libs/mylib" }'
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text() + f"\n[steps.fetch]\npypi.packages = {{ {table} }}\n")
    cold = flowenv("-C", root, "lock", "fetch", env=_cold(warm.env))
    assert cold.code == 3, cold.err
    served = flowenv("-C", root, "lock", "fetch", env=warm.env)
    # git's own message names a fresh temporary directory each run: compare the rest.
    assert (served.code, served.out) == (cold.code, cold.out)
    assert served.err.splitlines()[:3] == cold.err.splitlines()[:3]
    assert warm.status() == (server, 0)  # declined before doing anything


class _Stall:
    """An index whose every request waits until released: a real, slow resolution."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.arrived = threading.Event()
        self.release = threading.Event()

    def handler(self) -> Callable[..., Any]:
        from http.server import SimpleHTTPRequestHandler

        stall = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(stall.root), **kwargs)

            def do_GET(self) -> None:
                stall.arrived.set()
                stall.release.wait(PATIENCE)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def stalled_project(
    make_project: Callable[..., Path], wheelhouse: Path, tmp_path: Path, warm: Warm
) -> Iterator[tuple[Path, _Stall, str]]:
    """A project on a stalled index, with a warm server already running; and a marker value."""
    build_simple_index(sorted(wheelhouse.glob("*.whl")), tmp_path / "stalled")
    stall = _Stall(tmp_path / "stalled")
    warmup = make_project(BODY, name="warmup")
    assert flowenv("-C", warmup, "lock", env=warm.env).code == 0
    warm.wait_for_server()
    with serve_handler(stall.handler()) as url:
        root = make_project("", name="slow")
        (root / "flowenv.toml").write_text(
            '[project]\nname = "slow"\nplatforms = ["linux-64"]\n'
            f'pypi.index-url = "{url}/simple/"\n\n[base]\npython = "3.11"\n'
            'pypi.packages = { alpha = ">=1" }\n'
        )
        try:
            yield root, stall, uuid.uuid4().hex
        finally:
            stall.release.set()


def _marked(marker: str) -> list[tuple[int, int]]:
    """(pid, parent pid) of every process started with FLOWENV_TEST_MARKER=marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"FLOWENV_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                found.append((int(entry.name), int(parent)))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stalled_lock(
    project: tuple[Path, _Stall, str], warm: Warm, **popen: Any
) -> tuple[subprocess.Popen[str], set[int]]:
    """``flowenv lock`` started on the stalled index, once uv waits on it; and the uv's parents.

    Those parents are the server's child: uv runs under it, never under the client.
    """
    root, stall, marker = project
    client = subprocess.Popen(
        [*FLOWENV, "-C", str(root), "lock"],
        env={**warm.env, "FLOWENV_TEST_MARKER": marker},
        text=True,
        **popen,
    )
    assert stall.arrived.wait(PATIENCE), "uv never asked the index"
    children = {parent for pid, parent in _marked(marker) if pid != client.pid}
    assert children
    assert client.pid not in children
    return client, children


def _after(client: subprocess.Popen[str], action: Callable[[], object]) -> tuple[str, str]:
    """``action``, then the client's (stdout, stderr) once it ends; killed if anything fails."""
    try:
        action()
        return client.communicate(timeout=PATIENCE)
    finally:
        client.kill()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_sigint_reaches_the_served_lock_and_uv_and_writes_nothing(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    root, _, marker = stalled_project
    client, _ = _stalled_lock(stalled_project, warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = _after(client, lambda: client.send_signal(signal.SIGINT))
    assert client.returncode == 130, err
    assert "flowenv: interrupted" in err
    assert "Traceback" not in err
    assert not _written(root)
    _until(lambda: _marked(marker) == [], "uv to end")
    assert warm.status()[1] == 1


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_killed_client_ends_its_served_lock(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    root, _, marker = stalled_project
    client, children = _stalled_lock(
        stalled_project, warm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client.kill()
    client.wait()
    _until(lambda: _marked(marker) == [], "uv to end")
    _until(lambda: not any(map(_alive, children)), "the server's child to end")
    assert not _written(root)


def test_a_dead_servers_socket_file_is_replaced_and_rival_servers_leave_one(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    path = re.search(r"socket (\S+)\)", flowenv("server", "status", env=warm.env).out)
    assert path is not None
    # What a killed server leaves: a socket file nobody listens on.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path[1])
    dead.close()
    code = "import sys; from flowenv.warm.server import main; sys.exit(main(sys.argv[1:]))"
    rivals = [
        subprocess.Popen([sys.executable, "-c", code, path[1]], env=warm.env) for _ in range(3)
    ]
    pid = warm.wait_for_server()
    assert pid in {r.pid for r in rivals}
    for rival in rivals:
        if rival.pid != pid:
            assert rival.wait(timeout=PATIENCE) == 0  # left quietly
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    assert warm.status() == (pid, 2)  # the surviving rival served both
    flowenv("server", "stop", env=warm.env)
    [winner] = [r for r in rivals if r.pid == pid]
    assert winner.wait(timeout=PATIENCE) == 0


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_served_lock_that_dies_is_an_error_never_a_second_run(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    root, stall, marker = stalled_project
    client, children = _stalled_lock(
        stalled_project, warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = _after(client, lambda: [os.kill(child, signal.SIGKILL) for child in children])
    assert client.returncode == 1
    assert "ended without an exit status" in err
    assert "FLOWENV_SERVER=0" in err
    # The client returned while the index still held every request: it did not
    # run the lock again in-process (that would wait on the index too).
    assert not stall.release.is_set()
    assert not _written(root)
    _until(lambda: _marked(marker) == [], "the client to end the dead child's uv")


def test_a_server_whose_socket_file_is_removed_leaves(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    warm.wait_for_server()
    for sock in warm.directory.glob("*.sock"):
        sock.unlink()
    warm.wait_all_gone()
    # The next lock runs in-process and starts a new one.
    assert flowenv("-C", root, "lock", env=warm.env).code == 0
    warm.wait_for_server()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_ctrl_z_stops_the_served_lock_with_the_client_and_fg_resumes_it(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    root, stall, _ = stalled_project
    client, children = _stalled_lock(
        stalled_project, warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def suspend_and_resume() -> None:
        client.send_signal(signal.SIGTSTP)
        _until(lambda: _state(client.pid) == "T", "the client to stop")
        _until(lambda: all(_state(child) == "T" for child in children), "the child to stop")
        client.send_signal(signal.SIGCONT)
        _until(lambda: _state(client.pid) != "T", "the client to go on")
        _until(lambda: all(_state(child) != "T" for child in children), "the child to go on")
        stall.release.set()

    out, err = _after(client, suspend_and_resume)
    assert client.returncode == 0, err
    assert "written  base · linux-64" in out
    assert len(_written(root)) == 1


def test_a_served_lock_runs_in_the_clients_cwd_umask_and_environment(
    make_project: Callable[..., Path], warm: Warm, tmp_path: Path
) -> None:
    root = make_project(BODY)
    assert flowenv("-C", root, "lock", env=warm.env).code == 0  # starts the server
    server = warm.wait_for_server()
    shutil.rmtree(root / "locks")
    # A cache directory the server never saw: the freshness record must land there.
    cache = tmp_path / "client-cache"
    env = {**warm.env, "FLOWENV_CACHE_DIR": str(cache)}
    served = subprocess.run(
        [*FLOWENV, "lock"], cwd=root, env=env, umask=0o077, capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr
    assert warm.status() == (server, 1)
    written = _written(root)
    assert len(written) == 4
    assert {path.stat().st_mode & 0o777 for path in written} == {0o600}
    assert [p for p in cache.rglob("*") if p.is_file()]


def test_the_server_a_lock_starts_holds_none_of_its_callers_pipes(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    import select

    root = make_project(BODY)
    read, write = os.pipe()
    try:
        result = subprocess.run(
            [*FLOWENV, "-C", str(root), "lock"],
            env=warm.env,
            pass_fds=(write,),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        warm.wait_for_server()  # started by that lock, which held `write`
        os.close(write)
        write = -1
        # EOF only once no process holds the write end: the server must not.
        ready, _, _ = select.select([read], [], [], PATIENCE)
        assert ready
        assert os.read(read, 1) == b""
    finally:
        os.close(read)
        if write != -1:
            os.close(write)
