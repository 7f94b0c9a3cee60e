"""Pure configuration results kept from one run to the next, keyed by all they depend on.

A one-step re-lock of a hundred-step project validates the same hundred
tables, merges the same hundred environments and hashes the same two hundred
env × platform inputs as the run before. This memo keeps those results:

* :data:`DECLS`: a table's validated :class:`~flowenv.config.models.EnvDecl`
  (see ``_Validator.memoised_env_decl`` in :mod:`flowenv.config.load` for the key);
* :data:`SPECS`: an environment's merged :class:`~flowenv.spec.EnvSpec`, whose
  input hashes, once asked for, travel with it (see :mod:`flowenv.spec`).

Each key holds *every* input of the function it memoises, so a hit is what a
fresh computation would give: a memo that missed an input would write wrong
locks, far worse than none. Results that read files (input files, local
packages) or reported an error are never kept.

Bounded: each table keeps the entries its latest two calls used (``start``
is called once per configuration or build), so a long-lived process holds
two configurations' worth. Across runs the memo lives in the warm server
(:mod:`flowenv.warm`): a child that locked successfully sends what changed
(:func:`export`), the server :func:`adopt`\\s it, and the next fork inherits
it. The
server exits when any module it or its children loaded changes on disk, so an
entry never outlives the code that made it.
"""

from __future__ import annotations

from typing import Any

#: Bumped whenever what an entry means changes (only a forked child of the same code sends one).
_VERSION = 2
#: A payload beyond this is refused (a thousand steps take about 2 MB).
MAX_PAYLOAD = 64 << 20


class Table:
    """One memoised function's results: those of the latest call, and of the one before."""

    __slots__ = ("last", "now")

    def __init__(self) -> None:
        #: What the previous call used (or what the warm server adopted).
        self.last: dict[Any, Any] = {}
        #: What the current call used so far.
        self.now: dict[Any, Any] = {}

    def start(self) -> None:
        """A new call begins: what the last one used is what may be reused."""
        if self.now:
            self.last, self.now = self.now, {}

    def get(self, key: Any) -> Any:
        """The result kept for ``key`` (kept for the next call too), or None."""
        found = self.now.get(key)
        if found is None:
            found = self.last.get(key)
            if found is not None:
                self.now[key] = found
        return found

    def put(self, key: Any, value: Any) -> None:
        self.now[key] = value

    def clear(self) -> None:
        self.last, self.now = {}, {}


DECLS = Table()
SPECS = Table()
_TABLES = {"decls": DECLS, "specs": SPECS}


Snapshot = list[tuple[dict[Any, Any], dict[Any, Any]]]


def snapshot() -> Snapshot:
    """Every table's state, for :func:`restore`."""
    return [(table.last, table.now) for table in _TABLES.values()]


def restore(saved: Snapshot) -> None:
    """Put every table back as :func:`snapshot` found it."""
    for table, (last, now) in zip(_TABLES.values(), saved, strict=True):
        table.last, table.now = last, now


#: Bumped by every :func:`adopt`: a delta (see :func:`export`) names the state it
#: started from, and its positions mean something only in that state.
_generation = 0
#: Beyond this many entries a table adopting deltas it cannot prune starts afresh.
MAX_ENTRIES = 100_000

Inherited = tuple[int, dict[str, dict[Any, Any]]]


def inherited() -> Inherited:
    """What a process forked now starts from (each table's entries, the generation):
    :func:`export` sends what changed against it."""
    return _generation, {name: table.now or table.last for name, table in _TABLES.items()}


def export(since: Inherited, extra: Any = None) -> bytes:
    """The latest call's entries as a delta against ``since`` (and ``extra``), for :func:`adopt`.

    A delta, not the entries: the positions (in ``since``) of those still
    used and the new ones. A one-step re-lock sends two entries and a list
    of numbers, pickled in microseconds, instead of every entry (a few
    milliseconds at a hundred steps, in the child before it exits and in the
    server before its next spare).
    """
    import pickle  # only a warm child sends: not on every load's import path (~2 ms)

    generation, bases = since
    tables = {}
    for name, table in _TABLES.items():
        base = bases.get(name, {})
        used = table.now or table.last
        kept = [i for i, key in enumerate(base) if key in used]
        tables[name] = (kept, {key: value for key, value in used.items() if key not in base})
    body = pickle.dumps((_VERSION, generation, tables, extra), protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(8, "big") + body


def adopt(payload: bytes) -> Any:
    """Take a forked child's :func:`export` as what the next call may reuse; its ``extra``.

    Each table keeps what the child's last call used: the entries at the
    delta's positions, when this process is still in the state the child
    started from, plus the new ones. After another child's delta (two locks
    at once) the positions mean nothing: the new entries are added to all
    there is (up to :data:`MAX_ENTRIES`). A payload cut short (the child
    died while sending) or from another version changes nothing and gives
    None. Only ever called on bytes from a child of this very process (same
    uid, same code): unpickling is safe.
    """
    global _generation
    import pickle

    if len(payload) < 8 or int.from_bytes(payload[:8], "big") != len(payload) - 8:
        return None
    try:
        version, generation, tables, extra = pickle.loads(payload[8:])
    except Exception:
        return None
    if version != _VERSION or not isinstance(tables, dict):
        return None
    for name, table in _TABLES.items():
        kept, new = tables.get(name, ((), {}))
        current = table.now or table.last
        if generation == _generation:
            wanted = set(kept)
            entries = {k: v for i, (k, v) in enumerate(current.items()) if i in wanted}
        else:
            entries = dict(current) if len(current) + len(new) <= MAX_ENTRIES else {}
        entries.update(new)
        table.last, table.now = {}, entries
    _generation += 1
    return extra
