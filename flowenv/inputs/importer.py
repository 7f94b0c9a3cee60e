"""``flowenv import requirements.txt | environment.yml | pyproject.toml``: a flowenv.toml over it.

The written configuration *refers* to the file rather than copying its
packages, so the file stays the one place they are edited and every edit
reaches the lock (its meaning is in the input hash). The Python version is
taken from the file when it says one exactly (``python=3.11`` in an
environment.yml), else from the lowest version a pyproject's
``requires-python`` allows, else from the interpreter running the import, with
a comment saying so. The result is loaded with the file before anything is
written, so an error in the file is reported (with its line) and nothing is
written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from flowenv.config.written import ImportResult, python_default, toml_value, write_output
from flowenv.errors import UsageError
from flowenv.platforms import KNOWN_PLATFORMS, default_platforms

#: Which reader a file name selects.
KINDS = {
    "requirements": "requirements file",
    "environment": "conda environment file",
    "pyproject": "pyproject.toml",
}
_LOWEST_PYTHON = re.compile(r">=\s*(\d+\.\d+)")


def project_name_for(directory: str) -> str:
    """The directory's name made a portable project name (``My Flow (v2)`` -> ``My-Flow-v2``).

    It keys the project in the store, so a name the loader refuses would make
    the import fail on a file the user never wrote; ``project`` when nothing is left.
    """
    from flowenv.config.validators import MAX_NAME_LENGTH, portable_name_problem

    name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", directory))
    name = name.strip("-.")[:MAX_NAME_LENGTH].rstrip(".")
    return name if name and portable_name_problem(name, "a project") is None else "project"


def input_kind(path: Path) -> str | None:
    """``"requirements"``, ``"environment"`` or ``"pyproject"`` for a file name; None otherwise."""
    name = path.name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if name.endswith((".yml", ".yaml")):
        return "environment"
    if name.endswith((".txt", ".in")):
        return "requirements"
    return None


def _python_of(path: Path, kind: str) -> tuple[str | None, str]:
    """The Python version the file states, and where it came from (for the comment)."""
    if kind == "environment":
        from flowenv.inputs.environment_yml import read_environment_yml

        python = read_environment_yml(path, str(path), path.parent, declared_python=None).python
        return python, f"python= in {path.name}"
    if kind == "pyproject":
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None, ""  # the real read below reports it with its line
        requires = str(data.get("project", {}).get("requires-python", ""))
        match = _LOWEST_PYTHON.search(requires)
        if match:
            return match.group(1), f"the lowest Python requires-python = {requires!r} allows"
    return None, ""


def render_input_config(
    relative: str,
    kind: str,
    *,
    name: str,
    python: str,
    python_comment: str,
    platforms: Sequence[str],
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> str:
    lines = [
        f"# Written by `flowenv import {relative}`: the packages stay in that file.",
        "",
        "[project]",
        f"name = {toml_value(name)}",
        f"platforms = [{', '.join(toml_value(p) for p in platforms)}]",
        "",
        "[base]",
        f"python = {toml_value(python)}  # {python_comment}",
    ]
    if kind == "requirements":
        lines.append(f"pypi.requirements = {toml_value(relative)}")
    elif kind == "environment":
        lines.append(f"conda.environment-file = {toml_value(relative)}")
    else:
        parts = [f"path = {toml_value(relative)}"]
        if extras:
            parts.append(f"extras = [{', '.join(toml_value(e) for e in extras)}]")
        if groups:
            parts.append(f"groups = [{', '.join(toml_value(g) for g in groups)}]")
        lines.append(f"pypi.pyproject = {{ {', '.join(parts)} }}")
    return "\n".join(lines) + "\n"


def import_input_file(
    path: Path,
    output: Path | None,
    *,
    force: bool = False,
    platforms: Sequence[str] | None = None,
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> ImportResult:
    """Write (unless ``output`` is None) a flowenv.toml whose base env reads ``path``."""
    kind = input_kind(path)
    if kind is None:
        raise UsageError(
            f"{path}: not a flow (.py), requirements file (.txt/.in), environment.yml or "
            "pyproject.toml"
        )
    if not path.is_file():
        raise UsageError(f"cannot read {path}: no such file")
    if (extras or groups) and kind != "pyproject":
        raise UsageError("--extra and --group apply to a pyproject.toml only")
    for platform in platforms or ():
        if platform not in KNOWN_PLATFORMS:
            raise UsageError(
                f"unknown platform '{platform}'; expected one of {', '.join(KNOWN_PLATFORMS)}"
            )
    target = output or path.parent / "flowenv.toml"
    relative = Path(os.path.relpath(path.resolve(), target.resolve().parent)).as_posix()
    notes: list[str] = []
    from flowenv.inputs import InputFileError

    try:
        python, source = _python_of(path, kind)
    except InputFileError:
        python, source = None, ""  # reported with its line by the load below
    if python is None:
        python, source = python_default(), "the Python running `flowenv import`; check it"
        notes.append(f"python = {python!r} is this interpreter's version; check it")
    text = render_input_config(
        relative,
        kind,
        name=project_name_for(target.resolve().parent.name),
        python=python,
        python_comment=source,
        platforms=tuple(platforms or default_platforms()),
        extras=extras,
        groups=groups,
    )
    from flowenv.config.load import parse_config

    # Reads the file as `flowenv lock` will: any error in it stops the import here.
    parse_config(text, target)
    written = write_output(output, text, force=force)
    return ImportResult(
        flow=KINDS[kind], text=text, output=output, gaps=(), notes=tuple(notes), written=written
    )
