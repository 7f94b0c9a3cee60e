"""What the local cache holds and what uses it: ``flowenv cache info`` and ``flowenv cache prune``.

Every hydrate records, in the cache, the manifest it built from
(``manifests/<env-id>-<platform>.json``, once per env) and the prefix it
built (``prefixes/<token>.json``, once per prefix). An artifact is *used*
while some recorded prefix still holds the env (its marker names the env id)
and that env's manifest names the artifact. Nothing else is needed to decide
what to prune, offline, without the store.

Sizes count each file once however many hard links it has (the store, the
cache's ``artifacts/`` and ``wheels/`` may all be one inode).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from flowenv._atomic import write_atomic
from flowenv.errors import FlowenvError
from flowenv.store.cache import ArtifactCache
from flowenv.store.layout import ARTIFACTS, Manifest

if TYPE_CHECKING:
    from flowenv.interpreters import PythonBuild

__all__ = [
    "IN_USE",
    "CacheInfo",
    "PruneReport",
    "cache_info",
    "prefix_token",
    "prune",
    "record_use",
]

#: Held shared by every hydrate, exclusively by prune.
IN_USE = "in-use"
MARKER = ".flowenv-env.json"


def prefix_token(prefix: Path) -> str:
    return hashlib.sha256(str(prefix).encode()).hexdigest()[:24]


def _manifest_path(cache: ArtifactCache, env_id: str, platform: str) -> Path:
    return cache.root / "manifests" / f"{env_id}-{platform}.json"


def record_use(
    cache: ArtifactCache, prefix: Path, manifest: Manifest, python: PythonBuild | None = None
) -> None:
    """Remember that ``prefix`` holds ``manifest``'s env, made with ``python`` from the store.

    Files are written only when they change. ``python`` None keeps what an
    earlier record of the same env there says (a reused env was not rebuilt).
    """
    saved = _manifest_path(cache, manifest.env_id, manifest.platform)
    if not saved.is_file():
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(saved, manifest.to_json(), durable=False)
    record = cache.root / "prefixes" / f"{prefix_token(prefix)}.json"
    document: dict[str, object] = {
        "prefix": str(prefix),
        "env_id": manifest.env_id,
        "platform": manifest.platform,
    }
    try:
        old = record.read_text(encoding="utf-8")
    except OSError:
        old = None
    if python is not None:
        document["python"] = {"artifact": python.artifact_key, "install": python.key}
    elif old is not None:
        try:
            previous = json.loads(old)
        except ValueError:
            previous = None  # a record a crash damaged: rewritten below
        if isinstance(previous, dict) and previous.get("env_id") == manifest.env_id:
            return
    text = json.dumps(document, sort_keys=True)
    if old == text:
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, text, durable=False)


@attrs.frozen(kw_only=True)
class CacheInfo:
    root: Path
    artifacts: int
    artifact_bytes: int
    unused_artifacts: int
    unused_bytes: int
    #: Prefixes that still hold the env a hydrate built there.
    envs: tuple[str, ...]
    #: Records of prefixes since deleted or rebuilt with another env.
    stale_records: int
    uv_bytes: int
    total_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "artifacts": self.artifacts,
            "artifact_bytes": self.artifact_bytes,
            "unused_artifacts": self.unused_artifacts,
            "unused_bytes": self.unused_bytes,
            "envs": list(self.envs),
            "stale_records": self.stale_records,
            "uv_bytes": self.uv_bytes,
            "total_bytes": self.total_bytes,
        }


@attrs.frozen(kw_only=True)
class PruneReport:
    artifacts: int
    bytes: int
    records: int
    dry_run: bool


@attrs.frozen
class _Usage:
    live: tuple[tuple[Path, str], ...]  # (prefix, env id)
    stale: tuple[Path, ...]  # record files
    used: frozenset[str]  # artifact paths relative to the cache root
    manifests: frozenset[Path]  # manifest copies a live prefix needs
    pythons: frozenset[str]  # CPython builds (uv keys) installed from the store that are in use


def cache_info(cache: ArtifactCache) -> CacheInfo:
    usage = _usage(cache)
    artifacts = list(_artifacts(cache))
    unused = [a for a in artifacts if _relative(cache, a) not in usage.used]
    return CacheInfo(
        root=cache.root,
        artifacts=len(artifacts),
        artifact_bytes=_bytes(artifacts),
        unused_artifacts=len(unused),
        unused_bytes=_bytes(unused),
        envs=tuple(sorted(str(prefix) for prefix, _ in usage.live)),
        stale_records=len(usage.stale),
        uv_bytes=_bytes(_files(cache.root / "uv")),
        total_bytes=_bytes(_files(cache.root)),
    )


def prune(cache: ArtifactCache, *, dry_run: bool = False) -> PruneReport:
    """Remove what no hydrated env uses: stale records, artifacts, orphaned links, scratch.

    Runs while no hydrate does (the exclusive ``in-use`` lock), so nothing a
    running hydrate fetched can go before it records its use. Then uv's own
    ``cache prune`` drops uv entries nothing refers to any more.
    """
    if not cache.root.is_dir():
        return PruneReport(artifacts=0, bytes=0, records=0, dry_run=dry_run)
    with cache.locked(IN_USE):
        usage = _usage(cache)
        unused = [a for a in _artifacts(cache) if _relative(cache, a) not in usage.used]
        report = PruneReport(
            artifacts=len(unused), bytes=_bytes(unused), records=len(usage.stale), dry_run=dry_run
        )
        if dry_run:
            return report
        for record in usage.stale:
            record.unlink(missing_ok=True)
        for manifest in (cache.root / "manifests").glob("*.json"):
            if manifest not in usage.manifests:
                manifest.unlink(missing_ok=True)
        for artifact in unused:
            artifact.with_name(f".{artifact.name}.verified").unlink(missing_ok=True)
            artifact.unlink(missing_ok=True)
            _remove_empty(artifact.parent, stop=cache.root / ARTIFACTS)
        kept = {(i.st_dev, i.st_ino) for i in map(os.stat, _artifacts(cache))}
        for link in _files(cache.wheel_dir()):
            info = link.stat()
            if (info.st_dev, info.st_ino) not in kept:  # its artifact is gone
                link.unlink(missing_ok=True)
        _prune_pythons(cache.root / "python", usage.pythons)
        shutil.rmtree(cache.root / "tmp", ignore_errors=True)
        _uv_cache_prune(cache.root / "uv")
    return report


# -- helpers -----------------------------------------------------------------------
def _usage(cache: ArtifactCache) -> _Usage:
    live: list[tuple[Path, str]] = []
    stale: list[Path] = []
    used: set[str] = set()
    manifests: set[Path] = set()
    pythons: set[str] = set()
    for record in sorted((cache.root / "prefixes").glob("*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            prefix, env_id, platform = Path(data["prefix"]), data["env_id"], data["platform"]
            marker = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            stale.append(record)
            continue
        if not isinstance(marker, dict) or marker.get("env_id") != env_id:
            stale.append(record)
            continue
        saved = _manifest_path(cache, str(env_id), str(platform))
        try:
            manifest = Manifest.from_json(saved.read_bytes(), str(saved), expected_env_id=env_id)
        except (OSError, FlowenvError):
            stale.append(record)  # without its manifest the record cannot vouch for anything
            continue
        live.append((prefix, env_id))
        manifests.add(saved)
        used.update(a.key for a in manifest.artifacts)
        python = data.get("python")
        if isinstance(python, dict):
            used.add(str(python.get("artifact")))
            pythons.add(str(python.get("install")))
    return _Usage(
        tuple(live), tuple(stale), frozenset(used), frozenset(manifests), frozenset(pythons)
    )


def _artifacts(cache: ArtifactCache) -> Iterator[Path]:
    for path in _files(cache.root / ARTIFACTS):
        if not path.name.startswith("."):
            yield path


def _relative(cache: ArtifactCache, path: Path) -> str:
    return path.relative_to(cache.root).as_posix()


def _files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            yield Path(directory, name)


def _bytes(paths: Iterator[Path] | list[Path]) -> int:
    """Bytes on disk, each inode once (hard links are not copies)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total


