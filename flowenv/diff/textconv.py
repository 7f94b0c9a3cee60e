"""The git textconv: a lock file as one ``name version`` line per package.

``git diff`` then shows ``-numpy 1.26.4`` / ``+numpy 2.0.1`` instead of
hundreds of changed hash lines. A conda-lock holds every platform, so each
platform's packages follow a ``# <platform>`` line; PyPI packages in it are
marked ``(pip)``. Digests are left out on purpose: ``flowenv diff`` reports a
same-version hash change.
"""

from __future__ import annotations

from flowenv.diff.load import read_lock_text
from flowenv.errors import LockFileError


def textconv(text: str, source: str) -> str:
    """``text`` as ``name version`` lines; the text itself if it is no lock flowenv can read.

    A foreign or future-format file must never make ``git diff`` fail for the
    whole repository: git then shows its raw lines, as it would without the driver.
    """
    try:
        platforms = read_lock_text(text, source)
    except LockFileError:
        return text
    multi = len(platforms) > 1 or any(
        p.manager == "conda" for packages in platforms.values() for p in packages.values()
    )
    lines: list[str] = []
    for platform in sorted(platforms, key=lambda p: p or ""):
        if multi:
            lines.append(f"# {platform}")
        for name, package in sorted(platforms[platform].items()):
            pip = " (pip)" if multi and package.manager == "pip" else ""
            lines.append(f"{name.removesuffix(' (pip)')} {package.version}{pip}")
    return "".join(f"{line}\n" for line in lines)
