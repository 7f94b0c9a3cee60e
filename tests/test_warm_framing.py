"""The warm server's wire format and the client's choice of what to hand it (pure functions)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowenv.warm import framing
from flowenv.warm.client import is_lock


def test_a_run_request_round_trips_bytes_that_are_not_utf_8() -> None:
    environ = {b"PATH": b"/usr/bin", b"ODD": b"caf\xe9=x", b"EMPTY": b""}
    argv = ["flowenv", "-C", "dir with space", "lock", "caf\udce9"]
    encoded = framing.encode_request(framing.RUN, "/tmp/caf\udce9", 0o027, argv, environ)
    assert int.from_bytes(encoded[:4], "big") == len(encoded) - 4
    request = framing.decode_request(encoded[4:])
    assert request is not None
    assert request.kind == framing.RUN
    assert request.cwd == b"/tmp/caf\xe9"
    assert request.umask == 0o027
    assert request.argv == [b"flowenv", b"-C", b"dir with space", b"lock", b"caf\xe9"]
    assert request.environ == environ


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"flowenv-warm/0\0run\0/\022\00\0",  # another version
        b"flowenv-warm/1\0run\0/\022\02\0lock\0",  # fewer argv than counted
        b"flowenv-warm/1\0run\0/\09z\00\0",  # umask not octal
        b"flowenv-warm/1\0run\0/\022\00\0NOEQUALS\0",  # not NAME=VALUE
        b"flowenv-warm/1\0run\0/\022\00\0=value\0",  # no name
        b"flowenv-warm/1\0run\0/\022\00",  # not NUL-terminated
        b"flowenv-warm/1\0status\0extra\0",
    ],
)
def test_a_malformed_request_is_refused(body: bytes) -> None:
    assert framing.decode_request(body) is None


def test_status_and_stop_requests_and_replies() -> None:
    for kind in (framing.STATUS, framing.STOP):
        request = framing.decode_request(framing.encode_request(kind)[4:])
        assert request is not None
        assert request.kind == kind
    assert framing.parse_reply(framing.reply(b"pid", 4242)[:-1]) == (b"pid", 4242)
    assert framing.parse_reply(b"pid x") is None


@pytest.mark.parametrize(
    ("argv", "served"),
    [
        (["lock"], True),
        (["-q", "lock"], True),
        (["-C", "d", "-c", "x.toml", "lock", "--check", "-U"], True),
        (["lock", "-C", "d", "train", "-p", "linux-64"], True),
        (["show"], False),
        (["sync", "lock"], False),
        ([], False),
        (["--version"], False),
        (["-v", "lock"], False),  # an option flowenv does not know: argparse says so in-process
        (["server", "status"], False),
    ],
)
def test_only_flowenv_lock_goes_to_the_server(argv: list[str], served: bool) -> None:
    assert is_lock(argv) is served


def test_the_client_imports_nothing_heavy_before_handing_over() -> None:
    # What `flowenv lock` loads before it connects: no enum (socket, signal, re),
    # no json, no attrs; they are the milliseconds the warm server exists to save.
    probe = (
        "import sys; before = set(sys.modules)\n"
        "import flowenv.cli, flowenv.warm.client, _socket, _signal\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "flowenv.warm.client" in loaded
    assert not loaded & {"enum", "re", "json", "socket", "signal", "attrs", "argparse", "typing"}
