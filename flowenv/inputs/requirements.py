"""Read pip requirements files: ``-r`` includes, ``-c`` constraints, markers, comments.

What a requirements file may say, and what flowenv does with it:

* ``name[extras] specifier ; marker`` and ``name @ URL ; marker`` lines become
  the env's PyPI packages; ``--hash=`` options on them are dropped (flowenv's
  lock records the hash of what it resolves).
* ``-r FILE`` / ``--requirement FILE`` includes FILE (relative to the file
  that names it); ``-c FILE`` / ``--constraint FILE`` reads FILE's lines as
  constraints, which bound versions without installing anything.
* Index options (``-i``, ``--index-url``, ``--extra-index-url``,
  ``--no-index``, ``-f``, ``--find-links``, ``--trusted-host``) are an error:
  indexes are project settings in flowenv.toml, shared by every env, so they
  are reviewed in one place and never carry credentials into a repository.
* Editable installs (``-e``) and bare paths or URLs without a name are an
  error that points at the local package form, ``name = { path = "..." }``.
* Any other pip option is an error rather than silently ignored.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from pathlib import Path

import attrs

from flowenv.config.models import PypiPackage
from flowenv.errors import Diagnostic
from flowenv.inputs import MAX_INCLUDE_DEPTH, MAX_INPUT_BYTES, InputFileError

#: ``(^|whitespace)#...``: pip's comment rule (a ``#`` inside a URL fragment is kept).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_HASH_OPTION = re.compile(r"\s--hash[=\s]\S+")
_INCLUDE = {"-r": False, "--requirement": False, "-c": True, "--constraint": True}
_INDEX_OPTIONS = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--trusted-host",
)
_INDEX_HINT = (
    "index options belong in flowenv.toml's [project.pypi] (index-url, extra-index-urls, "
    "find-links), shared by every env; remove it from this file"
)


@attrs.frozen(kw_only=True)
class Requirements:
    """The requirements and constraints read from one or more files."""

    packages: tuple[PypiPackage, ...] = ()
    constraints: tuple[PypiPackage, ...] = ()
    #: Every file read (includes too), relative to the project root.
    files: tuple[str, ...] = ()


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, line)`` with ``\\`` continuations joined and comments removed."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        # The comment goes first: a backslash inside it continues nothing
        # (uv's reading; pip's too for a line that is only a comment).
        line = _COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def parse_requirement(text: str) -> PypiPackage:
    """One PEP 508 requirement -> a normalised :class:`PypiPackage`; ValueError if invalid."""
    from packaging.requirements import InvalidRequirement, Requirement

    from flowenv.config.load import normalize_pypi_name

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return PypiPackage(
        name=normalize_pypi_name(req.name),
        specifier=",".join(sorted(str(s) for s in req.specifier)),
        extras=tuple(sorted(normalize_pypi_name(e) for e in req.extras)),
        marker=str(req.marker) if req.marker else "",
        url=req.url or "",
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


class RequirementsReader:
    """Reads requirement lines and files, collecting every problem instead of stopping."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.packages: list[PypiPackage] = []
        self.constraints: list[PypiPackage] = []
        self.files: list[str] = []
        self.diagnostics: list[Diagnostic] = []
        self._reading: list[Path] = []
        #: (file, as constraints) already read: a second include means nothing new, and
        #: re-reading lets a few small files fan out into billions of lines.
        self._read: set[tuple[Path, bool]] = set()

    def result(self) -> Requirements:
        return Requirements(
            packages=tuple(self.packages),
            constraints=tuple(self.constraints),
            files=tuple(dict.fromkeys(self.files)),
        )

    def error(self, display: str, line: int | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(display, line, "", message))

    def read_file(self, path: Path, display: str, *, constraint: bool = False) -> None:
        """Read ``path`` (shown as ``display`` in messages) and everything it includes."""
        resolved = path.resolve()
        if (resolved, constraint) in self._read:
            return
        self._read.add((resolved, constraint))
        text = read_text(path, display, self.diagnostics)
        if text is None:
            return
        self.files.append(_relative(path, self.root))
        self._reading.append(resolved)
        try:
            self.read_lines(logical_lines(text), display, path.parent, constraint=constraint)
        finally:
            self._reading.pop()

    def read_lines(
        self,
        lines: Iterable[tuple[int, str]],
        display: str,
        directory: Path,
        *,
        constraint: bool = False,
    ) -> None:
        """Read requirement lines found in ``display``; includes are relative to ``directory``."""
        for number, line in lines:
            if line.startswith("-"):
                self._option(number, line, display, directory, constraint)
                continue
            self._requirement(number, line, display, constraint)

    def _option(
        self, number: int, line: str, display: str, directory: Path, constraint: bool
    ) -> None:
        option, value = _split_option(line)
        if option in _INCLUDE:
            if not value:
                self.error(display, number, f"{option} needs a file name")
                return
            target = directory / value
            shown = str(Path(display).parent / value)
            if not target.is_file():
                self.error(display, number, f"{option} {value}: no such file ({shown})")
                return
            # Reported at the include line, the one to change to break the loop.
            if target.resolve() in self._reading:
                chain = " -> ".join(p.name for p in [*self._reading, target.resolve()])
                self.error(display, number, f"{option} {value}: includes itself ({chain})")
                return
            if len(self._reading) >= MAX_INCLUDE_DEPTH:
                self.error(
                    display,
                    number,
                    f"{option} {value}: includes nest deeper than {MAX_INCLUDE_DEPTH} files",
                )
                return
            self.read_file(target, shown, constraint=constraint or _INCLUDE[option])
        elif option in _INDEX_OPTIONS:
            self.error(display, number, f"'{option}': {_INDEX_HINT}")
        elif option in ("-e", "--editable"):
            self.error(
                display,
                number,
                f"editable install '{value}' is not locked; declare the project's own package "
                'in flowenv.toml as NAME = { path = "DIR" } (a local package)',
            )
        else:
            self.error(display, number, f"pip option '{option}' is not supported in flowenv inputs")

    def _requirement(self, number: int, line: str, display: str, constraint: bool) -> None:
        line = _HASH_OPTION.sub("", f" {line}").strip()
        if line.startswith((".", "/")) or re.match(r"^[a-z][a-z0-9+.-]*://", line):
            self.error(
                display,
                number,
                f"'{line}' has no package name; write NAME @ URL, or declare a local "
                'package in flowenv.toml as NAME = { path = "DIR" }',
            )
            return
        try:
            package = parse_requirement(line)
        except ValueError as exc:
            self.error(display, number, f"invalid requirement '{line}': {exc}")
            return
        (self.constraints if constraint else self.packages).append(package)


