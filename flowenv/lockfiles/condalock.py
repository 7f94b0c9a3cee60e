"""conda-lock v1 ``conda-lock.yml`` files: the models every reader of them shares.

One file holds every platform of a conda or mixed environment: conda packages
(``manager: conda``) and the PyPI part (``manager: pip``). flowenv records its
input hash per platform in ``metadata.custom_metadata`` under
``flowenv-input-hash-<platform>`` (see :mod:`flowenv.lockfiles.layout`).

This module defines the models, parses files (flowenv's and conda-lock's
own) and renders flowenv's: deterministically (packages in conda-lock's own
order, keys in a fixed order, no timestamps), so an unchanged re-lock is
byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from flowenv.lockfiles.reading import Node, load_yaml, read_lock_file

INPUT_HASH_KEY = "flowenv-input-hash-{platform}"


@attrs.frozen(kw_only=True)
class LockedCondaPackage:
    """One ``package:`` entry of a conda-lock file (conda or pip)."""

    name: str
    version: str
    manager: str  # "conda" | "pip"
    platform: str
    url: str
    #: "" when the lock records none (conda-lock writes ``sha256: null`` for some entries).
    sha256: str
    md5: str | None = None
    dependencies: tuple[tuple[str, str], ...] = ()
    category: str = "main"
    optional: bool = False
    #: A pip package installed from a direct URL or VCS reference (``source:`` in
    #: conda-lock), not from an index: exported as ``name @ url``.
    direct: bool = False
    #: flowenv's local package (a pip entry whose ``url`` is a directory
    #: relative to the lock file): the sha256 of its source, kept in the URL's
    #: ``#source-sha256=`` fragment because conda-lock's schema forbids extra keys.
    source_hash: str = ""

    @property
    def directory(self) -> str:
        """A local package's directory, relative to the lock file ("" for other entries)."""
        # The last fragment: a directory may have a '#' in its name (libs/lib#1).
        return self.url.rpartition(_SOURCE_FRAGMENT)[0] if self.source_hash else ""

    @property
    def filename(self) -> str:
        """The archive's file name as its URL ends."""
        from urllib.parse import unquote

        # A wheel URL spells a local version's "+" as %2B (torch-2.4.1%2Bcpu-...).
        return unquote(self.url.rsplit("/", 1)[-1].split("#", 1)[0].split("?", 1)[0])

    @property
    def is_virtual(self) -> bool:
        """A virtual package (``__osx``, ``__glibc``): a fact of the machine, nothing to fetch."""
        return self.manager == "conda" and self.name.startswith("__")


@attrs.frozen(kw_only=True)
class CondaLock:
    """A parsed conda-lock v1 file."""

    platforms: tuple[str, ...]
    channels: tuple[str, ...]
    content_hash: tuple[tuple[str, str], ...]
    custom_metadata: tuple[tuple[str, str], ...]
    packages: tuple[LockedCondaPackage, ...]
    #: Input files, relative to the lock file's directory.
    sources: tuple[str, ...] = ()

    def for_platform(
        self, platform: str, categories: Iterable[str] | None = None
    ) -> tuple[LockedCondaPackage, ...]:
        """The packages of ``platform``; only those of ``categories`` when given.

        conda-lock v1 repeats a package once per category it belongs to: each
        (manager, name) is kept once, in its first entry.
        """
        wanted = None if categories is None else frozenset(categories)
        seen: set[tuple[str, str]] = set()
        out = []
        for package in self.packages:
            if package.platform != platform:
                continue
            if wanted is not None and package.category not in wanted:
                continue
            key = (package.manager, package.name)
            if key not in seen:
                seen.add(key)
                out.append(package)
        return tuple(out)

    def categories(self) -> tuple[str, ...]:
        """Every category the lock's packages belong to, main first."""
        found = {p.category for p in self.packages}
        return tuple(sorted(found, key=lambda c: (c != "main", c)))

    def input_hash(self, platform: str) -> str | None:
        return dict(self.custom_metadata).get(INPUT_HASH_KEY.format(platform=platform))


_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")


def _package(node: Node) -> LockedCondaPackage:
    manager = node.text("manager", "conda")
    if manager not in ("conda", "pip"):
        raise node.error(f"unknown manager '{manager}' (conda or pip)", "manager")
    name = node.conda_name() if manager == "conda" else node.pypi_name()
    url = node.url("url")
    if url is None:
        raise node.error("missing", "url")
    source = node.table("source")
    source_url = source.url("url") if source else None
    vcs = url.startswith(_VCS_PREFIXES)
    hashes = node.table("hash")
    sha256 = md5 = None
    if hashes is not None:
        md5 = hashes.digest("md5", 32)
        # conda-lock records a VCS checkout's commit id as its "sha256": a
        # commit is not a file hash, so the entry has none.
        sha256 = None if vcs else hashes.digest("sha256", 64)
    categories = node.strings("categories")
    dependencies = node.table("dependencies")
    return LockedCondaPackage(
        name=name,
        version=node.version(),
        manager=manager,
        platform=node.text("platform"),
        url=source_url or url,
        sha256=sha256 or "",
        md5=md5,
        dependencies=tuple(sorted((key, value.text_value()) for key, value in dependencies.items()))
        if dependencies
        else (),
        category=node.text("category", categories[0] if categories else "main"),
        optional=node.flag("optional", False),
        direct=manager == "pip" and (vcs or source_url is not None),
        source_hash=_source_hash(node, url) if manager == "pip" else "",
    )


_SOURCE_FRAGMENT = "#source-sha256="


