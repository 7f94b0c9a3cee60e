"""CPython builds in the store, so that an executor needs nothing but the store.

A PyPI env's Python is uv's relocatable python-build-standalone build for the
*target* platform (a Mac syncing a linux-64 env stores the linux build).
``flowenv sync`` asks uv which build serves the locked ``python`` there
(``uv python list``, under the user's uv settings: mirrors, a custom download
list), has uv download it and check its sha256 (``uv python install``), and
stores the archive content-addressed like every artifact, plus a record::

    interpreters/<platform>/cpython-<python>.json   {"key", "version", "sha256", ...}

once per locked ``python`` and platform. ``python = "3.9"`` records the newest
3.9 build uv knew at that sync; ``"3.9.13"`` exactly that release.

``flowenv hydrate`` uses a matching interpreter already on the machine when
there is one. Otherwise it fetches the archive from the store into the cache
(sha256-checked), and has uv install it offline from that file alone into
``<cache>/python``, where later hydrates find it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Container, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from flowenv.errors import StoreError
from flowenv.platforms import UV_PYTHON_PLATFORMS
from flowenv.store import Store
from flowenv.store.cache import ArtifactCache, sha256_of
from flowenv.store.layout import artifact_key, check_filename, check_segment, check_sha256

__all__ = [
    "PythonBuild",
    "install_build",
    "installed_build",
    "interpreter_archives",
    "interpreter_key",
    "store_interpreters",
    "stored_build",
]

RECORD_FORMAT = 1
_KEY = re.compile(r"^cpython-[0-9]+\.[0-9]+\.[0-9]+[a-z0-9]*-[a-z]+-[a-z0-9_]+-[a-z]+$")
_VERSION = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)([a-z0-9]*)$")


def interpreter_key(platform: str, python: str) -> str:
    """The store key of the record for ``python`` (as locked) on ``platform``."""
    return (
        f"interpreters/{check_segment(platform, 'platform')}/"
        f"cpython-{check_segment(python, 'python')}.json"
    )


def _parse_interpreter_key(key: str) -> tuple[str, str] | None:
    """(platform, python) of a record key :func:`interpreter_key` makes; None for other keys."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "interpreters":
        return None
    name = parts[2]
    if not (name.startswith("cpython-") and name.endswith(".json")):
        return None
    return parts[1], name[len("cpython-") : -len(".json")]


def interpreter_archives(store: Store, keys: Iterable[str]) -> frozenset[str]:
    """The artifact keys of the archives the records among ``keys`` name.

    ``flowenv store gc`` keeps them all: no manifest names a CPython build, but
    an executor without a local interpreter needs it. A record that cannot be
    read is an error (the gc then deletes nothing), as a damaged manifest is.
    """
    records = {key: parsed for key in keys if (parsed := _parse_interpreter_key(key))}
    archives = set()
    for key, data in store.read_many(records).items():
        if data is None:
            continue  # removed since the listing
        platform, python = records[key]
        build = PythonBuild.from_json(data, f"{store.url}/{key}", platform=platform, python=python)
        archives.add(build.artifact_key)
    return frozenset(archives)


