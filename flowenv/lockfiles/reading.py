"""The edge every lock file crosses on its way in: bounded reads and shape checks.

A lock file may come from another tool, a newer flowenv or a hostile hand.
Readers load it here (size, depth and YAML aliases bounded; an unreadable
file is an input error, never "stale") and validate its shape with
:class:`Node`, which carries the key path of every value, so that a malformed
file is one :class:`~flowenv.errors.LockFileError` naming file and key
(``packages[3].hashes``) and nothing past the models can raise ``KeyError``.

Names and versions read from a lock are checked strictly too: they reach uv's
and rattler's input files, where a newline would be an injection.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flowenv.errors import LockFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Largest lock file read (real conda-lock files with thousands of packages stay under 5 MB).
MAX_LOCK_BYTES = 64 * 1024 * 1024
#: Deepest nesting accepted in a lock document (real ones nest at most 5 deep).
MAX_DEPTH = 32

_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_CONDA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
# PEP 440 versions, and the wider conda alphabet (``2024a``, ``1.0.8_post``, ``3.9.0.*``).
_VERSION = re.compile(r"^[A-Za-z0-9_.+!*-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def read_lock_file(path: Path) -> str:
    """The text of the lock at ``path``; an unreadable, huge or non-UTF-8 file is refused."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_LOCK_BYTES + 1)
    except OSError as exc:
        raise LockFileError(f"{path}: cannot read the lock file: {exc.strerror or exc}") from None
    if len(data) > MAX_LOCK_BYTES:
        raise LockFileError(f"{path}: lock file larger than {MAX_LOCK_BYTES} bytes; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_toml(text: str, source: str) -> dict[str, Any]:
    """A TOML document; a syntax error or nesting deeper than :data:`MAX_DEPTH` is refused."""
    _check_toml_depth(text, source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise LockFileError(f"{source}: nested too deeply") from None


def _check_toml_depth(text: str, source: str) -> None:
    """Refuse brackets nested deeper than :data:`MAX_DEPTH` before tomllib recurses into them.

    A linear scan that skips strings and comments; it over-counts nothing
    valid TOML could hold, so the bound only ever refuses absurd files.
    """
    depth = 0
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char in "\"'":
            triple = text.startswith(char * 3, i)
            closing = char * 3 if triple else char
            j = i + len(closing)
            while j < end:
                if char == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(closing, j) or (not triple and text[j] == "\n"):
                    break
                j += 1
            i = j + len(closing)
            continue
        if char == "#":
            newline = text.find("\n", i)
            i = end if newline < 0 else newline
            continue
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, i) + 1
                raise LockFileError(f"{source}:{line}: nested more than {MAX_DEPTH} deep; refused")
        elif char in "]}":
            depth = max(depth - 1, 0)
        i += 1


def load_yaml(text: str, source: str) -> Any:
    """A YAML document without aliases and nested at most :data:`MAX_DEPTH` deep.

    conda-lock never writes anchors or aliases; refusing them outright bounds
    the memory a small file can claim (a "billion laughs" expands a few KB
    into gigabytes). The check walks the parser's events (libyaml when
    present) before anything is built.
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise LockFileError(
                    f"{source}:{line}: YAML anchors and aliases are not allowed in a lock file"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    raise LockFileError(
                        f"{source}:{line}: nested more than {MAX_DEPTH} deep; refused"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise LockFileError(f"{source}: not valid YAML: {exc}") from None


class Node:
    """A value of a parsed lock document and where it sits (file and key path).

    Every accessor checks the type it promises; a mismatch is a
    :class:`LockFileError` such as ``pylock.toml: packages[2].name: missing``.
    """

    def __init__(self, value: object, source: str, path: str = "") -> None:
        self.value = value
        self.source = source
        self.path = path

    def error(self, message: str, key: str | None = None) -> LockFileError:
        where = self._child_path(key) if key is not None else self.path
        return LockFileError(f"{self.source}: {where or '(top level)'}: {message}")

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.value, Mapping):
            raise self.error(f"expected a table, found {_kind(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        return self.mapping().get(key) is not None

    def get(self, key: str) -> Node:
        """The value at ``key`` (a node holding None when absent)."""
        return Node(self.mapping().get(key), self.source, self._child_path(key))

    def table(self, key: str) -> Node | None:
        """The table at ``key``; None when absent or null."""
        child = self.get(key)
        if child.value is None:
            return None
        child.mapping()
        return child

    def items(self) -> Iterator[tuple[str, Node]]:
        for key, value in self.mapping().items():
            yield str(key), Node(value, self.source, self._child_path(str(key)))

    def array(self, key: str) -> list[Node]:
        """The array at ``key`` as nodes; [] when absent or null."""
        child = self.get(key)
        if child.value is None:
            return []
        if not isinstance(child.value, list):
            raise child.error(f"expected an array, found {_kind(child.value)}")
        return [Node(v, self.source, child._child_path(i)) for i, v in enumerate(child.value)]

    def text(self, key: str, default: str | None = None) -> str:
        """The string at ``key``; required unless ``default`` is given."""
        value = self.mapping().get(key)
        if value is None:
            if default is None:
                raise self.error("missing", key)
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(f"expected a string, found {_kind(value)}", key)
        found = str(value)
        if any(ord(c) < 32 or c == "\x7f" for c in found):
            raise self.error("holds a control character (a newline?)", key)
        return found

    def text_value(self) -> str:
        """This node as a string (a YAML scalar such as ``1.0`` or ``null`` reads as text)."""
        value = self.value
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(f"expected a string, found {_kind(value)}")
        found = str(value)
        if any(ord(c) < 32 or c == "\x7f" for c in found):
            raise self.error("holds a control character (a newline?)")
        return found

    def optional_str(self, key: str) -> str | None:
        return self.text(key, "") or None

    def flag(self, key: str, default: bool) -> bool:
        value = self.mapping().get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, found {_kind(value)}", key)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        out = []
        for node in self.array(key):
            if not isinstance(node.value, str):
                raise node.error(f"expected a string, found {_kind(node.value)}")
            out.append(node.text_value())
        return tuple(out)

    def pypi_name(self, key: str = "name") -> str:
        name = self.text(key)
        if not _PYPI_NAME.match(name):
            raise self.error(f"'{name}' is not a valid package name (PEP 508)", key)
        return name

    def conda_name(self, key: str = "name") -> str:
        name = self.text(key)
        if not _CONDA_NAME.match(name):
            raise self.error(f"'{name}' is not a valid conda package name", key)
        return name

    def version(self, key: str = "version", default: str | None = None) -> str:
        version = self.text(key, default)
        if version and not _VERSION.match(version):
            raise self.error(f"'{version}' is not a valid version", key)
        return version

    def digest(self, key: str, length: int) -> str | None:
        """A hex digest of ``length`` characters at ``key``; None when absent or null."""
        value = self.optional_str(key)
        if value is None:
            return None
        if len(value) != length or not _HEX.match(value):
            raise self.error(f"expected {length} hexadecimal digits, found '{value[:80]}'", key)
        return value.lower()

    def url(self, key: str) -> str | None:
        value = self.optional_str(key)
        if value is not None and any(c.isspace() for c in value):
            raise self.error("a URL or path with white space", key)
        return value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"the string '{value[:40]}'"
    return f"the value {value!r}"[:60]
