"""Hostile lock files through every command that reads them.

Each malformed or hostile ``pylock.<platform>.toml`` / ``conda-lock.yml`` sits
in a project whose configuration it is *fresh* for (it records the right
input hash), so every command gets past the staleness check and must read it
whole. Each must answer with one message naming the file and the key path,
exit 2, and no traceback; ``git textconv`` prints the text unchanged instead
(a file it cannot read must not break ``git diff``). A "billion laughs" or a
document nested 1000 deep is refused before it is expanded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.spec import build_environments
from tests.support.git_repo import commit_all, init_repo

PYPI_CONFIG = """\
[project]
name = "hostile"
platforms = ["linux-64"]

[base]
python = "3.11"
pypi.packages = { alpha = "2.0" }
"""

CONDA_CONFIG = """\
[project]
name = "hostile"
platforms = ["linux-64"]
conda.channels = ["file:///nonexistent/channel"]

[base]
python = "3.11"
conda.packages = { numpy = "1.26" }
"""

_DIGEST = "ab" * 32


def _input_hash(root: Path) -> str:
    return build_environments(load_config(root / "flowenv.toml")).get("base").input_hash("linux-64")


def _pylock(root: Path, body: str) -> str:
    """A pylock whose ``[tool.flowenv]`` makes it fresh, with ``body`` as its top-level part."""
    return (
        'lock-version = "1.0"\ncreated-by = "flowenv"\n'
        + body
        + f'\n[tool.flowenv]\nplatform = "linux-64"\npython = "3.11"\nresolver = "uv"\n'
        f'input-hash = "{_input_hash(root)}"\n'
    )


def _conda_lock(root: Path, packages: str) -> str:
    """A conda-lock v1 file fresh for ``root``'s config, with ``packages`` as its ``package:``."""
    return textwrap.dedent(f"""\
        version: 1
        metadata:
          content_hash:
            linux-64: '{_DIGEST}'
          channels:
          - url: file:///nonexistent/channel
            used_env_vars: []
          platforms:
          - linux-64
          sources:
          - ../../flowenv.toml
          custom_metadata:
            flowenv-input-hash-linux-64: '{_input_hash(root)}'
        """) + packages


_WHEEL = "[[packages.wheels]]\nurl = 'https://x.example/alpha-2.0-py3-none-any.whl'\n"

#: (case id, kind, lock text builder, what the message must name)
PYLOCK_CASES: list[tuple[str, Callable[[Path], str], str]] = [
    (
        "missing-name",
        lambda root: _pylock(root, '[[packages]]\nversion = "2.0"\n'),
        "packages[0].name: missing",
    ),
    (
        "hashes-a-string",
        lambda root: _pylock(
            root, f'[[packages]]\nname = "alpha"\nversion = "2.0"\n{_WHEEL}hashes = "abc"\n'
        ),
        "packages[0].wheels[0].hashes: expected a table",
    ),
    (
        "packages-a-string",
        lambda root: _pylock(root, 'packages = "alpha"\n'),
        "packages: expected an array",
    ),
    (
        "name-with-newline",
        lambda root: _pylock(
            root, '[[packages]]\nname = "alpha\\n-r /etc/passwd"\nversion = "2.0"\n'
        ),
        "packages[0].name: holds a control character",
    ),
    (
        "version-injection",
        lambda root: _pylock(root, '[[packages]]\nname = "alpha"\nversion = "2.0 ; -r x"\n'),
        "packages[0].version: '2.0 ; -r x' is not a valid version",
    ),
    (
        "sha256-not-hex",
        lambda root: _pylock(
            root,
            f'[[packages]]\nname = "alpha"\nversion = "2.0"\n{_WHEEL}'
            "hashes = { sha256 = 'zz' }\n",
        ),
        "packages[0].wheels[0].hashes.sha256: expected 64 hexadecimal digits",
    ),
    (
        "nested-1000-deep",
        lambda root: _pylock(root, "deep = " + "[" * 1000 + "]" * 1000 + "\n"),
        "nested more than 32 deep",
    ),
    (
        "inline-tables-1000-deep",
        lambda root: _pylock(root, "deep = " + "{ a = " * 1000 + "1" + " }" * 1000 + "\n"),
        "nested more than 32 deep",
    ),
]

_BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n"
        for i in range(8)
    )
)

CONDA_CASES: list[tuple[str, Callable[[Path], str], str]] = [
    (
        "package-a-mapping",
        lambda root: _conda_lock(root, "package:\n  name: numpy\n"),
        "package: expected an array",
    ),
    (
        "billion-laughs",
        lambda root: _conda_lock(root, "package: []\n" + _BILLION_LAUGHS),
        "YAML anchors and aliases are not allowed",
    ),
    (
        "nested-1000-deep",
        lambda root: _conda_lock(root, "package: []\ndeep: " + "[" * 1000 + "]" * 1000 + "\n"),
        "nested more than 32 deep",
    ),
    (
        "missing-url",
        lambda root: _conda_lock(
            root,
            "package:\n- name: numpy\n  version: 1.26.4\n  manager: conda\n"
            "  platform: linux-64\n  hash: {md5: null}\n",
        ),
        "package[0].url: missing",
    ),
    (
        "name-with-newline",
        lambda root: _conda_lock(
            root,
            'package:\n- name: "numpy\\n-r /etc/passwd"\n  version: 1.26.4\n  manager: pip\n'
            "  platform: linux-64\n  url: https://x.example/numpy.whl\n",
        ),
        "package[0].name: holds a control character",
    ),
    (
        "hash-a-string",
        lambda root: _conda_lock(
            root,
            "package:\n- name: numpy\n  version: 1.26.4\n  manager: conda\n"
            "  platform: linux-64\n  url: https://x.example/numpy-1.26.4-0.conda\n"
            "  hash: abc\n",
        ),
        "package[0].hash: expected a table",
    ),
    (
        "dependencies-an-array",
        lambda root: _conda_lock(
            root,
            "package:\n- name: numpy\n  version: 1.26.4\n  manager: conda\n"
            "  platform: linux-64\n  url: https://x.example/numpy-1.26.4-0.conda\n"
            "  dependencies: [python]\n",
        ),
        "package[0].dependencies: expected a table",
    ),
]

#: Every command that reads a lock file of the project (textconv is checked apart).
COMMANDS: dict[str, list[str]] = {
    "export-requirements": ["export", "base", "-p", "linux-64", "--format", "requirements"],
    "export-explicit": ["export", "base", "-p", "linux-64", "--format", "explicit"],
    "export-environment-yml": ["export", "base", "-p", "linux-64", "--format", "environment-yml"],
    "sync": ["sync"],
    "hydrate": ["hydrate", "base", "--platform", "linux-64"],
    "lock-check": ["lock", "--check"],
    "show": ["show"],
    "diff": ["diff"],
}

_LINUX = pytest.mark.skipif(
    os.uname().sysname != "Linux" or os.uname().machine != "x86_64",
    reason="hydrate only builds envs for this machine's platform (linux-64 here)",
)


def _project(tmp_path: Path, config: str, lock_name: str, text_of: Callable[[Path], str]) -> Path:
    root = tmp_path / "proj"
    (root / "locks" / "base").mkdir(parents=True)
    (root / "flowenv.toml").write_text(config)
    init_repo(root)
    commit_all(root, "config")
    (root / "locks" / "base" / lock_name).write_text(text_of(root))
    return root


