"""The warm server's spare (flowenv.warm.spare): a child forked ahead of the next lock.

Real processes throughout (see tests/test_warm_server.py). A spare that was
not handed a request never exits on its own, so a spare that is gone after a
lock while its server lives and counts one more lock served is the one that
served it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_warm_attacks import _started
from tests.test_warm_server import (
    BODY,
    Warm,
    _after,
    _alive,
    _cold,
    _files,
    _marked,
    _Stall,
    _stalled_lock,
    _state,
    _until,
    _written,
    flowenv,
    stalled_project,
    warm,
    with_sitecustomize,
)

__all__ = ["stalled_project", "warm"]  # fixtures, used by name

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="reads a process's children from /proc"
)


def _children(pid: int) -> set[int]:
    """The living children of ``pid`` (Linux's /proc/PID/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return {child for child in found if _alive(child)}


def _ended(pid: int) -> bool:
    return not _alive(pid)


def _ready(warm: Warm) -> int | None:
    """The pid of the spare ``flowenv server status`` says is ready, if any."""
    match = re.search(r"a spare ready: pid (\d+)", flowenv("server", "status", env=warm.env).out)
    return int(match[1]) if match else None


def _spare_of(warm: Warm, server: int) -> int:
    """The server's spare, once it is ready (a lock before that is forked, not handed to it)."""
    _until(lambda: _ready(warm) in _children(server), "the server's spare to be ready")
    spare = _ready(warm)
    assert spare is not None
    return spare


def test_the_spare_serves_the_next_lock_and_another_takes_its_place(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    cold_root = make_project(BODY)
    root = cold_root.parent / "served"
    shutil.copytree(cold_root, root)
    server = _started(warm, root)
    expected = flowenv("-C", cold_root, "lock", env=_cold(warm.env))
    shutil.rmtree(root / "locks")
    for served in (1, 2):
        spare = _spare_of(warm, server)
        result = flowenv("-C", root, "lock", env=warm.env)
        assert result == expected
        assert _files(root) == _files(cold_root)
        assert warm.status() == (server, served)
        _until(functools.partial(_ended, spare), "the spare that served to end")
        assert _spare_of(warm, server) != spare
        shutil.rmtree(root / "locks")


def test_a_killed_spare_costs_nothing_but_a_fork(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    root = make_project(BODY)
    server = _started(warm, root)
    spare = _spare_of(warm, server)
    os.kill(spare, signal.SIGKILL)
    _until(lambda: spare not in _children(server), "the killed spare to be reaped")
    shutil.rmtree(root / "locks")
    result = flowenv("-C", root, "lock", env=warm.env)
    assert result.code == 0, result.err
    assert len(_files(root)) == 4
    # Served (by a fork: the dead spare was dropped), and a new spare follows.
    assert warm.status() == (server, 1)
    assert _spare_of(warm, server) != spare


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_the_spare_leaves_with_its_server(
    make_project: Callable[..., Path], warm: Warm, how: str
) -> None:
    root = make_project(BODY)
    server = _started(warm, root)
    spare = _spare_of(warm, server)
    if how == "stop":
        assert "stopped" in flowenv("server", "stop", env=warm.env).out
    else:
        os.kill(server, signal.SIGKILL)
    _until(lambda: not _alive(spare), "the spare to leave with its server")
    assert not warm.status()[0]


def test_a_spare_forked_before_a_module_changed_hands_the_lock_back(
    make_project: Callable[..., Path], warm: Warm, tmp_path: Path
) -> None:
    # The spare ran the old code's warm-up; its verdict says the code changed,
    # so it declines before anything, the client locks in-process (and starts
    # a new server) and the old server leaves with its spare.
    old, module = with_sitecustomize(warm, tmp_path)
    root = make_project(BODY)
    server = _started(old, root)
    spare = _spare_of(old, server)
    module.write_text("LOADED = True  # upgraded\n")
    shutil.rmtree(root / "locks")
    result = flowenv("-C", root, "lock", env=old.env)
    assert result.code == 0, result.err
    assert len(_files(root)) == 4
    _until(lambda: not _alive(spare) and not _alive(server), "the old server and spare to leave")
    new = old.wait_for_server()  # the in-process lock started it
    assert new != server
    assert old.status() == (new, 0)


def test_served_locks_parse_alike_one_after_another(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    """A warm child parses with the lock parser the server built once
    (flowenv.cli.parser.kept_parser): options of one lock never reach the next,
    and usage errors read as in-process."""
    root = make_project(BODY)
    server = _started(warm, root)
    runs = [
        ("lock", "--no-such-option"),
        ("lock", "-p", "nowhere-64"),
        ("lock", "train", "-p", "linux-64", "--upgrade"),
        ("lock", "train"),
        ("-q", "lock"),
        ("lock", "--check"),
    ]
    for args in runs:
        served = flowenv("-C", root, *args, env=warm.env)
        assert served == flowenv("-C", root, *args, env=_cold(warm.env)), args
        assert "Traceback" not in served.err
    assert flowenv("-C", root, "lock", "--no-such-option", env=warm.env).code == 2
    # All served (the check too: no record made by a check lets the client answer it).
    assert warm.status() == (server, len(runs) + 1)


def test_a_stopped_spare_is_let_go_and_never_handed_a_lock(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    # Handed a request while stopped (SIGSTOP), a spare would sit on it, the
    # client waiting, until continued: the server lets a stopped spare go, and
    # the lock is served by a fork or by the next spare.
    root = make_project(BODY)
    server = _started(warm, root)
    spare = _spare_of(warm, server)
    os.kill(spare, signal.SIGSTOP)
    try:
        # Let go: the spare it reports ready is another (forked since) or none.
        _until(lambda: _ready(warm) != spare, "the server to let the stopped spare go")
        shutil.rmtree(root / "locks")
        result = flowenv("-C", root, "lock", env=warm.env)
        assert result.code == 0, result.err
        assert len(_files(root)) == 4
        assert warm.status() == (server, 1)
    finally:
        os.kill(spare, signal.SIGCONT)
    _until(functools.partial(_ended, spare), "the spare let go to leave once continued")
    assert _spare_of(warm, server) != spare


def test_ctrl_z_and_ctrl_c_reach_a_lock_the_spare_serves(
    stalled_project: tuple[Path, _Stall, str], warm: Warm
) -> None:
    # The signal tests of tests/test_warm_server.py may run through a fork or
    # the spare (timing decides): this one makes sure of the spare.
    root, _, marker = stalled_project
    server = warm.wait_for_server()
    spare = _spare_of(warm, server)
    client, children = _stalled_lock(
        stalled_project, warm, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert children == {spare}  # uv runs under the spare

    def suspend_resume_interrupt() -> None:
        client.send_signal(signal.SIGTSTP)
        _until(lambda: _state(client.pid) == "T", "the client to stop")
        _until(lambda: _state(spare) == "T", "the spare serving it to stop")
        client.send_signal(signal.SIGCONT)
        _until(lambda: _state(spare) not in ("T", "t"), "the spare to go on")
        client.send_signal(signal.SIGINT)

    _, err = _after(client, suspend_resume_interrupt)
    assert client.returncode == 130, err
    assert "flowenv: interrupted" in err
    assert "Traceback" not in err
    assert not _written(root)
    _until(lambda: _marked(marker) == [], "uv to end")
    # Stopped while serving, it stayed a child serving a client, counted when it
    # reported (the fixture's first lock ran in-process).
    assert warm.status() == (server, 1)
