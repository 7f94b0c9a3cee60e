"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Files are created with the mode ``cp`` or an editor would give them (0666
less the umask), not the 0600 of a bare temporary file: locks are committed
and shared, and a store on a shared disk is read by other users.

:func:`write_all_atomic` writes several files as one: every temporary file is
written first, and only when all of them are complete are they renamed into place,
so a run that cannot write one file changes none.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

#: The temporary files this module leaves behind only when killed mid-write.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp\Z")


def default_file_mode() -> int:
    """0666 less the process umask: the mode a newly created regular file gets."""
    # Read without changing it where the kernel says it (Linux); os.umask() can
    # only be read by setting it, which races with other threads creating files.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def make_temp(path: Path) -> Path:
    """A new empty sibling of ``path`` (hidden, ``.tmp``), with the default file mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
    finally:
        os.close(fd)
    return Path(tmp)


def _fill(tmp: Path, payload: bytes, *, durable: bool = True) -> None:
    with tmp.open("wb") as handle:
        handle.write(payload)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def write_atomic(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a sibling temporary file, fsync it, then rename it over ``path``.

    ``durable=False`` skips the fsync, for caches a crash may lose or damage
    (their reader must treat an unreadable or odd file as absent).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = make_temp(path)
    try:
        _fill(tmp, payload, durable=durable)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_all_atomic(files: dict[Path, str]) -> None:
    """Write every file, or (on any OSError before the renames) none of them.

    The OSError propagates with ``filename`` set to the file that failed.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in sorted(files.items()):
            try:
                tmp = make_temp(path)
                staged.append((tmp, path))
                _fill(tmp, text.encode("utf-8"))
            except OSError as exc:
                exc.filename = str(path)
                raise
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def temp_file_target(name: str) -> str | None:
    """The name of the file a temporary file called ``name`` was for; None if it is not one.

    Such a file is left behind only by a :func:`write_atomic` that was killed mid-write.
    """
    match = _TEMP_NAME.match(name)
    return match["name"] if match else None