def _run(root: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-C", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _command_params(*, conda: bool = False) -> list[Any]:
    # lock --check reads a conda-lock.yml's input hashes only (no YAML parser on
    # that start-up path); the commands that use the file read it whole.
    return [
        pytest.param(args, id=name, marks=[_LINUX] if name == "hydrate" else [])
        for name, args in COMMANDS.items()
        if not (conda and name == "lock-check")
    ]


def _hostile_params() -> list[object]:
    kinds = (
        ("pylock", PYPI_CONFIG, "pylock.linux-64.toml", PYLOCK_CASES, False),
        ("conda", CONDA_CONFIG, "conda-lock.yml", CONDA_CASES, True),
    )
    return [
        pytest.param(
            config, lock_name, text_of, expected, command.values[0],
            id=f"{kind}-{case}-{command.id}", marks=command.marks,
        )
        for kind, config, lock_name, cases, conda in kinds
        for case, text_of, expected in cases
        for command in _command_params(conda=conda)
    ]


@pytest.mark.parametrize(("config", "lock_name", "text_of", "expected", "args"), _hostile_params())
def test_hostile_lock_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, lock_name: str,
    text_of: Callable[[Path], str], expected: str, args: list[str],
) -> None:
    root = _project(tmp_path, config, lock_name, text_of)
    code, out = _run(root, capsys, args)
    assert (code, out.count("\n")) == (2, 1), out
    assert lock_name in out
    assert expected in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("config", "lock_name", "text_of"),
    [
        *((PYPI_CONFIG, "pylock.linux-64.toml", c[1]) for c in PYLOCK_CASES),
        *((CONDA_CONFIG, "conda-lock.yml", c[1]) for c in CONDA_CASES),
    ],
    ids=[f"pylock-{c[0]}" for c in PYLOCK_CASES] + [f"conda-{c[0]}" for c in CONDA_CASES],
)
def test_textconv_prints_a_hostile_lock_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, lock_name: str,
    text_of: Callable[[Path], str],
) -> None:
    root = _project(tmp_path, config, lock_name, text_of)
    path = root / "locks" / "base" / lock_name
    capsys.readouterr()
    assert main(["git", "textconv", str(path)]) == 0
    assert capsys.readouterr().out == path.read_text()


@pytest.mark.parametrize("args", _command_params())
@pytest.mark.parametrize(
    ("config", "lock_name"),
    [(PYPI_CONFIG, "pylock.linux-64.toml"), (CONDA_CONFIG, "conda-lock.yml")],
    ids=["pylock", "conda-lock"],
)
def test_unreadable_lock_is_an_error_not_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], config: str,
    lock_name: str,
) -> None:
    """A lock that exists but cannot be read: a directory in its place (any user), and mode 000."""
    root = _project(tmp_path, config, lock_name, lambda _: "")
    path = root / "locks" / "base" / lock_name
    path.unlink()
    path.mkdir()
    code, out = _run(root, capsys, args)
    assert (code, out.count("\n")) == (2, 1), out
    assert f"{lock_name}: cannot read the lock file" in out
    assert "stale" not in out
    path.rmdir()
    path.write_text("")
    path.chmod(0)
    try:
        if os.geteuid() == 0:
            # root reads a mode-000 file: run flowenv as an unprivileged user instead.
            code, out = _run_unprivileged(tmp_path, root, args)
        else:
            code, out = _run(root, capsys, args)
    finally:
        path.chmod(0o644)
    assert (code, out.count("\n")) == (2, 1), out
    assert f"{lock_name}: cannot read the lock file: Permission denied" in out
    assert "stale" not in out


def _run_unprivileged(tmp_path: Path, root: Path, args: list[str]) -> tuple[int, str]:
    """``flowenv -C root ARGS`` as the user ``nobody`` (root ignores file modes)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a mode-000 file is readable")
    # nobody must reach the project: a world-readable copy outside pytest's 0700 tree.
    shared = Path(tempfile.mkdtemp(prefix="flowenv-hostile-"))
    try:
        shutil.copytree(root, shared / "proj", symlinks=True)
        for directory, _, files in os.walk(shared):
            os.chmod(directory, 0o777)
            for name in files:
                os.chmod(Path(directory) / name, 0o666)
        lock = next((shared / "proj" / "locks" / "base").iterdir())
        lock.chmod(0)
        env = {
            **os.environ,
            "HOME": str(shared),
            # git refuses a repository another user owns unless told it is safe.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
        }
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "flowenv", "-C", str(shared / "proj"), *args],
            capture_output=True, text=True, env=env, check=False, cwd=shared,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return result.returncode, result.stdout + result.stderr


def test_non_utf8_lock_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, PYPI_CONFIG, "pylock.linux-64.toml", lambda _: "")
    path = root / "locks" / "base" / "pylock.linux-64.toml"
    path.write_bytes(b"lock-version = '\xff'\n")
    code, out = _run(root, capsys, COMMANDS["export-requirements"])
    assert (code, out.count("\n")) == (2, 1), out
    assert "pylock.linux-64.toml: not UTF-8 text (byte 16)" in out
