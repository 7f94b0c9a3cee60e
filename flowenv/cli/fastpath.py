"""``flowenv lock --check`` answered before argparse, the models or any command is imported.

Pre-commit runs ``lock --check`` (or the ``git lock-hook``) on every commit;
most of its time used to be importing the CLI. When the command line is
exactly ``[-q] [-C DIR] [-c FILE] lock --check`` (or ``git lock-hook``, or
``-q lock``) and the freshness record (:mod:`flowenv.lockfiles.freshness`) proves
every lock fresh, this answers at once. Any other command line, and
any doubt, returns None: the full path decides and reports. Standard library
only, like everything it imports.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: see flowenv.lockfiles.freshness.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

FRESH_MESSAGE = "all locks are fresh"


def split_globals(argv: Sequence[str]) -> tuple[str | None, str | None, bool, list[str]] | None:
    """(-C DIR, -c FILE, -q, the rest) as argparse would read them; None if in doubt."""
    directory: str | None = None
    config: str | None = None
    quiet = False
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        arg = rest.pop(0)
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-C", "-c", "--config"):
            if not rest:
                return None
            value = rest.pop(0)
            directory, config = (value, config) if arg == "-C" else (directory, value)
        elif arg.startswith("--config="):
            config = arg.removeprefix("--config=")
        elif arg.startswith(("-C", "-c")) and len(arg) > 2:
            value = arg[2:]
            directory, config = (value, config) if arg[1] == "C" else (directory, value)
        else:
            return None
    return directory, config, quiet, rest


def fast_lock_check(argv: Sequence[str]) -> int | None:
    """0 when ``argv`` is a whole-project command the record proves has nothing to do, else None.

    Those commands: ``lock --check`` (prints that all is fresh), the
    pre-commit ``git lock-hook`` and a quiet ``lock`` (both print nothing when
    every lock is fresh).
    """
    parsed = split_globals(argv)
    if parsed is None:
        return None
    directory, explicit, quiet, rest = parsed
    if rest == ["lock", "--check"]:
        # The full check also reads every fresh pylock whole: only a record made
        # by a check (not by a lock, which does not) answers for it.
        message, validated = (None if quiet else FRESH_MESSAGE), True
    elif rest == ["git", "lock-hook"] or (quiet and rest == ["lock"]):
        message, validated = None, False
    else:
        return None
    # Imported only now: they bring re, enum and json (~9 ms), which a plain
    # `flowenv lock` handed to the warm server (flowenv.warm) never needs.
    from flowenv.config.discover import find_config
    from flowenv.lockfiles.freshness import known_fresh

    path = find_config(start=directory, explicit=explicit)
    if path is None or not known_fresh(path, validated=validated):
        return None
    if message:
        print(message)
    return 0
