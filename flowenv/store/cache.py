"""The local artifact cache: verified files only, laid out like the store.

A file enters the cache by being written to a temporary sibling, hashed, and
renamed into place only when its sha256 matches; a mismatch deletes it.
Concurrent writers of one artifact therefore race harmlessly.

Each verified file gets a sidecar marker ``.<filename>.verified`` recording
the size, mtime and inode it had when its hash was checked. A later lookup
whose ``stat`` still matches trusts the file without reading it again, so a
warm hydrate or sync hashes nothing; any change to the file (truncation, a
rewrite, a replacement) changes the stat and brings the full check back.

Many processes may share one cache (a node's executors, a fan-out). They
coordinate with ``flock`` on a bounded set of lock files under ``locks/``: one
artifact is fetched by one process while the others wait and then find it,
and ``flowenv cache prune`` (exclusive) never runs while a hydrate (shared) does.

``wheels/`` is a persistent find-links directory of hard links to verified
wheels: handing uv the same path for the same file every time is what lets
uv's own cache (keyed by the wheel's location) stay warm instead of unpacking
every wheel again into a fresh entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from flowenv._subprocess import redact
from flowenv.cachedir import CACHE_ENV, default_cache_dir
from flowenv.errors import StoreError
from flowenv.store.layout import artifact_key
from flowenv.url_credentials import SourceAuth, realm

if TYPE_CHECKING:
    import urllib.request

_CHUNK = 1 << 20
#: Lock files are bucketed by a hash prefix so that their number stays bounded.
_BUCKET = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    info = path.stat()
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ino}"


def local_source(url: str, base: Path) -> Path | None:
    """The local file a locked ``file://`` URL or path names (relative to ``base``); else None."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt"):
        local = Path(unquote(parts.path)) if parts.scheme == "file" else Path(url)
        return local if local.is_absolute() else base / local
    return None


def read_verified(path: Path, sha256: str, filename: str, source: str) -> bytes:
    """The bytes of ``path``, read once and returned only if they hash to ``sha256``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"cannot fetch {filename}: {redact(source)} does not exist") from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise StoreError(
            f"sha256 mismatch for {filename} from {redact(source)}: expected {sha256}, got {got}; "
            "nothing was uploaded"
        )
    return data


class ArtifactCache:
    """Verified artifacts under ``root/artifacts/sha256/<ab>/<digest>/<filename>``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def path(self, sha256: str, filename: str) -> Path:
        return self.root / artifact_key(sha256, filename)

    def scratch(self, name: str) -> Path:
        """A fresh private directory inside the cache (hydrate's wheel links, uv's cache...)."""
        base = self.root / "tmp"
        with self._writable():
            base.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))

    def check_writable(self) -> None:
        """A StoreError now, rather than a failure half-way, if the cache cannot be written."""
        with self._writable():
            self.root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.root).close()

    @contextmanager
    def _writable(self) -> Iterator[None]:
        """Turn "cannot create a file in the cache" into one StoreError saying what to do."""
        try:
            yield
        except OSError as exc:
            raise StoreError(
                f"cannot write to the artifact cache {self.root}: {exc.strerror or exc}; "
                f"set {CACHE_ENV} to a writable directory"
            ) from None

    @contextmanager
    def locked(self, name: str, *, shared: bool = False) -> Iterator[None]:
        """Hold the cache-wide lock ``name`` (exclusive, or shared) for the ``with`` block.

        ``flock`` locks belong to an open file, so threads of one process exclude
        each other too. Lock files are never deleted: that would let two holders
        lock two different files of one name.
        """
        path = self.root / "locks" / f"{name}.lock"
        with self._writable():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a")
        with handle:
            if os.name == "posix":
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield

    def wheel_dir(self) -> Path:
        return self.root / "wheels"

    def link_wheels(self, files: Iterable[Path]) -> Path | None:
        """The shared find-links directory, holding a hard link to each verified file.

        None when a name there is taken by other bytes (two different wheels
        with one file name) or hard links are refused: the caller then uses a
        private directory for this install.
        """
        directory = self.wheel_dir()
        directory.mkdir(parents=True, exist_ok=True)
        for file in files:
            link = directory / file.name
            try:
                os.link(file, link)
                continue
            except FileExistsError:
                pass
            except OSError:
                return None
            try:
                if os.path.samefile(link, file):
                    continue
                if self._mirrors_an_artifact(link):
                    return None  # a wheel of the same name with other bytes, in use
                # An orphan: the artifact it mirrored left the cache (pruned, or found
                # corrupt). Swap in the verified one, atomically.
                tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
                os.link(file, tmp)
                os.replace(tmp, link)
                continue
            except OSError:
                return None
        return directory

    def _mirrors_an_artifact(self, link: Path) -> bool:
        """Whether ``link`` (in :meth:`wheel_dir`) is one inode with a cached artifact."""
        twin = self.path(sha256_of(link), link.name)
        try:
            return os.path.samefile(link, twin)
        except FileNotFoundError:
            return False

    def _marker(self, path: Path) -> Path:
        # Artifact names never start with "." (layout.check_filename), so no clash.
        return path.with_name(f".{path.name}.verified")

    def _mark(self, path: Path) -> None:
        """Record that ``path`` was verified as it is now (advisory: a torn one never matches)."""
        marker = self._marker(path)
        tmp = marker.with_name(f"{marker.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(_stamp(path), encoding="ascii")
            os.replace(tmp, marker)
        except OSError:
            # Advisory only: a cache that cannot take the marker re-hashes next time.
            tmp.unlink(missing_ok=True)

    def get(self, sha256: str, filename: str) -> Path | None:
        """The cached file if present and still matching its hash; a corrupt one is deleted.

        A file whose stat matches its verified marker is trusted without re-hashing.
        """
        path = self.path(sha256, filename)
        try:
            stamp = _stamp(path)
        except OSError:
            return None  # absent, or a cache we cannot read: fetched again (add reports why)
        marker = self._marker(path)
        try:
            if marker.read_text(encoding="ascii") == stamp:
                return path
        except (OSError, UnicodeDecodeError):
            pass
        if sha256_of(path) != sha256:
            path.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
            return None
        self._mark(path)
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
        """Like :meth:`add` for producers that write a path (a store download).

        ``produce`` may also create ``tmp`` as a hard link to a local file: the
        hash is checked on what ``tmp`` holds, and a mismatch removes only the link.
        """
        # One process fetches an artifact; the others wait and then find it here.
        with self.locked(f"artifact-{sha256[:_BUCKET]}"):
            cached = self.get(sha256, filename)
            if cached is not None:
                return cached
            return self._add_locked(sha256, filename, source, produce)

    def _add_locked(
        self, sha256: str, filename: str, source: str, produce: Callable[[Path], None]
    ) -> Path:
        final = self.path(sha256, filename)
        with self._writable():
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{filename}.", suffix=".part", dir=final.parent
            )
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
            self._mark(final)
        finally:
            tmp.unlink(missing_ok=True)
        return final

    def link_in(self, sha256: str, filename: str, source: str, local: Path) -> Path:
        """Add the local file ``local`` (a local store's artifact), verified, without a copy.

        A hard link is safe here because stores only ever replace files whole
        (a new inode), never rewrite them in place; the link keeps the bytes
        that were verified. Across devices (or where links are refused) it copies.
        """

        def produce(tmp: Path) -> None:
            tmp.unlink()
            try:
                os.link(local, tmp)
            except OSError:
                shutil.copyfile(local, tmp)  # a missing source raises here, too

        try:
            return self.add_path(sha256, filename, source, produce)
        except (IsADirectoryError, PermissionError) as exc:
            # A store entry that is a directory, or that we may not read.
            raise StoreError(
                f"cannot read {redact(source)} from the store: {exc.strerror}"
            ) from None
        except FileNotFoundError:
            raise StoreError(f"{redact(source)} is missing from the store") from None


