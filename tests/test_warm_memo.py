"""The configuration memo through the warm server: a re-lock served with last run's
memo writes the bytes an in-process lock writes, and reports errors as it does.

Real processes: the installed ``flowenv`` console script, a real server in a
private socket directory, real uv against the tests' wheel index. The server
and helpers are those of tests/test_warm_server.py.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.test_warm_server import (
    Warm,
    _cold,
    _files,
    _twin,
    flowenv,
    pytestmark,
    warm,
)

__all__ = ["pytestmark", "warm"]  # the skip marker and the fixture, used by name

BODY = """
[base]
python = "3.11"
pypi.packages = { alpha = ">=1" }

[steps.start]

[steps.train]
pypi.packages = { delta = "0.5" }

[steps.score]
platforms = ["linux-64", "osx-arm64"]
pypi.packages = { epsilon = "3.1" }

[steps.report]
pypi.packages = { beta = "1.0" }
"""

#: Each a one-step change of the configuration before it, in order.
STEPS: list[tuple[str, str]] = [
    ('epsilon = "3.1"', 'epsilon = ">=3,<4"'),  # a changed step
    ('beta = "1.0"', 'beta = "1.5"'),  # another
    ('alpha = ">=1"', 'alpha = ">=2"'),  # base: every env over it changes
    ('epsilon = ">=3,<4"', 'epsilon = "3.1"'),  # back again: last-but-two run's tables
]


def test_served_relocks_with_a_memo_write_what_in_process_locks_write(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    cold_root = make_project(BODY)
    served_root = _twin(cold_root, "served")
    cold_toml, served_toml = cold_root / "flowenv.toml", served_root / "flowenv.toml"
    cold_env = _cold(warm.env)
    assert flowenv("-C", cold_root, "lock", env=cold_env).code == 0
    assert flowenv("-C", served_root, "lock", env=warm.env).code == 0  # starts the server
    server = warm.wait_for_server()
    # Served: a lock that changes nothing, then each one-step change in turn,
    # every one after a run that sent its memo back.
    first = flowenv("-C", served_root, "lock", env=warm.env)
    assert first == flowenv("-C", cold_root, "lock", env=cold_env)
    for i, (old, new) in enumerate(STEPS):
        text = cold_toml.read_text()
        assert old in text
        cold_toml.write_text(text.replace(old, new))
        served_toml.write_text(cold_toml.read_text())
        served = flowenv("-C", served_root, "lock", env=warm.env)
        cold = flowenv("-C", cold_root, "lock", env=cold_env)
        assert served == cold
        assert served.code == 0, served.err
        assert _files(served_root) == _files(cold_root)
        assert warm.status() == (server, 2 + 2 * i)  # with the --check before it
        # And --check agrees (it reads the same hashes the memo carries).
        check = flowenv("-C", served_root, "lock", "--check", env=warm.env)
        assert check == flowenv("-C", cold_root, "lock", "--check", env=cold_env)
        assert check.code == 0, check.err


def test_an_error_after_memoised_runs_is_located_as_in_process(
    make_project: Callable[..., Path], warm: Warm
) -> None:
    root = make_project(BODY)
    toml = root / "flowenv.toml"
    assert flowenv("-C", root, "lock", env=warm.env).code == 0  # in-process; starts the server
    server = warm.wait_for_server()
    assert flowenv("-C", root, "lock", env=warm.env).code == 0  # served: the memo holds BODY
    locks = _files(root)
    valid = toml.read_text()
    for old, new, where in [
        # An unchanged table the memo holds as valid, made invalid by [project]:
        ('platforms = ["linux-64", "osx-arm64"]\n', 'platforms = ["linux-64"]\n', "score"),
        # Tables the memo holds as valid, changed into errors:
        ("[base]", '[base]\nsolve-group = "g g"', r"base\.solve-group"),
        ('beta = "1.0"', "beta = 1.0", r"steps\.report\.pypi\.packages\.beta"),
        ('beta = "1.0"', 'beta = "1.0", "beta_" = "1.5"', r"steps\.report\.pypi\.packages"),
        ("[steps.start]", "[steps.start]\nenv = 'gpu'", r"steps\.start\.env"),
    ]:
        assert old in valid
        toml.write_text(valid.replace(old, new, 1))
        cold = flowenv("-C", root, "lock", "--check", env=_cold(warm.env))
        served = flowenv("-C", root, "lock", "--check", env=warm.env)
        assert served == cold
        assert served.code == 2
        if where == "score":
            where = r"steps\.score\.platforms\[1\]: 'osx-arm64' is not in project\.platforms"
        assert re.search(rf"flowenv\.toml:\d+: {where}", served.err), served.err
        assert "Traceback" not in served.err
        toml.write_text(valid)
        assert flowenv("-C", root, "lock", env=warm.env).code == 0  # back, served
    assert _files(root) == locks
    assert warm.status()[0] == server
    shutil.rmtree(root / "locks")
