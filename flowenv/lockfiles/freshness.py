"""What lock files record about their inputs, and ``lock --check``'s stdlib-only fast path.

Standard library only, on purpose: ``flowenv lock --check`` runs in pre-commit
hooks, where importing the models (attrs, cattrs) costs more than the check.

The fast path trusts a *freshness record*, written by the full path when it
found every lock fresh (a full ``lock --check``, ``lock`` or the pre-commit
lock hook). The record holds:

* the sha256 of the raw bytes of every file that enters the input hash
  (``flowenv.toml`` or ``pyproject.toml``, and any file it names as an input),
  digested before the configuration was loaded;
* every lock file under the lock directory (no other may appear) with its
  stat (size, mtime, ctime, inode, device), taken when its header was read
  and said what these inputs require, and only if the file had not changed in
  the seconds before (a change within one timestamp tick could keep its stat);
* whether every pylock was also read whole without error (``lock --check``
  does, ``lock`` does not: only the former's record answers a check);
* what else decides the answer: flowenv's version and a stat signature of its
  own source files (an edited or upgraded flowenv may hash inputs differently),
  and the host platform (the default platforms depend on it).

The fast check calls the locks fresh only if all of that is unchanged:
the configuration's bytes, the listing of lock files and one ``stat`` per
lock. Anything else (an edit, a touch, a lock added or removed, a newer
flowenv, no record) answers "unknown" and the full path decides, then writes
the record again. So right after a lock writes files, the next check takes
the full path once.

The record also keeps the input hashes each lock's header held when its stat
was taken. Those are facts about the file, whatever the configuration says
now: a ``lock`` after an edit (:func:`known_headers`) takes the header of
every lock whose stat is unchanged from the record instead of reading it, and
only compares hashes; a lock whose stat changed, or that the record does not
vouch for, is read as before.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import flowenv
from flowenv._sha256 import sha256_hex
from flowenv.cachedir import cache_root

# Not `from typing import TYPE_CHECKING`, and no pathlib at run time: on the
# fast path, importing typing, pathlib (with urllib.parse) or hashlib (OpenSSL,
# see flowenv._sha256) costs more than reading a thousand lock headers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from typing import Any

PYLOCK_PREFIX = "pylock."
PYLOCK_SUFFIX = ".toml"
CONDA_LOCK_NAME = "conda-lock.yml"
#: 3: ``hashes`` holds each lock's header hashes (2 had none: such a record is unknown).
RECORD_FORMAT = 3

_PYLOCK_HASH = re.compile(rb'^input-hash\s*=\s*"([0-9a-f]{64})"', re.MULTILINE)
# conda-lock.yml keeps flowenv's hashes in metadata.custom_metadata, one key per platform.
_CONDA_HASH = re.compile(
    rb"^\s+flowenv-input-hash-([a-z0-9-]+):\s*'?([0-9a-f]{64})'?", re.MULTILINE
)
#: flowenv writes ``[tool.flowenv]`` before any package, so the hash sits in the first lines.
_HEAD_BYTES = 4096


def is_lock_name(name: str) -> bool:
    """Whether a file name is one flowenv gives its locks (nothing else is ever touched)."""
    return name == CONDA_LOCK_NAME or (
        name.startswith(PYLOCK_PREFIX)
        and name.endswith(PYLOCK_SUFFIX)
        and len(name) > len(PYLOCK_PREFIX) + len(PYLOCK_SUFFIX)
    )


def _lock_names(lock_root: str) -> list[str]:
    """``"<env>/<lock name>"`` of every lock under ``lock_root``, sorted; hidden dirs skipped.

    Strings, names only (``listdir``, no stat, no Path objects): at a thousand
    steps this listing is the largest part of the fast check.
    """
    try:
        envs = [name for name in os.listdir(lock_root) if not name.startswith(".")]
    except OSError:
        return []
    found: list[str] = []
    for env in envs:
        try:
            names = os.listdir(os.path.join(lock_root, env))
        except OSError:  # a plain file, or gone meanwhile
            continue
        found += (f"{env}/{name}" for name in names if is_lock_name(name))
    return sorted(found)


def lock_names(lock_root: str | Path) -> list[str]:
    """``"<env>/<lock name>"`` of every lock under ``lock_root``, sorted, as :func:`lock_files`."""
    return _lock_names(os.fspath(lock_root))


def lock_files(lock_root: Path) -> list[Path]:
    """Every ``<lock_root>/<env>/<lock name>``, sorted; hidden directories are skipped."""
    return [lock_root / name for name in _lock_names(os.fspath(lock_root))]


def _read(path: str, size: int = -1) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        if size >= 0:
            return os.read(fd, size)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def hashes_in(name: str, data: bytes) -> dict[str, str]:
    """platform -> input hash recorded in ``data``, the content of a lock file called ``name``."""
    if name == CONDA_LOCK_NAME:
        return {p.decode(): h.decode() for p, h in _CONDA_HASH.findall(data)}
    match = _PYLOCK_HASH.search(data)
    platform = name.removeprefix(PYLOCK_PREFIX).removesuffix(PYLOCK_SUFFIX)
    return {platform: match.group(1).decode()} if match else {}


def _header_hashes(path: str) -> dict[str, str] | None:
    """:func:`hashes_in` of the lock at ``path`` reading as little as it can; None if unreadable.

    A pylock's first match in a prefix is its first match in the file (a hash
    cut short by the prefix's end does not match); a conda-lock.yml has one
    key per platform, so it is read whole.
    """
    name = os.path.basename(path)
    try:
        if name != CONDA_LOCK_NAME:
            found = hashes_in(name, _read(path, _HEAD_BYTES))
            if found:
                return found
        return hashes_in(name, _read(path))
    except OSError:
        return None


def _file_sha256(path: str) -> str | None:
    try:
        return sha256_hex(_read(path))
    except OSError:
        return None


_CODE_SIGNATURE: list[str] = []


def _code_signature() -> str:
    """flowenv's version and the size and mtime of each of its source files (once a process)."""
    if not _CODE_SIGNATURE:
        _CODE_SIGNATURE.append(_walk_code())
    return _CODE_SIGNATURE[0]


