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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from flowenv._atomic import make_temp
from flowenv._subprocess import redact
from flowenv.errors import StoreError
from flowenv.store.registry import LOCAL, Backend

T = TypeVar("T")


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
        self, url: str, backend: Backend, fs: Any, root: str, options: Mapping[str, Any]
    ) -> None:
        """``fs`` is the fsspec filesystem of a remote backend; None for the local folder."""
        self.url = redact(url)
        self.backend = backend
        self.fs = fs
        self.root = root.rstrip("/")
        self._secrets = sorted(_secret_strings(options), key=len, reverse=True)

    @property
    def is_local(self) -> bool:
        return self.backend is LOCAL

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
        try:
            yield
        except StoreError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            # botocore, azure and google errors all derive from one of these.
            raise StoreError(
                self._scrub(f"{self.url}: cannot {action}: {type(exc).__name__}: {exc}")
            ) from None
        except Exception as exc:
            raise StoreError(
                self._scrub(f"{self.url}: cannot {action}: {type(exc).__name__}: {exc}")
            ) from None

    def _call(self, action: str, func: Callable[[], T]) -> T:
        with self._errors(action):
            return func()

    # -- reading ---------------------------------------------------------------
    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under ``prefix`` with its size, from one recursive listing (paginated)."""
        base = self.path(prefix).rstrip("/") if prefix else self.root
        if self.is_local:
            return self._call(f"list {prefix or 'the store'}", lambda: self._local_sizes(base))
        # A listing cached by the backend from before our own uploads (or
        # another process's) would make us re-upload or miss a manifest.
        self._call("list the store", lambda: self.fs.invalidate_cache())
        found = self._call(f"list {prefix or 'the store'}", lambda: self.fs.find(base, detail=True))
        cut = len(self.root) + 1
        sizes: dict[str, int] = {}
        for path, info in found.items():
            key = path.rstrip("/")[cut:] if path.startswith(self.root + "/") else None
            if key is None:
                # Backends differ in whether listings carry a leading "/" or the protocol.
                stripped = self.fs._strip_protocol(path).rstrip("/")
                key = stripped[cut:] if stripped.startswith(self.root + "/") else stripped
            if info.get("type", "file") == "file":
                sizes[key] = int(info.get("size") or 0)
        return sizes

    def _local_sizes(self, base: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        cut = len(self.root) + 1
        for directory, _, files in os.walk(base):
            for name in files:
                # In-flight temporary files of a concurrent writer are not keys.
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                path = os.path.join(directory, name)
                try:
                    size = os.stat(path).st_size
                except FileNotFoundError:
                    continue  # renamed or removed by another writer since the listing
                sizes[path[cut:].replace(os.sep, "/")] = size
        return sizes

    def read(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None when there is no such object."""
        with self._errors(f"read {key}"):
            try:
                if self.is_local:
                    return Path(self.path(key)).read_bytes()
                data: bytes = self.fs.cat_file(self.path(key))
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
            got = self.fs.cat(list(paths), on_error="return")
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
        """Publish the local file ``source`` at ``key``, atomically."""
        if self.is_local:
            self._call(
                f"write {key}",
                lambda: self._local_replace(key, lambda tmp: shutil.copyfile(source, tmp)),
            )
        else:
            self._call(f"upload {key}", lambda: self.fs.put_file(str(source), self.path(key)))

    def write(self, key: str, data: bytes) -> None:
        """Publish ``data`` at ``key``, atomically."""
        if self.is_local:
            self._call(
                f"write {key}",
                lambda: self._local_replace(key, lambda tmp: Path(tmp).write_bytes(data)),
            )
        else:
            self._call(f"write {key}", lambda: self.fs.pipe_file(self.path(key), data))

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
