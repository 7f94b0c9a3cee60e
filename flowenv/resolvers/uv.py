"""The uv adapter: every call flowenv makes to uv goes through here.

uv is used as a program (the ``uv`` wheel's binary), not a library: its
command line is its stable interface.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

from flowenv._subprocess import describe_failure, run
from flowenv.config.models import PypiSettings
from flowenv.errors import FlowenvError, ResolutionError
from flowenv.platforms import UV_TARGETS


@functools.cache
def uv_binary() -> str:
    """Path of the uv executable installed with flowenv's ``uv`` dependency.

    Looked up beside this interpreter's scripts first, so the pinned uv wins
    over whatever ``uv`` is on PATH. (``uv.find_uv_bin`` is not used: it fails
    on interpreters whose sysconfig has no ``EXE``.)
    """
    exe = "uv.exe" if os.name == "nt" else "uv"
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / exe
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("uv")
    if found is None:
        raise FlowenvError("uv not found: install flowenv with its dependencies (pip install flowenv)")
    return found


def index_args(settings: PypiSettings) -> list[str]:
    """uv arguments naming the configured indexes and find-links locations."""
    args: list[str] = []
    if settings.index_url:
        args += ["--default-index", settings.index_url]
    for url in settings.extra_index_urls:
        args += ["--index", url]
    for location in settings.find_links:
        args += ["--find-links", location]
    return args


def compile_pylock(
    requirements: Sequence[str],
    *,
    python: str,
    platform: str,
    settings: PypiSettings,
    label: str,
    constraints: Sequence[str] = (),
    previous: str | None = None,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    root: Path | None = None,
) -> str:
    """Resolve ``requirements`` for ``platform`` and ``python``; uv's pylock.toml text.

    ``previous`` (an earlier lock's text) is handed to uv as the existing
    output file, so versions stay put unless the inputs or ``upgrade`` ask
    otherwise, as ``pip-compile`` does. ``label`` names the env × platform in
    errors.
    """
    with tempfile.TemporaryDirectory(prefix="flowenv-uv-") as tmp:
        workdir = Path(tmp)
        requirements_in = workdir / "requirements.in"
        requirements_in.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
        output = workdir / "pylock.toml"
        if previous is not None:
            output.write_text(previous, encoding="utf-8")
        args: list[str | Path] = [
            uv_binary(), "pip", "compile", requirements_in,
            "--format", "pylock.toml", "--output-file", output,
            "--python-platform", UV_TARGETS[platform],
            "--python-version", python,
            "--no-header", "--quiet", "--color", "never", "--no-config",
            *index_args(settings),
        ]
        if constraints:
            constraints_txt = workdir / "constraints.txt"
            constraints_txt.write_text("".join(f"{c}\n" for c in constraints), encoding="utf-8")
            args += ["--constraint", constraints_txt]
        if upgrade:
            args.append("--upgrade")
        for package in upgrade_packages:
            args += ["--upgrade-package", package]
        # Relative find-links and file: indexes are relative to the project root.
        result = run(args, cwd=root, env={**os.environ, "UV_NO_PROGRESS": "1"})
        if result.returncode != 0:
            raise ResolutionError(f"cannot resolve {label}:\n{describe_failure(args, result)}")
        return output.read_text(encoding="utf-8")