def _copy(source: Path, out: BinaryIO) -> None:
    with source.open("rb") as handle:
        shutil.copyfileobj(handle, out, _CHUNK)


def fetch_locked(
    cache: ArtifactCache,
    url: str,
    sha256: str,
    filename: str,
    base: Path,
    auth: SourceAuth | None = None,
) -> Path:
    """The locked artifact at ``url`` in the cache, fetched and verified if not there yet.

    ``file://`` URLs and paths (relative ones to the lock's directory) are
    copied; http(s) is fetched with the configuration's credentials for that
    URL (``auth``), else those of ``~/.netrc`` (or ``$NETRC``) for its host,
    never logged.
    """
    cached = cache.get(sha256, filename)
    if cached is not None:
        return cached
    local = local_source(url, base)
    if local is not None:
        if not local.is_file():
            raise StoreError(f"cannot fetch {filename}: {redact(url)} does not exist")
        return cache.add(sha256, filename, url, lambda out: _copy(local, out))
    if urlsplit(url).scheme in ("http", "https"):
        return cache.add(sha256, filename, url, lambda out: _http_get(url, out, auth))
    raise StoreError(f"cannot fetch {filename}: unsupported URL scheme in {redact(url)}")


def _http_get(url: str, out: BinaryIO, auth: SourceAuth | None) -> None:
    # Imported here: http.client and friends are dead weight for local and store fetches.
    import urllib.error
    import urllib.request

    # ``url`` (the lock's, credential-free) stays what errors name.
    fetch_url, header = auth.request_for(url) if auth else (url, None)
    request = urllib.request.Request(fetch_url, headers={"User-Agent": "flowenv"})
    header = header or _netrc_auth(urlsplit(fetch_url).hostname or "")
    if header:
        request.add_header("Authorization", header)
    opener = urllib.request.build_opener(_redirect_handler())
    try:
        with opener.open(request, timeout=60) as response:
            shutil.copyfileobj(response, out, _CHUNK)
    except OSError as exc:
        if isinstance(exc, urllib.error.HTTPError):
            # It holds the server's open response (a 401, a 404): closed now,
            # not whenever the garbage collector meets it (a ResourceWarning).
            exc.close()
        raise StoreError(f"cannot fetch {redact(url)}: {redact(str(exc))}") from None


def _redirect_handler() -> urllib.request.BaseHandler:
    """urllib's redirect handler, except that credentials never follow a redirect elsewhere.

    urllib keeps every header across redirects; an index that redirects its
    files to a CDN or a presigned object URL would receive the index password
    there. Like pip and uv, send it only back to the same scheme, host and port.
    """
    import urllib.request

    class SameRealmAuth(urllib.request.HTTPRedirectHandler):
        def redirect_request(  # type: ignore[no-untyped-def]
            self, req, fp, code, msg, headers, newurl
        ):
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None and realm(new.full_url) != realm(req.full_url):
                new.remove_header("Authorization")
            return new

    return SameRealmAuth()


def _netrc_auth(host: str) -> str | None:
    import netrc
    from base64 import b64encode

    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if not entry:
        return None
    login, _, password = entry
    return "Basic " + b64encode(f"{login}:{password or ''}".encode()).decode()
