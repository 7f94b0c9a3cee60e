"""conda-lock v1 ``conda-lock.yml`` files: the models every reader of them shares.

One file holds every platform of a conda or mixed environment: conda packages
(``manager: conda``) and the PyPI part (``manager: pip``). flowenv records its
input hash per platform in ``metadata.custom_metadata`` under
``flowenv-input-hash-<platform>`` (see :mod:`flowenv.locks.layout`).

The writer lives with the conda locker; this module only defines the models
and parses files (flowenv's and conda-lock's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from flowenv.errors import FlowenvError

INPUT_HASH_KEY = "flowenv-input-hash-{platform}"


@attrs.frozen(kw_only=True)
class LockedCondaPackage:
    """One ``package:`` entry of a conda-lock file (conda or pip)."""

    name: str
    version: str
    manager: str  # "conda" | "pip"
    platform: str
    url: str
    sha256: str
    md5: str | None = None
    dependencies: tuple[tuple[str, str], ...] = ()
    category: str = "main"
    optional: bool = False

    @property
    def filename(self) -> str:
        """The archive's file name as its URL ends."""
        return self.url.rsplit("/", 1)[-1].split("#", 1)[0].split("?", 1)[0]


@attrs.frozen(kw_only=True)
class CondaLock:
    """A parsed conda-lock v1 file."""

    platforms: tuple[str, ...]
    channels: tuple[str, ...]
    content_hash: tuple[tuple[str, str], ...]
    custom_metadata: tuple[tuple[str, str], ...]
    packages: tuple[LockedCondaPackage, ...]

    def for_platform(self, platform: str) -> tuple[LockedCondaPackage, ...]:
        return tuple(p for p in self.packages if p.platform == platform)

    def input_hash(self, platform: str) -> str | None:
        return dict(self.custom_metadata).get(INPUT_HASH_KEY.format(platform=platform))


def _package(entry: Mapping[str, Any]) -> LockedCondaPackage:
    hashes = entry.get("hash") or {}
    deps = entry.get("dependencies") or {}
    return LockedCondaPackage(
        name=str(entry["name"]),
        version=str(entry["version"]),
        manager=str(entry.get("manager", "conda")),
        platform=str(entry["platform"]),
        url=str(entry.get("url", "")),
        sha256=str(hashes.get("sha256", "")),
        md5=hashes.get("md5"),
        dependencies=tuple(sorted((str(k), str(v)) for k, v in deps.items())),
        category=str(entry.get("category", "main")),
        optional=bool(entry.get("optional", False)),
    )


def parse_conda_lock(text: str, source: str = "conda-lock.yml") -> CondaLock:
    """Parse conda-lock v1 YAML text; a :class:`FlowenvError` naming ``source`` if malformed."""
    import yaml

    try:
        data = yaml.safe_load(text)
        metadata = data["metadata"]
        if data.get("version") != 1:
            raise ValueError(f"unsupported conda-lock version {data.get('version')!r}")
        channels = tuple(
            c["url"] if isinstance(c, Mapping) else str(c) for c in metadata.get("channels", [])
        )
        return CondaLock(
            platforms=tuple(metadata.get("platforms", [])),
            channels=channels,
            content_hash=tuple(sorted((metadata.get("content_hash") or {}).items())),
            custom_metadata=tuple(sorted((metadata.get("custom_metadata") or {}).items())),
            packages=tuple(_package(p) for p in data.get("package", [])),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise FlowenvError(f"{source}: not a conda-lock v1 file: {exc}") from None


def read_conda_lock(path: Path) -> CondaLock:
    return parse_conda_lock(path.read_text(encoding="utf-8"), str(path))
