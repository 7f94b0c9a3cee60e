"""Shared fixtures: a real wheel index built once per session, and project factories."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from tests.support.wheels import DEFAULT_WHEELS, WheelSpec, build_simple_index, build_wheel

# Fixture modules of the larger subsystems (conda channel, object-store servers, ...).
pytest_plugins: list[str] = [
    "tests.support.cli_runner",
    "tests.support.conda_channel",
    "tests.support.real_data",
    "tests.support.stores",
]


@pytest.fixture(scope="session", autouse=True)
def _private_uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """uv and flowenv cache in session directories: tests never read or fill the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("uv-cache")))
        patch.setenv("FLOWENV_CACHE_DIR", str(tmp_path_factory.mktemp("flowenv-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Processes the tests start make their temporary files in a session directory.

    Tests kill locks mid-resolution (SIGKILL, a forwarded SIGTERM): what those
    leave (uv's scratch directory) then goes with pytest's temporary
    directories instead of piling up in /tmp. (This process's own tempfile
    directory was chosen before: in-process calls are unaffected.)
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_warm_server() -> Iterator[None]:
    """No test's `flowenv lock` uses or starts a warm server (flowenv.warm) unless it says so.

    A server left running would outlive the session, and one shared between
    tests would answer with another test's environment. tests/test_warm_server.py
    turns it on with a private FLOWENV_SERVER_DIR and stops it at teardown.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWENV_SERVER", "0")
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_python_downloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """uv's CPython download list is empty: no sync in a test fetches a real CPython build.

    Tests of interpreters in the store point it at their own list (tests/support/pythons.py).
    """
    empty = tmp_path_factory.mktemp("python-downloads") / "empty.json"
    empty.write_text("{}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_PYTHON_DOWNLOADS_JSON_URL", str(empty))
        yield


@pytest.fixture
def make_index(tmp_path: Path) -> Callable[[Iterable[WheelSpec]], Path]:
    """Build (or rebuild, adding versions) a per-test PEP 503 index; returns its ``simple`` dir.

    Calling it again with more specs keeps the same URL, so a test can publish
    a newer version "later" and watch what a re-lock does with it.
    """
    wheels = tmp_path / "index-wheels"

    def make(specs: Iterable[WheelSpec]) -> Path:
        for spec in specs:
            build_wheel(spec, wheels)
        return build_simple_index(sorted(wheels.glob("*.whl")), tmp_path / "index")

    return make


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat directory of real wheels (usable as uv ``--find-links``)."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    for spec in DEFAULT_WHEELS:
        build_wheel(spec, directory)
    return directory


@pytest.fixture(scope="session")
def simple_index(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEP 503 index over :func:`wheelhouse`; use ``simple_index.as_uri()`` as index-url."""
    return build_simple_index(sorted(wheelhouse.glob("*.whl")), tmp_path_factory.mktemp("index"))


@pytest.fixture
def make_project(tmp_path: Path, simple_index: Path) -> Callable[..., Path]:
    """Write a flowenv.toml whose ``[project]`` points at the test index; returns its directory.

    The body is appended after a ``[project]`` table that sets ``index-url``;
    pass ``project_extra`` lines to add keys to ``[project]``, ``index`` for another index.
    """

    def make(
        body: str, project_extra: str = "", name: str = "proj", index: Path | None = None
    ) -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        header = (
            "[project]\n"
            f'name = "{name}"\n'
            'platforms = ["linux-64", "osx-arm64"]\n'
            f"{textwrap.dedent(project_extra)}"
            f'pypi.index-url = "{(index or simple_index).as_uri()}"\n\n'
        )
        (root / "flowenv.toml").write_text(header + textwrap.dedent(body))
        return root

    return make
