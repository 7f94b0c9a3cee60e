"""A small, deterministic TOML renderer shaped for reviewable lock files.

tomli-w renders every wheel of every package as its own ``[[packages.wheels]]``
table, five lines per wheel. Lock files are read in pull requests, so this
renderer keeps one package per ``[[packages]]`` block and one wheel per line.
Values are rendered with tomli-w, so quoting and escaping stay its job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import tomli_w

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # tomli-w renders a scalar correctly only inside a document.
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _body(table: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in table.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            items = "".join(f"    {_value(v)},\n" for v in value)
            lines.append(f"{_key(key)} = [\n{items}]")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    return lines


def render(document: Mapping[str, Any]) -> str:
    """Scalars first, then each sub-table, then each array of tables, in the given order."""
    head = {k: v for k, v in document.items() if not _is_table(v) and not _is_table_array(v)}
    out = _body(head)
    for key, value in document.items():
        if _is_table(value):
            out += _tables(key, value)
    for key, value in document.items():
        if _is_table_array(value):
            for item in value:
                out += ["", f"[[{_key(key)}]]", *_body(item)]
    return "\n".join(out).lstrip("\n") + "\n"


def _tables(prefix: str, table: Mapping[str, Any]) -> list[str]:
    scalars = {k: v for k, v in table.items() if not _is_table(v)}
    out = ["", f"[{prefix}]", *_body(scalars)] if scalars else []
    for key, value in table.items():
        if _is_table(value):
            out += _tables(f"{prefix}.{_key(key)}", value)
    return out


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)