def _walk_code() -> str:
    package = os.path.dirname(flowenv.__file__)
    stamps = [flowenv.__version__]
    for directory, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                info = os.stat(path)
                where = os.path.relpath(path, package)
                stamps.append(f"{where} {info.st_size} {info.st_mtime_ns}")
    return sha256_hex("\n".join(stamps).encode())


def _host() -> str:
    # Not flowenv.platforms.host_platform: that module imports `platform`, ~4 ms.
    return f"{sys.platform} {os.uname().machine if hasattr(os, 'uname') else ''}"


def _record_file(config_path: str | Path) -> str:
    key = sha256_hex(os.path.realpath(config_path).encode())[:32]
    return os.path.join(cache_root(), "lock-check", f"{key}.json")


def record_path(config_path: str | Path) -> Path:
    """The record for one configuration file, in the machine's flowenv cache."""
    from pathlib import Path

    return Path(_record_file(config_path))


def digest_inputs(paths: Iterable[str | Path]) -> dict[str, str] | None:
    """real path -> sha256 of its bytes; None when one is unreadable.

    Callers digest the configuration *before* loading it, so a record can
    never pair the bytes of a newer file with a verdict on an older one.
    """
    digests: dict[str, str] = {}
    for path in paths:
        digest = _file_sha256(os.fspath(path))
        if digest is None:
            return None
        digests[os.path.realpath(path)] = digest
    return digests


#: A file changed this recently may change again within one timestamp tick
#: (2 s on FAT, 1 s on HFS+) without its stat changing: its stat proves nothing.
_RACY_NS = 3_000_000_000


