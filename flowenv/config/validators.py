"""The rules a name or path from a configuration file must pass, each returning a problem or None.

Pure functions, no I/O except :func:`lock_dir_escape` (which resolves
symlinks): :mod:`flowenv.config.load` turns their answers into located
diagnostics, and the store and lock readers apply the same rules to what they
read back, so a name that one command accepts no other command refuses.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

#: Longest env or step name: it becomes a directory name, a store key segment
#: and part of a venv path, and filesystems cap a component at 255 bytes.
MAX_NAME_LENGTH = 64

# Portable on every filesystem flowenv writes to (and as a store key segment):
# letters, digits, "_", "-", "."; no leading "." or "-", no trailing ".", no "..".
_PORTABLE_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?\Z")
# Windows refuses these as file or directory names, with any extension, in any case.
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)

#: A PEP 508 distribution name (also the rule for an extra, PEP 685).
PEP508_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])\Z")
#: A conda package name as conda-build allows it (lower-cased by the loader).
CONDA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]*\Z")
#: A version or build string as written into a lock or a resolver's input:
#: never whitespace, a quote, a comment or a line break.
_VERSION_TEXT = re.compile(r"^[A-Za-z0-9_.+!*-]+\Z")


def portable_name_problem(
    name: str,
    what: str,
    why: str = "it names a directory under the lock dir and a key in the store",
) -> str | None:
    """Why ``name`` cannot name an environment, step or project on every platform, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if not _PORTABLE_NAME.match(name) or ".." in name:
        return (
            f"{what} name may only use letters, digits, '_', '-' and '.', must start with a "
            f"letter, digit or '_', must not end with '.' and must not contain '..' ({why})"
        )
    if name.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        return f"'{name}' is reserved on Windows and cannot name a directory there"
    return None


def extra_problem(extra: str) -> str | None:
    """Why ``extra`` is not a PEP 508 extra name, or None."""
    if PEP508_NAME.match(extra):
        return None
    return f"invalid extra '{extra}' (an extra is a name: letters, digits, '.', '_', '-')"


def is_version_text(text: str) -> bool:
    """Whether ``text`` can be a version in a lock or a manifest (no separators, no newline)."""
    return bool(_VERSION_TEXT.match(text))


def lock_dir_problem(lock_dir: str) -> str | None:
    """Why ``lock-dir`` (as written) would leave the project directory, or None."""
    if not lock_dir.strip():
        return "expected a directory inside the project, got ''"
    if PurePosixPath(lock_dir).is_absolute() or PureWindowsPath(lock_dir).is_absolute():
        return f"must be a path inside the project, relative to it; got the absolute '{lock_dir}'"
    if PureWindowsPath(lock_dir).drive:
        return f"must be a path inside the project, relative to it; got '{lock_dir}'"
    depth = 0
    for part in re.split(r"[\\/]+", lock_dir):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            return f"'{lock_dir}' leaves the project directory; lock files must live inside it"
    return None


def lock_dir_escape(root: Path, lock_dir: str) -> str | None:
    """Why ``root/lock_dir``, symlinks resolved, is outside ``root``, or None."""
    resolved_root = root.resolve()
    resolved = (root / lock_dir).resolve()
    if resolved == resolved_root or resolved_root in resolved.parents:
        return None
    return (
        f"'{lock_dir}' resolves to {resolved}, outside the project directory "
        f"{resolved_root} (through a symbolic link); lock files must live inside it"
    )


def store_project_name(name: str, config_file: Path) -> str:
    """``name``, the project's name in the store; a UsageError saying how to set one if it
    cannot be.

    The loader already refused a ``[project] name`` that breaks the rule, so a
    name that breaks it here is the configuration directory's own
    (``My Flow (v2)``): only commands that use the store need it, so only they
    refuse it, with the fix.
    """
    problem = portable_name_problem(name, "a project", "it names the project in the store")
    if problem is None:
        return name
    from flowenv.errors import UsageError

    raise UsageError(
        f"{config_file}: [project] sets no name, and the directory's name {name!r} cannot "
        f'be used: {problem}; set name = "..." under [project]'
    )
