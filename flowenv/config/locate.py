"""Map TOML key paths to the line they are written on.

``tomllib`` gives values but no positions. Error messages must name the line,
so this module scans the (already known to be valid) TOML text once and records
the line of every key, table header and array element it meets. It is a
lenient reader, not a validating parser: it runs *before* tomllib, always
makes progress on invalid text (tomllib then reports it), and refuses a
document nested deeper than :data:`flowenv._bounds.MAX_DEPTH` with
:class:`~flowenv._bounds.TooDeep`.

Lines are kept in a tree of :class:`KeyLines` nodes, one per key, rather than
in a dict keyed by whole paths: recording ``[a.b.c…]`` then costs one step
per part instead of one tuple per prefix, so the scan stays linear in the file
size however long a dotted header is (a dict of prefixes is quadratic in it).
"""

from __future__ import annotations

import re

from flowenv._bounds import MAX_DEPTH, TooDeep

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = " \t"


class KeyLines:
    """One key of the document: the line it first appears on and the keys below it."""

    __slots__ = ("children", "depth", "line", "tables")

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.line: int | None = None
        self.children: dict[str | int, KeyLines] = {}
        #: How many ``[[array.of.tables]]`` headers named this key so far.
        self.tables = 0

    def child(self, part: str | int, line: int) -> KeyLines:
        node = self.children.get(part)
        if node is None:
            if self.depth >= MAX_DEPTH:
                # Refused here, before tomllib sees it: tomllib recurses per
                # level and is quadratic in the length of a dotted key.
                raise TooDeep(line)
            node = self.children[part] = KeyLines(self.depth + 1)
        if node.line is None:
            node.line = line
        return node

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest located ancestor."""
        node, found = self, None
        for part in path:
            next_node = node.children.get(part)
            if next_node is None:
                break
            node = next_node
            found = node.line if node.line is not None else found
        return found


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.root = KeyLines()

    # -- low level ---------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def advance(self, n: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + n)
        self.pos += n

    def skip_ws(self, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _WS or (newlines and ch in "\r\n"):
                self.advance()
            elif ch == "#":
                self.skip_line()
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

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
    def read_value(self, node: KeyLines) -> None:
        self.skip_ws()
        ch = self.peek()
        if ch in ('"', "'"):
            self.read_string()
        elif ch == "{":
            self.advance()
            self.read_inline_table(node)
        elif ch == "[":
            self.advance()
            self.read_array(node)
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1
            if self.pos == start and self.pos < len(self.text):
                self.advance()  # invalid TOML (tomllib reports it): always make progress

    def read_inline_table(self, node: KeyLines) -> None:
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
            target = self.record_key(node, key, line)
            self.skip_ws()
            if self.peek() == "=":
                self.advance()
            self.read_value(target)

    def read_array(self, node: KeyLines) -> None:
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
            self.read_value(node.child(index, self.line))

    @staticmethod
    def record_key(table: KeyLines, key: list[str], line: int) -> KeyLines:
        node = table
        for part in key:
            node = node.child(part, line)
        return node

    def scan(self) -> KeyLines:
        table = self.root
        while self.pos < len(self.text):
            self.skip_ws(newlines=True)
            if self.pos >= len(self.text):
                break
            line = self.line
            if self.peek(2) == "[[":
                self.advance(2)
                header = self.record_key(self.root, self.read_key(), line)
                table = header.child(header.tables, line)
                header.tables += 1
                self.skip_line()
            elif self.peek() == "[":
                self.advance()
                table = self.record_key(self.root, self.read_key(), line)
                self.skip_line()
            else:
                key = self.read_key()
                if not key:
                    self.skip_line()
                    continue
                target = self.record_key(table, key, line)
                self.skip_ws()
                if self.peek() == "=":
                    self.advance()
                self.read_value(target)
        return self.root


def locate_keys(text: str) -> KeyLines:
    """Every key path in ``text`` with the 1-based line it first appears on."""
    return _Scanner(text).scan()


class LazyKeyLines:
    """The :class:`KeyLines` of a text, scanned the first time a line is asked for.

    Lines only serve messages: loading a valid configuration (every command,
    every run) asks for none, and the scan was a third of reading a
    hundred-step file.
    """

    __slots__ = ("_lines", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: KeyLines | None = None

    def scan(self) -> KeyLines:
        """The lines (scanned now if not yet); :class:`TooDeep` past the nesting bound."""
        if self._lines is None:
            self._lines = locate_keys(self._text)
        return self._lines

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest located ancestor."""
        try:
            return self.scan().line_of(path)
        except TooDeep:  # not met on a text tomllib read within the bound; no line then
            return None


def may_nest_too_deep(text: str) -> bool:
    """Whether a key of ``text`` could have more than :data:`MAX_DEPTH` parts.

    A dotted key (or header) lies on one line (TOML allows no line break
    around its dots), so one with more parts than the bound needs that many
    dots on one line. Only such a text has to be scanned before tomllib, which
    is quadratic in a key's parts; any other depth tomllib meets recursing
    (its RecursionError, or the depth of what it read) and the scan then names
    the line.
    """
    if text.count(".") < MAX_DEPTH:
        return False
    return any(line.count(".") >= MAX_DEPTH for line in text.split("\n"))


def line_of(lines: KeyLines | LazyKeyLines, path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest located ancestor."""
    return lines.line_of(path)