@attrs.frozen(kw_only=True)
class PythonBuild:
    """One CPython build in the store: uv's name for it and the archive that holds it."""

    python: str  # as locked: "3.9" or "3.9.13"
    version: str  # the build's exact version: "3.9.13"
    key: str  # uv's name: "cpython-3.9.13-linux-x86_64-gnu"
    platform: str
    sha256: str
    filename: str
    size: int

    @property
    def artifact_key(self) -> str:
        return artifact_key(self.sha256, self.filename)

    def executable(self, install_dir: Path) -> Path:
        """Where uv puts this build's interpreter under ``install_dir``."""
        if self.platform.startswith("win"):
            return install_dir / self.key / "python.exe"
        major, minor = self.version.split(".")[:2]
        return install_dir / self.key / "bin" / f"python{major}.{minor}"

    def download_entry(self) -> dict[str, object]:
        """This build as an entry of uv's download list (``--python-downloads-json-url``)."""
        os_name, arch, libc = UV_PYTHON_PLATFORMS[self.platform]
        match = _VERSION.match(self.version)
        assert match, self.version  # validated when the record was read or made
        return {
            "name": "cpython",
            # uv's list prints macOS as "macos" but reads it as "darwin".
            "os": "darwin" if os_name == "macos" else os_name,
            "arch": {"family": arch, "variant": None},
            "libc": libc,
            "major": int(match[1]),
            "minor": int(match[2]),
            "patch": int(match[3]),
            "prerelease": match[4],
            "variant": None,
            "sha256": self.sha256,
        }

    def to_json(self) -> bytes:
        document = {"format": RECORD_FORMAT, **attrs.asdict(self)}
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str, *, platform: str, python: str) -> PythonBuild:
        """A record read from the store, validated; it must be the one asked for."""
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
                raise ValueError("not a flowenv interpreter record")
            size = document["size"]
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"invalid size {size!r}")
            build = cls(
                python=str(document["python"]),
                version=str(document["version"]),
                key=str(document["key"]),
                platform=str(document["platform"]),
                sha256=check_sha256(str(document["sha256"]), where),
                filename=check_filename(str(document["filename"]), where),
                size=size,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{where}: {exc}") from None
        if not _KEY.match(build.key) or not _VERSION.match(build.version):
            raise StoreError(f"{where}: invalid CPython build {build.key!r} {build.version!r}")
        if (build.platform, build.python) != (platform, python):
            raise StoreError(f"{where}: records {build.python} for {build.platform}; refusing it")
        return build


def store_interpreters(
    store: Store,
    cache: ArtifactCache,
    wanted: Iterable[tuple[str, str]],
    present: Container[str],
) -> tuple[int, tuple[str, ...]]:
    """Put the CPython build of each (python, platform) into the store unless it is there.

    Returns how many builds were stored and a note for each that uv offers
    no build for (executors there need a local interpreter).
    """
    stored = 0
    notes: list[str] = []
    downloads: dict[str, list[dict[str, object]]] = {}
    for python, platform in sorted(set(wanted)):
        record_key = interpreter_key(platform, python)
        if record_key in present:
            continue
        from flowenv.engines.uv import python_downloads

        if python not in downloads:
            downloads[python] = python_downloads(python)
        entry = _choose(downloads[python], platform)
        if entry is None:
            notes.append(
                f"uv knows no CPython {python} build for {platform}: executors there need a "
                f"local Python {python}"
            )
            continue
        build, archive = _fetch(cache, entry, python, platform)
        if build.artifact_key not in present:
            store.upload(archive, build.artifact_key)
        store.write(record_key, build.to_json())
        stored += 1
    return stored, tuple(notes)


def _choose(entries: list[dict[str, object]], platform: str) -> dict[str, object] | None:
    """The newest default CPython build of uv's list that runs on ``platform``."""
    os_name, arch, libc = UV_PYTHON_PLATFORMS[platform]
    fitting = [
        e
        for e in entries
        if (e.get("implementation"), e.get("variant")) == ("cpython", "default")
        and (e.get("os"), e.get("arch"), e.get("libc")) == (os_name, arch, libc)
        and isinstance(e.get("key"), str)
        and _KEY.match(str(e["key"]))
        and isinstance(e.get("url"), str)
        and _VERSION.match(str(e.get("version")))
    ]
    return max(fitting, key=lambda e: _version_tuple(str(e["version"])), default=None)


def _version_tuple(version: str) -> tuple[int, int, int, int, str]:
    match = _VERSION.match(version)
    assert match
    # A final release sorts above its pre-releases.
    return (int(match[1]), int(match[2]), int(match[3]), 0 if match[4] else 1, match[4])


def _fetch(
    cache: ArtifactCache, entry: Mapping[str, Any], python: str, platform: str
) -> tuple[PythonBuild, Path]:
    """uv downloads and checks the build; it enters flowenv's cache by its own sha256."""
    from flowenv.engines.uv import download_python

    key = str(entry["key"])
    url = str(entry["url"])
    filename = check_filename(unquote(urlsplit(url).path.rsplit("/", 1)[-1]), url)
    scratch = cache.scratch("python")
    try:
        try:
            downloaded = download_python(
                key, scratch / "archives", scratch / "unpacked", label=f"{platform}"
            )
        except StoreError as exc:
            raise StoreError(
                f"{exc.message}\n(`flowenv sync --no-python` syncs without it; executors then "
                f"need a local Python {python})"
            ) from None
        sha256 = sha256_of(downloaded)
        archive = cache.add_path(sha256, filename, url, lambda tmp: os.replace(downloaded, tmp))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    build = PythonBuild(
        python=python,
        version=str(entry["version"]),
        key=key,
        platform=platform,
        sha256=sha256,
        filename=filename,
        size=archive.stat().st_size,
    )
    return build, archive


# -- hydrate -----------------------------------------------------------------------
def _install_dir(cache: ArtifactCache) -> Path:
    return cache.root / "python"


def _local_record(cache: ArtifactCache, platform: str, python: str) -> Path:
    return _install_dir(cache) / f"{platform}-cpython-{python}.json"


def stored_build(store: Store, python: str, platform: str) -> PythonBuild | None:
    """The store's CPython build for ``python`` on ``platform`` (None if sync stored none)."""
    key = interpreter_key(platform, python)
    raw = store.read(key)
    if raw is None:
        return None
    return PythonBuild.from_json(raw, f"{store.url}/{key}", platform=platform, python=python)


def installed_build(cache: ArtifactCache, python: str, platform: str) -> PythonBuild | None:
    """A build an earlier hydrate installed from the store into the cache, if still there."""
    record = _local_record(cache, platform, python)
    try:
        build = PythonBuild.from_json(
            record.read_bytes(), str(record), platform=platform, python=python
        )
    except (OSError, StoreError):
        return None
    return build if build.executable(_install_dir(cache)).is_file() else None


def install_build(cache: ArtifactCache, build: PythonBuild, archive: Path, label: str) -> Path:
    """Install ``build`` from its verified ``archive`` into the cache; its interpreter."""
    from flowenv._atomic import write_atomic
    from flowenv.engines.uv import install_python

    install_dir = _install_dir(cache)
    executable = build.executable(install_dir)
    with cache.locked(f"python-{build.sha256[:3]}"):
        if not executable.is_file():
            install_python(
                build.key,
                build.download_entry(),
                archive,
                install_dir,
                cache_dir=cache.root / "uv",
                label=label,
            )
        if not executable.is_file():
            raise StoreError(f"{label}: CPython {build.key} installed without {executable.name}")
        write_atomic(
            _local_record(cache, build.platform, build.python), build.to_json(), durable=False
        )
    return executable
