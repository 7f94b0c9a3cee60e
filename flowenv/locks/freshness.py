"""What lock files record about their inputs, and ``lock --check``'s stdlib-only fast path.

Standard library only, on purpose: ``flowenv lock --check`` runs in pre-commit
hooks, where importing the models (attrs, cattrs) costs more than the check.

The fast path trusts a *freshness record*, written by the full path when it
found every lock fresh (and after a full ``lock``). The record holds:

* the sha256 of the raw bytes of every file that enters the input hash
  (``flowenv.toml`` or ``pyproject.toml``, and any file it names as an input),
  digested before the configuration was loaded;
* every live lock file under the lock directory, with the input hash per
  platform it must record for those inputs (no other lock may exist);
* what else decides the answer: flowenv's version and a stat signature of its
  own source files (an edited or upgraded flowenv may hash inputs differently),
  and the host platform (the default platforms depend on it).

The fast check re-reads all of that and calls the locks fresh only if every
item is equal; anything else (an edited input, an edited lock header, a lock
added or removed, a newer flowenv, no record at all) answers "unknown" and the
full path decides. It reads each input file whole but only the header of each
lock, so its cost per step is one small read.
"""

from __future__ import annotations

import json
import os
import re
import sys

import flowenv
from flowenv.cachedir import cache_root

# Not `from typing import TYPE_CHECKING`, and no pathlib at run time: on the
# fast path, importing typing, pathlib (with urllib.parse) or hashlib (OpenSSL)
# costs more than reading a thousand lock headers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path
    from typing import Any


def _sha256_hex(data: bytes) -> str:
    """sha256 of ``data`` by CPython's built-in implementation, without loading OpenSSL.

    The digest is the same as ``hashlib.sha256``'s; only the module differs
    (``_sha2`` on 3.12+, ``_sha256`` on 3.11, hashlib where neither exists).
    """
    digest: str = _SHA256(data).hexdigest()
    return digest


def _sha256_factory() -> Callable[[bytes], Any]:
    for name in ("_sha2", "_sha256"):
        try:
            return __import__(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


_SHA256 = _sha256_factory()

PYLOCK_PREFIX = "pylock."
PYLOCK_SUFFIX = ".toml"
CONDA_LOCK_NAME = "conda-lock.yml"
RECORD_FORMAT = 1

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


def recorded_input_hashes(path: Path | str) -> dict[str, str]:
    """platform -> input hash, as the lock at ``path`` records them ({} if absent or unreadable)."""
    where = os.fspath(path)
    name = os.path.basename(where)
    try:
        if name == CONDA_LOCK_NAME:
            # One key per platform: every match counts, so the whole file is read.
            found = _CONDA_HASH.findall(_read(where))
            return {platform.decode(): digest.decode() for platform, digest in found}
        # The first match in a prefix is the file's first match (a hash cut
        # short by the prefix's end does not match); only a lock whose hash is
        # not in its head costs a second, whole read.
        match = _PYLOCK_HASH.search(_read(where, _HEAD_BYTES)) or _PYLOCK_HASH.search(_read(where))
    except OSError:
        return {}
    platform = name.removeprefix(PYLOCK_PREFIX).removesuffix(PYLOCK_SUFFIX)
    return {platform: match.group(1).decode()} if match else {}


def _file_sha256(path: str) -> str | None:
    try:
        return _sha256_hex(_read(path))
    except OSError:
        return None


def _code_signature() -> str:
    """flowenv's version and the size and mtime of each of its source files."""
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
    return _sha256_hex("\n".join(stamps).encode())


def _host() -> str:
    # Not flowenv.platforms.host_platform: that module imports `platform`, ~4 ms.
    return f"{sys.platform} {os.uname().machine if hasattr(os, 'uname') else ''}"


def _record_file(config_path: str | Path) -> str:
    key = _sha256_hex(os.path.realpath(config_path).encode())[:32]
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


def _current_locks(lock_root: str) -> dict[str, dict[str, str]]:
    return {
        name: recorded_input_hashes(os.path.join(lock_root, name))
        for name in _lock_names(lock_root)
    }


def _record(
    config_path: str | Path,
    inputs: Mapping[str, str],
    lock_root: str | Path,
    locks: Mapping[str, Mapping[str, str]],
) -> dict[str, object]:
    return {
        "format": RECORD_FORMAT,
        "code": _code_signature(),
        "host": _host(),
        "config": os.path.realpath(config_path),
        "inputs": dict(inputs),
        "lock-root": os.path.realpath(lock_root),
        "locks": {name: dict(hashes) for name, hashes in locks.items()},
    }


def write_record(
    config_path: str | Path,
    inputs: Mapping[str, str],
    lock_root: str | Path,
    locks: Mapping[str, Mapping[str, str]],
) -> None:
    """Remember what makes every lock fresh (best effort: a read-only cache only costs speed).

    ``inputs`` are the :func:`digest_inputs` the caller's configuration was
    loaded from; ``locks`` maps every live lock (``"<env>/<file name>"``) to
    the input hash per platform it must record. A later :func:`known_fresh`
    holds only while the files say exactly that and no other lock exists.
    """
    record = _record(config_path, inputs, lock_root, locks)
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


def known_fresh(config_path: str | Path) -> bool:
    """True only when the record proves every lock fresh; False means "ask the full path"."""
    try:
        record = json.loads(_read(_record_file(config_path)))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return False
    inputs = record.get("inputs")
    lock_root = record.get("lock-root")
    if not isinstance(inputs, dict) or not isinstance(lock_root, str):
        return False
    digests = digest_inputs(inputs)
    if digests is None:
        return False
    return _record(config_path, digests, lock_root, _current_locks(lock_root)) == record
