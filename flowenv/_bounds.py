"""Bounds on what flowenv reads from files it did not write: how deep a document may nest.

Python's TOML and JSON parsers recurse once per nesting level and raise
RecursionError near 1000 levels; so would any code walking the result. A
document nested deeper than :data:`MAX_DEPTH` is refused with a clear error
instead, which no real configuration, lock or manifest comes near.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The deepest nesting of arrays and tables (TOML) or arrays and objects (JSON) flowenv reads.
MAX_DEPTH = 100
#: The largest configuration or flow file flowenv reads (a large real one is ~100 KB).
MAX_SOURCE_BYTES = 4 << 20


class TooDeep(ValueError):
    """A document nests deeper than :data:`MAX_DEPTH` (or than the parser can recurse)."""

    def __init__(self, line: int | None = None) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")
        #: Where the limit was crossed, when the reader knows.
        self.line = line


class TooLarge(ValueError):
    """A file is larger than flowenv reads for its kind."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes; at most {limit} ({limit >> 20} MiB) are read")


def read_source(path: Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a configuration or flow file; :class:`TooLarge` past ``limit``.

    OSError propagates (the caller names the file).
    """
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(path.stat().st_size, limit)
    return data


def depth_of(value: object) -> int:
    """How deeply lists and dicts nest in ``value`` (a scalar is 0); iterative, never recurses."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_bounded(loads: Callable[[Any], T], text: str | bytes) -> T:
    """``loads(text)``, or :class:`TooDeep` when the document nests beyond :data:`MAX_DEPTH`."""
    try:
        data = loads(text)
    except RecursionError:
        raise TooDeep() from None
    if depth_of(data) > MAX_DEPTH:
        raise TooDeep()
    return data