def _remove_empty(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_relative_to(stop):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _prune_pythons(install_dir: Path, used: frozenset[str]) -> None:
    """CPython builds installed from the store that no live env uses, and their records."""
    if not install_dir.is_dir():
        return
    for entry in install_dir.iterdir():
        if entry.name.startswith("."):
            continue  # uv's own lock and scratch
        if entry.suffix == ".json":
            try:
                key = json.loads(entry.read_text(encoding="utf-8"))["key"]
            except (OSError, ValueError, KeyError, TypeError):
                key = None
            if key not in used:
                entry.unlink(missing_ok=True)
        elif entry.is_symlink():
            if not entry.exists() or entry.resolve().name not in used:
                entry.unlink()  # uv's minor-version link (cpython-3.9-...) to a build
        elif entry.is_dir() and entry.name not in used:
            shutil.rmtree(entry, ignore_errors=True)


def _uv_cache_prune(uv_cache: Path) -> None:
    if not uv_cache.is_dir():
        return
    from flowenv._subprocess import describe_failure, run
    from flowenv.engines.uv import uv_binary

    args = [uv_binary(), "cache", "prune", "--cache-dir", str(uv_cache), "--quiet", "--no-config"]
    result = run(args, env={**os.environ, "UV_NO_PROGRESS": "1"})
    if result.returncode != 0:
        raise FlowenvError(f"uv cache prune failed:\n{describe_failure(args, result)}")