def _source_hash(node: Node, url: str) -> str:
    if _SOURCE_FRAGMENT not in url or "://" in url:
        return ""
    digest = url.rpartition(_SOURCE_FRAGMENT)[2]
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise node.error(f"expected 64 hexadecimal digits after {_SOURCE_FRAGMENT}", "url")
    return digest


def parse_conda_lock(text: str, source: str = "conda-lock.yml") -> CondaLock:
    """conda-lock v1 YAML text as a model; a :class:`LockFileError` naming file and key if not."""
    root = Node(load_yaml(text, source), source)
    version = root.mapping().get("version")
    if version != 1:
        raise root.error(f"unsupported conda-lock version {version!r} (flowenv reads 1)", "version")
    metadata = root.get("metadata")
    metadata.mapping()
    channels = []
    for channel in metadata.array("channels"):
        if isinstance(channel.value, Mapping):
            channels.append(channel.text("url"))
        elif isinstance(channel.value, str):
            # Checked like every text: a channel is written into exported files.
            channels.append(channel.text_value())
        else:
            raise channel.error("expected a channel URL or a table with a url")
    content = metadata.table("content_hash")
    custom = metadata.table("custom_metadata")
    return CondaLock(
        platforms=metadata.strings("platforms"),
        channels=tuple(channels),
        content_hash=tuple(sorted((k, v.text_value()) for k, v in content.items()))
        if content
        else (),
        custom_metadata=tuple(sorted((k, v.text_value()) for k, v in custom.items()))
        if custom
        else (),
        packages=tuple(_package(p) for p in root.array("package")),
        sources=metadata.strings("sources"),
    )


def read_conda_lock(path: Path) -> CondaLock:
    return parse_conda_lock(read_lock_file(path), str(path))


HEADER = (
    "# Generated by flowenv from the file(s) in metadata.sources; do not edit.\n"
    "# Re-lock with `flowenv lock`; install with `conda-lock install` or `flowenv hydrate`.\n"
)


def _sort_key(package: LockedCondaPackage) -> tuple[str, str, str]:
    # conda-lock's own order (manager, name, platform): one package's entries
    # for every platform sit together, so a version bump reads as one hunk.
    return (package.manager, package.name, package.platform)


def content_hash(packages: Iterable[LockedCondaPackage]) -> str:
    """sha256 of what one platform's packages are: changes exactly when the solution does."""
    facts = sorted((p.manager, p.name, p.version, p.url, p.sha256) for p in packages)
    return hashlib.sha256(json.dumps(facts, separators=(",", ":")).encode()).hexdigest()


def _entry(package: LockedCondaPackage) -> dict[str, Any]:
    hashes: dict[str, str] = {}
    if package.md5:
        hashes["md5"] = package.md5
    # A local or git package has no file until sync builds it: no sha256 (conda-lock
    # itself writes a VCS commit there, which is no file hash).
    if package.sha256 or not (package.source_hash or package.direct):
        hashes["sha256"] = package.sha256
    return {
        "name": package.name,
        "version": package.version,
        "manager": package.manager,
        "platform": package.platform,
        "dependencies": dict(sorted(package.dependencies)),
        "url": package.url,
        "hash": hashes,
        "category": package.category,
        "optional": package.optional,
    }


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+/:-]*$")
_DIGEST = re.compile(r"^[0-9a-f]{32,}$")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def _scalar(value: object) -> str:
    """One YAML scalar. Strings stay plain only when no YAML reader could take them for
    anything else (a version like ``2.0`` or an all-digit hash is quoted); every digest
    is quoted, so that all of them look alike whatever their first character."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = _PLAIN.match(text) and not _DIGEST.match(text) and not text.endswith(":")
    if plain and text.lower() not in _YAML_WORDS:
        return text
    return "'" + text.replace("'", "''") + "'"


def _emit(value: object, indent: str, out: list[str]) -> None:
    """Block-style YAML for the nested dicts, lists and scalars of a lock document.

    A hand-written emitter rather than PyYAML's: its pure-Python dumper cost
    more than a whole solve, and its C dumper formats differently, which would
    make the same lock differ between machines with and without libyaml.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping) and item:
                out.append(f"{indent}{_scalar(key)}:")
                _emit(item, indent + "  ", out)
            elif isinstance(item, list) and item:
                out.append(f"{indent}{_scalar(key)}:")
                _emit(item, indent, out)
            else:
                if isinstance(item, Mapping | list):
                    text = "{}" if isinstance(item, Mapping) else "[]"
                else:
                    text = _scalar(item)
                out.append(f"{indent}{_scalar(key)}: {text}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and item:
                block: list[str] = []
                _emit(item, indent + "  ", block)
                out.append(f"{indent}- {block[0].lstrip()}")
                out.extend(block[1:])
            else:
                out.append(f"{indent}- {_scalar(item)}")


def render_conda_lock(lock: CondaLock) -> str:
    """conda-lock v1 YAML text of ``lock``: stable key order, packages sorted, no timestamps."""
    document = {
        "version": 1,
        "metadata": {
            "content_hash": dict(sorted(lock.content_hash)),
            "channels": [{"url": c, "used_env_vars": []} for c in lock.channels],
            "platforms": list(lock.platforms),
            "sources": list(lock.sources),
            "custom_metadata": dict(sorted(lock.custom_metadata)),
        },
        "package": [_entry(p) for p in sorted(lock.packages, key=_sort_key)],
    }
    out: list[str] = []
    _emit(document, "", out)
    return HEADER + "\n".join(out) + "\n"
