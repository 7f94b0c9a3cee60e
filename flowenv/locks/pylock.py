"""PEP 751 ``pylock.<platform>.toml`` files: flowenv's canonical form of uv's output.

uv resolves; this module makes the result a flowenv lock: credentials stripped
from every URL, packages sorted, the ``[tool.flowenv]`` table recording the
input hash, and a stable rendering so that an unchanged re-lock is
byte-identical.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs

from flowenv._atomic import write_atomic
from flowenv.locks.toml_render import render
from flowenv.platforms import ENVIRONMENT_MARKERS
from flowenv.spec import EnvSpec, strip_credentials

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CREATED_BY = "flowenv"
#: What a resolver answers for an environment without PyPI packages.
EMPTY_PYLOCK = 'lock-version = "1.0"\n'


@attrs.frozen(kw_only=True)
class LockedWheel:
    """One wheel of a locked package: where it came from and its sha256."""

    name: str
    url: str
    sha256: str


@attrs.frozen(kw_only=True)
class LockedPackage:
    """A package pinned in a pylock file (the facts sync, hydrate and diff need)."""

    name: str
    version: str
    wheels: tuple[LockedWheel, ...] = ()
    sdist: LockedWheel | None = None


def _scrub(value: Any) -> Any:
    """Every URL in a lock document without its user:password@ part.

    Every string is checked, not only the keys known to hold URLs (``url``,
    ``index``, ...): a key a newer uv adds must not become a leak.
    """
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return strip_credentials(value)
    return value


def canonical_pylock(uv_output: str, env: EnvSpec, platform: str) -> str:
    """uv's pylock text -> flowenv's canonical pylock text for ``env`` on ``platform``."""
    raw = tomllib.loads(uv_output)
    packages = sorted(
        _scrub(raw.get("packages", [])), key=lambda p: (p["name"], p.get("version", ""))
    )
    for package in packages:
        if "wheels" in package:
            package["wheels"] = sorted(
                package["wheels"], key=lambda w: w.get("url", w.get("name", ""))
            )
    document: dict[str, Any] = {
        "lock-version": raw.get("lock-version", "1.0"),
        "environments": [ENVIRONMENT_MARKERS[platform]],
        "requires-python": f"=={env.python}.*" if env.python.count(".") == 1 else f"=={env.python}",
        "created-by": CREATED_BY,
        "tool": {
            "flowenv": {
                "platform": platform,
                "python": env.python,
                "resolver": "uv",
                "input-hash": env.input_hash(platform),
            }
        },
    }
    if packages:
        document["packages"] = packages
    return render(document)


def write_pylock(path: Path, text: str) -> None:
    write_atomic(path, text)


def read_pylock(path: Path) -> tuple[LockedPackage, ...]:
    """The packages of a pylock file (flowenv's or any PEP 751 file)."""
    return parse_pylock(path.read_text(encoding="utf-8"))


def _wheel(package: str, entry: Mapping[str, Any]) -> LockedWheel:
    url = entry.get("url") or entry.get("path") or ""
    # A URL spells a local version's "+" as %2B (torch-2.4.1%2Bcpu-...whl); the
    # file name must be the wheel's real one, or no installer can read its version.
    name = entry.get("name") or unquote(url.rsplit("/", 1)[-1].split("#", 1)[0])
    return LockedWheel(name=name, url=url, sha256=entry.get("hashes", {}).get("sha256", ""))


def parse_pylock(text: str) -> tuple[LockedPackage, ...]:
    data = tomllib.loads(text)
    out = []
    for pkg in data.get("packages", []):
        sdist = pkg.get("sdist")
        out.append(
            LockedPackage(
                name=pkg["name"],
                version=pkg.get("version", ""),
                wheels=tuple(_wheel(pkg["name"], w) for w in pkg.get("wheels", [])),
                sdist=_wheel(pkg["name"], sdist) if sdist else None,
            )
        )
    return tuple(out)
