"""Shared fixtures: a real wheel index built once per session, and project factories."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.wheels import DEFAULT_WHEELS, build_simple_index, build_wheel

# Fixture modules of the larger subsystems (conda channel, object-store servers, ...).
pytest_plugins: list[str] = []


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
def make_project(tmp_path: Path, simple_index: Path) -> Callable[[str], Path]:
    """Write a flowenv.toml whose ``[project]`` points at the test index; returns its directory.

    The body is appended after a ``[project]`` table that sets ``index-url``;
    pass ``project_extra`` lines to add keys to ``[project]``.
    """

    def make(body: str, project_extra: str = "", name: str = "proj") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        header = (
            "[project]\n"
            f'name = "{name}"\n'
            'platforms = ["linux-64", "osx-arm64"]\n'
            f"{textwrap.dedent(project_extra)}"
            f'pypi.index-url = "{simple_index.as_uri()}"\n\n'
        )
        (root / "flowenv.toml").write_text(header + textwrap.dedent(body))
        return root

    return make
