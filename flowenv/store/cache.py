"""The local artifact cache: verified files only, laid out like the store.

A file enters the cache by being written to a temporary sibling, hashed while
written, and renamed into place only when its sha256 matches; a mismatch
deletes it. Concurrent writers of one artifact therefore race harmlessly.
"""

from __future__ import annotations

import hashlib
import netrc
import os
import shutil
import tempfile
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from flowenv._subprocess import redact
from flowenv.errors import StoreError
from flowenv.store.layout import artifact_key

CACHE_ENV = "FLOWENV_CACHE_DIR"
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$FLOWENV_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowenv``, else ``~/.cache/flowenv``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "flowenv").resolve()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactCache:
    """Verified artifacts under ``root/artifacts/sha256/<ab>/<digest>/<filename>``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def path(self, sha256: str, filename: str) -> Path:
        return self.root / artifact_key(sha256, filename)

    def scratch(self, name: str) -> Path:
        """A fresh private directory inside the cache (hydrate's wheel links, uv's cache...)."""
        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))

    def get(self, sha256: str, filename: str) -> Path | None:
        """The cached file if present and still matching its hash; a corrupt one is deleted."""
        path = self.path(sha256, filename)
        if not path.is_file():
            return None
        if sha256_of(path) != sha256:
            path.unlink(missing_ok=True)
            return None
        return path

    def add(
        self, sha256: str, filename: str, source: str, fill: Callable[[BinaryIO], None]
    ) -> Path:
        """Write via ``fill`` into the cache; kept only if its sha256 matches, else StoreError."""

        def produce(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                fill(handle)

        return self.add_path(sha256, filename, source, produce)

    def add_path(
        self, sha256: str, filename: str, source: str, produce: Callable[[Path], None]
    ) -> Path:
        """Like :meth:`add` for producers that write a path (a store download)."""
        final = self.path(sha256, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            produce(tmp)
            got = sha256_of(tmp)
            if got != sha256:
                raise StoreError(
                    f"sha256 mismatch for {filename} from {redact(source)}: expected {sha256}, "
                    f"got {got}; the file was deleted and nothing was installed"
                )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return final


def _copy(source: Path, out: BinaryIO) -> None:
    with source.open("rb") as handle:
        shutil.copyfileobj(handle, out, _CHUNK)


def fetch_locked(cache: ArtifactCache, url: str, sha256: str, filename: str, base: Path) -> Path:
    """The locked artifact at ``url`` in the cache, fetched and verified if not there yet.

    ``file://`` URLs and paths (relative ones to the lock's directory) are
    copied; http(s) is fetched with credentials from ``~/.netrc`` (or
    ``$NETRC``) for its host, never logged.
    """
    cached = cache.get(sha256, filename)
    if cached is not None:
        return cached
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt"):
        local = Path(unquote(parts.path)) if parts.scheme == "file" else Path(url)
        local = local if local.is_absolute() else base / local
        if not local.is_file():
            raise StoreError(f"cannot fetch {filename}: {redact(url)} does not exist")
        return cache.add(sha256, filename, url, lambda out: _copy(local, out))
    if parts.scheme in ("http", "https"):
        return cache.add(sha256, filename, url, lambda out: _http_get(url, out))
    raise StoreError(f"cannot fetch {filename}: unsupported URL scheme in {redact(url)}")


def _http_get(url: str, out: BinaryIO) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "flowenv"})
    auth = _netrc_auth(urlsplit(url).hostname or "")
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            shutil.copyfileobj(response, out, _CHUNK)
    except OSError as exc:
        raise StoreError(f"cannot fetch {redact(url)}: {exc}") from None


def _netrc_auth(host: str) -> str | None:
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if not entry:
        return None
    login, _, password = entry
    return "Basic " + b64encode(f"{login}:{password or ''}".encode()).decode()