def _split_option(line: str) -> tuple[str, str]:
    """``--requirement=x.txt`` / ``-r x.txt`` / ``-rx.txt`` -> ``("--requirement", "x.txt")``."""
    if line.startswith("--"):
        option, _, value = line.partition("=") if "=" in line.split()[0] else line.partition(" ")
        return option.strip(), value.strip()
    option, value = line[:2], line[2:].strip()
    return option, value


def read_text(path: Path, display: str, diagnostics: list[Diagnostic]) -> str | None:
    """The text of an input file, or None with a diagnostic saying why it cannot be read."""
    try:
        info = path.stat()
        size = info.st_size
        if not stat.S_ISREG(info.st_mode):
            # A FIFO blocks the read until a writer comes; /dev/zero never ends.
            diagnostics.append(Diagnostic(display, None, "", "is not a regular file"))
            return None
        if size > MAX_INPUT_BYTES:
            diagnostics.append(
                Diagnostic(
                    display,
                    None,
                    "",
                    f"is {size} bytes; input files are at most {MAX_INPUT_BYTES} bytes",
                )
            )
            return None
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        diagnostics.append(Diagnostic(display, None, "", "is not UTF-8 text"))
    except OSError as exc:
        diagnostics.append(Diagnostic(display, None, "", f"cannot read: {exc.strerror}"))
    return None


def read_requirements(paths: Iterable[tuple[Path, str]], root: Path) -> Requirements:
    """Read requirements files (``(path, display)`` pairs); InputFileError lists every problem."""
    reader = RequirementsReader(root)
    for path, display in paths:
        reader.read_file(path, display)
    if reader.diagnostics:
        raise InputFileError(reader.diagnostics)
    return reader.result()
