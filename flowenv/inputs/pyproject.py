"""Read a pyproject.toml's ``[project] dependencies``, chosen extras and PEP 735 groups.

* ``dependencies`` are always read; a project whose dependencies are
  ``dynamic`` cannot be read without running its build backend, so it is an
  error.
* Each chosen extra adds ``[project.optional-dependencies].EXTRA``; an extra
  that names the project itself (``mypkg[gpu]`` inside ``mypkg``'s extras) is
  expanded in place, as pip does.
* Each chosen group adds ``[dependency-groups].GROUP`` (PEP 735), following
  ``{include-group = "..."}`` entries; a cycle is an error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowenv._bounds import TooDeep
from flowenv.config.locate import KeyLines, KeyPath, LazyKeyLines, line_of
from flowenv.errors import Diagnostic
from flowenv.inputs import InputFileError
from flowenv.inputs.requirements import (
    Requirements,
    RequirementsReader,
    _relative,
    parse_requirement,
    read_text,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def pyproject_file(path: Path) -> Path:
    """A pyproject.toml named directly, or the one inside a directory."""
    return path / "pyproject.toml" if path.is_dir() else path


class _Reader:
    def __init__(self, path: Path, display: str, root: Path) -> None:
        self.display = display
        self.reader = RequirementsReader(root)
        self.reader.files.append(_relative(path, root))
        self.data: dict[str, Any] = {}
        self.lines: KeyLines | LazyKeyLines = KeyLines()
        self.project_name = ""
        #: Groups already expanded: including one again adds nothing, and redoing
        #: it lets a few lines fan out exponentially (20 includes x 10 levels).
        self.expanded: set[str] = set()

    def error(self, key: KeyPath, message: str) -> None:
        self.reader.error(self.display, line_of(self.lines, key) or None, message)

    def strings(self, key: KeyPath, value: object) -> list[tuple[int, str]]:
        if not isinstance(value, list):
            self.error(key, f"{'.'.join(map(str, key))}: expected an array of requirements")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append((line_of(self.lines, (*key, i)) or 0, item))
            else:
                self.error((*key, i), f"{'.'.join(map(str, key))}[{i}]: expected a string")
        return out

    def add(self, key: KeyPath, value: object, seen_extras: set[str]) -> None:
        """Read one array of requirements, expanding self-referencing extras."""
        for number, text in self.strings(key, value):
            try:
                package = parse_requirement(text)
            except ValueError as exc:
                self.reader.error(
                    self.display, number or None, f"invalid requirement '{text}': {exc}"
                )
                continue
            if package.name == self.project_name and not package.url:
                for extra in package.extras:
                    self.extra(extra, seen_extras, (*key,))
                continue
            self.reader.packages.append(package)

    def extra(self, name: str, seen: set[str], where: KeyPath) -> None:
        from flowenv.config.load import did_you_mean, normalize_pypi_name

        if name in seen:
            return
        seen.add(name)
        table = self.data.get("project", {}).get("optional-dependencies", {})
        extras = {normalize_pypi_name(k): k for k in table} if isinstance(table, dict) else {}
        if name not in extras:
            known = ", ".join(sorted(extras)) or "none"
            self.error(
                where,
                f"no extra '{name}' in [project.optional-dependencies]"
                f"{did_you_mean(name, extras)}; known: {known}",
            )
            return
        key = extras[name]
        self.add(("project", "optional-dependencies", key), table[key], seen)

    def group(self, name: str, chain: tuple[str, ...]) -> None:
        from flowenv.config.load import did_you_mean, normalize_pypi_name

        groups = self.data.get("dependency-groups", {})
        known = {normalize_pypi_name(k): k for k in groups} if isinstance(groups, dict) else {}
        wanted = normalize_pypi_name(name)
        if wanted in chain:
            self.error(
                ("dependency-groups", known.get(wanted, name)),
                f"dependency group '{name}' includes itself ({' -> '.join([*chain, wanted])})",
            )
            return
        if wanted not in known:
            where: KeyPath = ("dependency-groups", chain[-1]) if chain else ("dependency-groups",)
            self.error(
                where,
                f"no dependency group '{name}' in [dependency-groups]"
                f"{did_you_mean(wanted, known)}; known: {', '.join(sorted(known)) or 'none'}",
            )
            return
        if wanted in self.expanded:
            return
        self.expanded.add(wanted)
        key = known[wanted]
        entries = groups[key]
        if not isinstance(entries, list):
            self.error(("dependency-groups", key), "expected an array")
            return
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and set(entry) == {"include-group"}:
                included = entry["include-group"]
                if isinstance(included, str):
                    self.group(included, (*chain, wanted))
                    continue
            if isinstance(entry, str):
                self.add(("dependency-groups", key), [entry], set())
                continue
            self.error(
                ("dependency-groups", key, i),
                'expected a requirement string or {include-group = "NAME"}',
            )


def read_pyproject(
    path: Path, display: str, root: Path, extras: Sequence[str], groups: Sequence[str]
) -> Requirements:
    """The requirements ``path``'s project declares with ``extras`` and ``groups`` chosen."""
    from flowenv.config.load import normalize_pypi_name

    diagnostics: list[Diagnostic] = []
    text = read_text(path, display, diagnostics)
    if text is None:
        raise InputFileError(diagnostics)
    from flowenv.config.load import read_toml

    reader = _Reader(path, display, root)
    try:
        reader.lines, reader.data = read_toml(text)
    except TooDeep as exc:
        raise InputFileError([Diagnostic(display, exc.line, "", f"invalid TOML: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError([Diagnostic(display, None, "", f"invalid TOML: {exc}")]) from None
    project = reader.data.get("project")
    if not isinstance(project, dict):
        if extras or not groups:
            raise InputFileError([Diagnostic(display, None, "", "no [project] table")])
        project = {}
    reader.project_name = normalize_pypi_name(str(project.get("name", "")))
    dynamic = project.get("dynamic", [])
    if isinstance(dynamic, list) and "dependencies" in dynamic:
        reader.error(
            ("project", "dynamic"),
            "dependencies are dynamic (computed by the build backend) and cannot be read; "
            "list them in [project] dependencies or in a requirements file",
        )
    reader.add(("project", "dependencies"), project.get("dependencies", []), set())
    seen: set[str] = set()
    for extra in extras:
        reader.extra(normalize_pypi_name(extra), seen, ("project", "optional-dependencies"))
    for group in groups:
        reader.group(group, ())
    if reader.reader.diagnostics:
        raise InputFileError(reader.reader.diagnostics)
    return reader.reader.result()
