"""A store: one fsspec filesystem and a root, seen as keys relative to that root.

Every backend call goes through :class:`Store` so that failures become one
:class:`StoreError` line whose text never contains a storage option value
(keys, secrets, connection strings), and so that writes are atomic on every
backend: object stores publish a PUT whole or not at all; the local backend
writes a temporary sibling and renames it.

The local folder (the embedded default) is served with ``os`` and ``shutil``
directly rather than through fsspec: importing fsspec (and the asyncio it
pulls in) costs more than a whole hydrate of a small env on an executor.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from flowenv._atomic import make_temp
from flowenv._subprocess import redact
from flowenv.errors import StoreError
from flowenv.store.registry import LOCAL, Backend

T = TypeVar("T")
#: S3 takes at most 5 GiB in one PUT; larger files go as multipart uploads of
#: STREAM_PART bytes, STREAM_PARTS at once (the memory one such upload holds).
S3_SINGLE_PUT_MAX = 5 << 30
STREAM_PART = 8 << 20
STREAM_PARTS = 4


@attrs.frozen
class Entry:
    """One listed object: its size in bytes and its modification time (seconds since the epoch)."""

    size: int
    mtime: float


def _mtime_of(info: Mapping[str, Any]) -> float:
    """The modification time of a listed object, whatever the backend calls it."""
    for field in ("LastModified", "last_modified", "mtime", "updated"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


#: Exception type names (anywhere in the cause chain) that mean "no answer", on every backend.
_UNREACHABLE = (
    "TimeoutError",  # asyncio, builtins, fsspec's FSTimeoutError
    "timeout",  # socket.timeout
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "EndpointConnectionError",  # botocore: refused, unresolvable
    "ConnectionClosedError",
    "ClientConnectorError",  # aiohttp (gcsfs, adlfs)
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ConnectionTimeoutError",
    "SocketTimeoutError",
    "ServiceRequestError",  # azure-core: could not send
    "ServiceResponseError",  # azure-core: no (complete) answer
    "ConnectionRefusedError",
    "ConnectionResetError",
    "RemoteDisconnected",  # http.client (flowenv's S3 client): closed without an answer
    "BrokenPipeError",
)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the endpoint did not answer or is gone."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(type(current).__name__ == name for name in _UNREACHABLE):
            return True
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no answer"


def _secret_strings(options: Mapping[str, Any]) -> list[str]:
    """Every string value nested in ``options`` that is long enough to be a secret."""
    found: list[str] = []
    for value in options.values():
        if isinstance(value, Mapping):
            found += _secret_strings(value)
        elif isinstance(value, str) and len(value) >= 4:
            found.append(value)
    return found


class Store:
    """Keys (``artifacts/sha256/ab/…``) under one root of one filesystem."""

    def __init__(
        self,
        url: str,
        backend: Backend,
        fs: Any,
        root: str,
        options: Mapping[str, Any],
        timeout: float = 60.0,
    ) -> None:
        """``fs`` is the fsspec filesystem of a remote backend; None for the local folder."""
        self.url = redact(url)
        self.backend = backend
        self.fs = fs
        self.root = root.rstrip("/")
        self._secrets = sorted(_secret_strings(options), key=len, reverse=True)
        #: Seconds a request may wait for an answer, all attempts together (for messages).
        self.timeout = timeout
        #: Set at the first request that got no answer; every later call fails with it at once.
        self.unreachable: str | None = None
        self._lock = threading.Lock()

    @property
    def is_local(self) -> bool:
        return self.backend is LOCAL

    @property
    def _s3fs(self) -> bool:
        """s3fs serves this store (not flowenv's own S3 client): its quirks apply."""
        return self.backend.protocol == "s3" and self.backend.module == "s3fs"

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the store is a local folder (None for remote stores)."""
        return Path(self.path(key)) if self.is_local else None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return redact(text)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        if self.unreachable is not None:
            raise StoreError(self.unreachable)  # fail fast: one message, not one per artifact
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            # botocore, azure and google errors all derive from Exception subclasses
            # (OSError, ValueError, RuntimeError...); what they say is scrubbed.
            if is_unreachable(exc):
                from flowenv.store.timeouts import TIMEOUT_ENV

                with self._lock:
                    if self.unreachable is None:
                        self.unreachable = self._scrub(
                            f"{self.url}: the store did not answer ({type(exc).__name__}: "
                            f"{_first_line(exc)}); gave up after {self.timeout:g} s of "
                            f"waiting (set {TIMEOUT_ENV} to change it)"
                        )
                raise StoreError(self.unreachable) from None
            raise StoreError(
                self._scrub(f"{self.url}: cannot {action}: {type(exc).__name__}: {exc}")
            ) from None

    def _call(self, action: str, func: Callable[[], T]) -> T:
        with self._errors(action):
            return func()

    # -- reading ---------------------------------------------------------------
    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under ``prefix`` with its size, from one recursive listing (paginated)."""
        return {key: entry.size for key, entry in self.list_entries(prefix).items()}

    def list_entries(self, prefix: str = "") -> dict[str, Entry]:
        """Every key under ``prefix`` with its size and modification time (one listing)."""
        base = self.path(prefix).rstrip("/") if prefix else self.root
        if self.is_local:
            return self._call(f"list {prefix or 'the store'}", lambda: self._local_entries(base))
        # A listing cached by the backend from before our own uploads (or
        # another process's) would make us re-upload or miss a manifest.
        self._call("list the store", lambda: self.fs.invalidate_cache())
        found = self._call(f"list {prefix or 'the store'}", lambda: self._find(base))
        cut = len(self.root) + 1
        entries: dict[str, Entry] = {}
        for path, info in found.items():
            key = path.rstrip("/")[cut:] if path.startswith(self.root + "/") else None
            if key is None:
                # Backends differ in whether listings carry a leading "/" or the protocol.
                stripped = self.fs._strip_protocol(path).rstrip("/")
                key = stripped[cut:] if stripped.startswith(self.root + "/") else stripped
            if info.get("type", "file") == "file":
                entries[key] = Entry(size=int(info.get("size") or 0), mtime=_mtime_of(info))
        return entries

    def _find(self, base: str) -> dict[str, Any]:
        if not self._s3fs:
            found: dict[str, Any] = self.fs.find(base, detail=True)
            return found
        # s3fs's find rebuilds its directory cache with a list-membership test per
        # directory: quadratic in the directories under one prefix (262 s for a gc
        # listing of 121,000 keys). The flat, paginated listing underneath is linear.
        import fsspec.asyn

        listed = fsspec.asyn.sync(self.fs.loop, self.fs._lsdir, base, delimiter="")
        return {info["name"]: info for info in listed}

    def _local_entries(self, base: str) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        cut = len(self.root) + 1
        for directory, _, files in os.walk(base):
            for name in files:
                # In-flight temporary files of a concurrent writer are not keys.
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                path = os.path.join(directory, name)
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    continue  # renamed or removed by another writer since the listing
                entries[path[cut:].replace(os.sep, "/")] = Entry(
                    size=info.st_size, mtime=info.st_mtime
                )
        return entries

    def read(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None when there is no such object."""
        with self._errors(f"read {key}"):
            try:
                if self.is_local:
                    return Path(self.path(key)).read_bytes()
                data: bytes = self.fs.cat_file(self.path(key), **self._read_options())
            except FileNotFoundError:
                return None
            return data

    def read_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """Several small objects in one batched call (missing ones -> None)."""
        wanted = list(keys)
        if not wanted:
            return {}
        if self.is_local:
            return {key: self.read(key) for key in wanted}
        paths = {self.path(k): k for k in wanted}
        with self._errors("read aliases"):
            got = self.fs.cat(list(paths), on_error="return", **self._read_options())
        out: dict[str, bytes | None] = dict.fromkeys(wanted)
        for path, value in got.items():
            key = paths.get(path) or paths.get(self.fs._strip_protocol(path))
            if key is None:
                continue
            if isinstance(value, FileNotFoundError):
                continue
            if isinstance(value, BaseException):
                with self._errors(f"read {key}"):
                    raise value
            out[key] = value
        return out

    def download(self, key: str, destination: Path) -> None:
        """Copy ``key`` to the local file ``destination`` (which the caller then verifies)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(f"download {key}"):
            try:
                if self.is_local:
                    shutil.copyfile(self.path(key), destination)
                else:
                    self.fs.get_file(self.path(key), str(destination))
            except FileNotFoundError:
                raise StoreError(f"{self.url}: {key} is missing from the store") from None

    # -- writing ---------------------------------------------------------------
    def upload(self, source: Path, key: str) -> None:
        """Publish the local file ``source`` at ``key``, atomically, streamed from the file."""
        if self.is_local:
            self._call(
                f"write {key}",
                lambda: self._local_replace(key, lambda tmp: shutil.copyfile(source, tmp)),
            )
        elif self._s3fs and source.stat().st_size <= S3_SINGLE_PUT_MAX:
            self._call(f"upload {key}", lambda: self._s3_put(source, self.path(key)))
        else:
            self._call(
                f"upload {key}",
                lambda: self.fs.put_file(str(source), self.path(key), **self._stream_options()),
            )

    def _s3_put(self, source: Path, path: str) -> None:
        # One PUT whose body is the open file: botocore streams it (and rewinds it
        # to retry). s3fs's put_file would read a file under 100 MiB whole, and
        # larger ones as ten 50 MiB parts at once (673 MiB for three 100 MB files).
        import fsspec.asyn

        bucket, key, _ = self.fs.split_path(path)

        async def put() -> None:
            with source.open("rb") as body:
                await self.fs._call_s3("put_object", Bucket=bucket, Key=key, Body=body)

        fsspec.asyn.sync(self.fs.loop, put)

    def _read_options(self) -> dict[str, int]:
        # Reads here are small (manifests, aliases): s3fs would first HEAD each
        # object to decide whether to fetch it in parallel ranges, doubling requests.
        return {"max_concurrency": 1} if self._s3fs else {}

    def _stream_options(self) -> dict[str, int]:
        # Past a single PUT's limit: multipart, in small parts, few at once.
        if self.backend.protocol == "s3":
            return {"chunksize": STREAM_PART, "max_concurrency": STREAM_PARTS}
        return {}

    def write(self, key: str, data: bytes) -> None:
        """Publish ``data`` at ``key``, atomically."""
        if self.is_local:
            self._call(
                f"write {key}",
                lambda: self._local_replace(key, lambda tmp: Path(tmp).write_bytes(data)),
            )
        else:
            self._call(f"write {key}", lambda: self.fs.pipe_file(self.path(key), data))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (batched where the backend can); keys already gone are fine."""
        wanted = sorted(set(keys))
        if not wanted:
            return
        if self.is_local:
            self._call("delete", lambda: self._local_delete(wanted))
            return
        paths = [self.path(k) for k in wanted]
        with self._errors(f"delete {len(paths)} objects"):
            with suppress(FileNotFoundError):  # another gc got there first
                self.fs.rm(paths)
            self.fs.invalidate_cache()

    def _local_delete(self, keys: list[str]) -> None:
        parents: set[Path] = set()
        for key in keys:
            path = Path(self.path(key))
            path.unlink(missing_ok=True)
            parents.add(path.parent)
        # Empty directories left behind are removed (up to the root), deepest first.
        root = Path(self.root)
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            while parent != root and root in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break  # not empty (or already gone): its parents are not empty either
                parent = parent.parent

    def _local_replace(self, key: str, fill: Callable[[str], object]) -> None:
        final = Path(self.path(key))
        # A shared store is read by other users: the umask decides, not mkstemp's 0600.
        tmp = str(make_temp(final))
        try:
            fill(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
