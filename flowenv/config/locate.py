"""Map TOML key paths to the line they are written on.

``tomllib`` gives values but no positions. Error messages must name the line,
so this module scans the (already known to be valid) TOML text once and records
the line of every key, table header and array element it meets. It is a
lenient reader of valid TOML, not a validating parser.
"""

from __future__ import annotations

import re

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = " \t"


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.array_of_tables: dict[KeyPath, int] = {}

    # -- low level ---------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def advance(self, n: int = 1) -> None:
        chunk = self.text[self.pos : self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n

    def skip_ws(self, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _WS or (newlines and ch in "\r\n"):
                self.advance()
            elif ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            else:
                return

    def skip_line(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] != "\n":
            self.pos += 1

    # -- tokens ------------------------------------------------------------
    def read_string(self) -> str:
        for quote in ('"""', "'''"):
            if self.peek(3) == quote:
                self.advance(3)
                end = self.text.find(quote, self.pos)
                end = len(self.text) if end < 0 else end
                value = self.text[self.pos : end]
                self.advance(end - self.pos + 3)
                return value
        quote = self.peek()
        self.advance()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if quote == '"' and self.text[self.pos] == "\\":
                self.pos += 1
            self.pos += 1
        value = self.text[start : self.pos]
        self.advance()
        return value

    def read_key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip_ws()
            if self.peek() in ('"', "'"):
                parts.append(self.read_string())
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if not match:
                    return parts
                parts.append(match.group())
                self.pos = match.end()
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.advance()

    # -- structure ---------------------------------------------------------
    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def read_value(self, path: KeyPath) -> None:
        self.skip_ws()
        ch = self.peek()
        if ch in ('"', "'"):
            self.read_string()
        elif ch == "{":
            self.advance()
            self.read_inline_table(path)
        elif ch == "[":
            self.advance()
            self.read_array(path)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1

    def read_inline_table(self, path: KeyPath) -> None:
        while self.pos < len(self.text):
            self.skip_ws(newlines=True)
            if self.peek() == "}":
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            line = self.line
            key = self.read_key()
            if not key:
                self.advance()
                continue
            self.record_key(path, key, line)
            self.skip_ws()
            if self.peek() == "=":
                self.advance()
            self.read_value((*path, *key))

    def read_array(self, path: KeyPath) -> None:
        index = 0
        while self.pos < len(self.text):
            self.skip_ws(newlines=True)
            ch = self.peek()
            if ch == "]":
                self.advance()
                return
            if ch == ",":
                self.advance()
                index += 1
                continue
            self.record((*path, index), self.line)
            self.read_value((*path, index))

    def record_key(self, table: KeyPath, key: list[str], line: int) -> None:
        for depth in range(1, len(key) + 1):
            self.record((*table, *key[:depth]), line)

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while self.pos < len(self.text):
            self.skip_ws(newlines=True)
            if self.pos >= len(self.text):
                break
            line = self.line
            if self.peek(2) == "[[":
                self.advance(2)
                header = tuple(self.read_key())
                index = self.array_of_tables.get(header, -1) + 1
                self.array_of_tables[header] = index
                table = (*header, index)
                self.record_key((), list(header), line)
                self.record(table, line)
                self.skip_line()
            elif self.peek() == "[":
                self.advance()
                key = self.read_key()
                table = tuple(key)
                self.record_key((), key, line)
                self.skip_line()
            else:
                key = self.read_key()
                if not key:
                    self.skip_line()
                    continue
                self.record_key(table, key, line)
                self.skip_ws()
                if self.peek() == "=":
                    self.advance()
                self.read_value((*table, *key))
        return self.lines


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Every key path in ``text`` mapped to the 1-based line it first appears on."""
    return _Scanner(text).scan()


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest located ancestor."""
    for depth in range(len(path), 0, -1):
        found = lines.get(path[:depth])
        if found is not None:
            return found
    return None