def _signature(path: str, now_ns: int) -> list[int] | None:
    """(size, mtime, ctime, inode, device) of ``path``; None if unreadable or changed too recently.

    Any write, rename over, chmod or touch changes one of them; ctime cannot be
    set back by a user.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    if max(info.st_mtime_ns, info.st_ctime_ns) > now_ns - _RACY_NS:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev]


#: A recorded stat: (size, mtime, ctime, inode, device), see :func:`_signature`.
Stat = list[int]


def _record(
    config_path: str | Path,
    inputs: Mapping[str, str],
    lock_root: str | Path,
    validated: bool,
    locks: Mapping[str, Stat | None],
    hashes: Mapping[str, Mapping[str, str]],
) -> dict[str, object]:
    return {
        "format": RECORD_FORMAT,
        "code": _code_signature(),
        "host": _host(),
        "config": os.path.realpath(config_path),
        "inputs": dict(inputs),
        "lock-root": os.path.realpath(lock_root),
        "validated": validated,
        "locks": dict(locks),
        "hashes": {name: dict(found) for name, found in hashes.items()},
    }


def _parse_record(data: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return None
    return record


def _is_stat(value: object) -> bool:
    return isinstance(value, list) and len(value) == 5 and all(type(v) is int for v in value)


def _is_hashes(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _vouched(
    record: Mapping[str, Any] | None, lock_root: str
) -> dict[str, tuple[Stat, dict[str, str]]]:
    """``"<env>/<lock name>"`` -> (stat, header hashes) of each lock ``record`` vouches for.

    Only a record of this flowenv (its code signature: another may read
    headers differently) made for the same lock directory vouches; only locks
    recorded with a stat (their header was read, the file was not just
    written) and well-formed entries count. Anything else is left out.
    """
    if record is None or record.get("lock-root") != os.path.realpath(lock_root):
        return {}
    if record.get("code") != _code_signature():
        return {}
    locks, hashes = record.get("locks"), record.get("hashes")
    if not (isinstance(locks, dict) and isinstance(hashes, dict)):
        return {}
    return {
        name: (stat, dict(hashes[name]))
        for name, stat in locks.items()
        if _is_stat(stat) and _is_hashes(hashes.get(name))
    }


#: The last :func:`_vouched_by_record` answer, keyed by everything it depends on.
_LAST_VOUCHED: list[tuple[tuple[bytes, str, str], dict[str, tuple[Stat, dict[str, str]]]]] = []


def _vouched_by_record(
    config_path: str | Path, lock_root: str
) -> dict[str, tuple[Stat, dict[str, str]]]:
    """:func:`_vouched` of the record of ``config_path`` as it is now on disk (read-only).

    A lock run asks twice (:func:`known_headers` before resolving,
    :func:`write_record` after) of a record nothing rewrote in between:
    parsing and checking it again was half a millisecond at a hundred steps.
    The answer depends only on the record's bytes, the lock dir's real path
    and this flowenv's code signature, so with all three the same it is the
    same answer.
    """
    try:
        data = _read(_record_file(config_path))
    except OSError:
        return {}
    key = (data, os.path.realpath(lock_root), _code_signature())
    if _LAST_VOUCHED and _LAST_VOUCHED[0][0] == key:
        return _LAST_VOUCHED[0][1]
    vouched = _vouched(_parse_record(data), lock_root)
    _LAST_VOUCHED[:] = [(key, vouched)]
    return vouched


#: What the last :func:`known_headers` found: the vouched answer it used (the object
#: :func:`_vouched_by_record` keeps), when it took its stats, and the locks whose
#: stat was the one recorded.
_LAST_SEEN: list[tuple[dict[str, tuple[Stat, dict[str, str]]], int, frozenset[str]]] = []


def known_headers(config_path: str | Path, lock_root: str | Path) -> dict[str, dict[str, str]]:
    """``"<env>/<lock name>"`` -> the input hashes its header holds, for locks known unchanged.

    Those are the locks the record of ``config_path`` vouches for whose stat is
    still the one recorded (their header was read when it was taken), so the
    header need not be read again; every other lock is absent and must be
    read. Any configuration: the hashes are what the files say, not what the
    configuration wants.
    """
    root = os.fspath(lock_root)
    now = time.time_ns()
    vouched = _vouched_by_record(config_path, root)
    found = {
        name: hashes
        for name, (stat, hashes) in vouched.items()
        if _signature(os.path.join(root, name), now) == stat
    }
    _LAST_SEEN[:] = [(vouched, now, frozenset(found))]
    return found


def _seen_unchanged(vouched: Mapping[str, object], now_ns: int) -> frozenset[str]:
    """The locks :func:`known_headers` found at their recorded stat less than a tick ago.

    Only for the same vouched answer (the record's bytes, lock dir and code
    unchanged since), and only within :data:`_RACY_NS`: a lock written since
    then has a ctime that recent, so :func:`_signature` would give None for it
    now. Recording its old stat instead is as good as None: no later stat of
    the file can equal it (ctime cannot be set back), so it vouches for nothing.
    Every lock not written since has the stat it had: the one recorded.
    """
    if not _LAST_SEEN:
        return frozenset()
    seen_vouched, seen_at, names = _LAST_SEEN[0]
    if seen_vouched is not vouched or not 0 <= now_ns - seen_at < _RACY_NS:
        return frozenset()
    return names


def write_record(
    config_path: str | Path,
    inputs: Mapping[str, str],
    lock_root: str | Path,
    expected: Mapping[str, Mapping[str, str]],
    *,
    validated: bool,
) -> None:
    """Remember that every lock is fresh (best effort: a read-only cache only costs speed).

    ``inputs`` are the :func:`digest_inputs` the caller's configuration was
    loaded from; ``expected`` maps every live lock (``"<env>/<file name>"``)
    to the input hash per platform it must record; ``validated``: every
    pylock was also read whole without error (what ``lock --check`` does).

    Each lock's stat is recorded only when its header says what is expected
    and the file did not change while it was read nor just before: a later
    :func:`known_fresh` then needs nothing but the same stats. A lock the
    previous record vouches for with the same stat and these hashes is not
    read again: its header cannot have changed. One :func:`known_headers`
    just found at that stat is not even stat'ed again (see
    :func:`_seen_unchanged`): a re-lock of a hundred steps stat'ed every lock
    twice.
    """
    root = os.fspath(lock_root)
    now = time.time_ns()
    previous = _vouched_by_record(config_path, root)
    seen = _seen_unchanged(previous, now)
    locks: dict[str, Stat | None] = {}
    for name, hashes in expected.items():
        if name in seen:
            stat, found = previous[name]
            if found == hashes:
                locks[name] = stat
                continue
        path = os.path.join(root, name)
        before = _signature(path, now)
        if before is None:
            # Unreadable or changed too recently: no stat to vouch with, whatever
            # the header says (not read: a lock just written is always here).
            locks[name] = None
            continue
        if previous.get(name) == (before, dict(hashes)):
            locks[name] = before
            continue
        same = _header_hashes(path) == dict(hashes)
        locks[name] = before if same and _signature(path, now) == before else None
    record = _record(config_path, inputs, root, validated, locks, expected)
    try:
        from flowenv._atomic import write_atomic

        text = json.dumps(record, sort_keys=True)
        write_atomic(record_path(config_path), text, durable=False)
    except OSError:
        pass


def forget_record(config_path: str | Path) -> None:
    """Drop the record (a check found something stale): the next check takes the full path."""
    import contextlib  # not at the top: the fast path never forgets

    with contextlib.suppress(OSError):
        os.unlink(_record_file(config_path))


def known_fresh(config_path: str | Path, *, validated: bool = True) -> bool:
    """True only when the record proves every lock fresh; False means "ask the full path".

    ``validated``: the answer must also stand for "every pylock reads whole"
    (``lock --check``), so a record made by a lock run, which does not read
    fresh locks whole, does not do.
    """
    try:
        data = _read(_record_file(config_path))
    except OSError:
        return False
    # After an edit (the usual reason to run `lock`) the configuration's digest
    # is not in the record at all: that answers before the record is parsed
    # (0.2 ms at a hundred steps, on every re-lock's way to the full path).
    digest = _file_sha256(os.fspath(config_path))
    if digest is None or digest.encode() not in data:
        return False
    record = _parse_record(data)
    if record is None:
        return False
    made_by_check = record.get("validated")
    if not isinstance(made_by_check, bool) or (validated and not made_by_check):
        return False
    inputs, root, locks = record.get("inputs"), record.get("lock-root"), record.get("locks")
    hashes = record.get("hashes")
    if not (
        isinstance(inputs, dict)
        and isinstance(root, str)
        and isinstance(locks, dict)
        and isinstance(hashes, dict)
        and all(_is_hashes(found) for found in hashes.values())
    ):
        return False
    # The inputs first: after an edit (the usual reason to run `lock`) one
    # file's digest answers, before a listing of every env directory and a
    # stat per lock.
    digests = digest_inputs(inputs)
    if digests is None or digests != inputs:
        return False
    if None in locks.values() or sorted(locks) != _lock_names(root):
        return False
    now = time.time_ns()
    current = {name: _signature(os.path.join(root, name), now) for name in locks}
    return _record(config_path, digests, root, made_by_check, current, hashes) == record
