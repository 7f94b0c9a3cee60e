"""flowenv's own S3 client: the few fsspec calls :class:`~flowenv.store.Store` makes, over stdlib.

Why: importing s3fs and botocore costs about a second here, and botocore
spends much Python time on every request; a no-op sync (eight requests) and
a first sync of a thousand small wheels were dominated by that. This client
is ``http.client`` with a pool of keep-alive connections per host
(:mod:`flowenv.store.s3_http`), SigV4 signed with ``hmac``
(:mod:`flowenv.store.s3_signing`), listings parsed with ``xml.etree``. It speaks the same
URLs and options as s3fs (:mod:`flowenv.store.s3_settings` decides when it
can, and hands everything else to s3fs).

Choices:

* Payloads are signed with their real SHA-256, never ``UNSIGNED-PAYLOAD``: S3
  then refuses a body that differs from what was hashed (a file changed while
  being read, a proxy that mangles), which TLS alone does not catch, and plain
  ``http://`` endpoints get the same check. It costs one more read of each
  file, at hashing speed (sync has usually just read it).
* Retries as :mod:`flowenv.store.timeouts` budgets them: a request is tried
  ``ATTEMPTS`` times on no answer, a reset connection, 500/502/503/504 or
  ``SlowDown``, with short jittered back-offs; a keep-alive connection the
  server closed in between is reopened once without counting as an attempt.
* A bucket in another region (301 ``PermanentRedirect``, 400
  ``AuthorizationHeaderMalformed``) is asked again in the region S3 names,
  which is then kept for that bucket.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

from flowenv._threads import as_finished
from flowenv.store.s3_http import Answer, ConnectionPool, FileBody
from flowenv.store.s3_settings import S3Settings
from flowenv.store.s3_signing import (
    EMPTY_SHA256,
    authorization,
    encode_path,
    encode_query,
    signing_key,
)
from flowenv.store.timeouts import ATTEMPTS, request_timeouts

#: Statuses and error codes worth another try.
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})
#: Parallel requests of one batched call (cat of many keys, multipart parts).
_WORKERS = 16
_MAX_DELETE = 1000


class S3Error(OSError):
    """An error answer from S3: its code, message and HTTP status (never a request detail)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # The server's words, on one line: flowenv's errors are one line each.
        code, message = " ".join(code.split()), " ".join(message.split())
        super().__init__(
            f"{code}: {message} (HTTP {status})" if message else f"{code} (HTTP {status})"
        )
        self.status = status
        self.code = code


class S3NotFound(S3Error, FileNotFoundError):
    """404: no such key (or bucket)."""


class S3Denied(S3Error, PermissionError):
    """403: refused (credentials, signature, policy)."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ElementTree.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return ""


def _error_of(status: int, body: bytes) -> tuple[str, str, str]:
    """(code, message, region) from an error body; HEAD answers have none."""
    code, message, region = "", "", ""
    if body:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            root = None
        if root is not None:
            code, message, region = (
                _text(root, "Code"),
                _text(root, "Message"),
                _text(root, "Region"),
            )
    return code or http.client.responses.get(status, "Error").replace(" ", ""), message, region


def _dns_compatible(bucket: str) -> bool:
    """Usable as a virtual host over TLS: lower-case letters, digits, hyphens (no dots)."""
    return (
        3 <= len(bucket) <= 63
        and bucket[0].isalnum()
        and bucket[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in bucket)
    )


class S3FastFileSystem:
    """The fsspec methods :class:`Store` uses, served by signed ``http.client`` requests."""

    protocol = ("s3", "s3a")
    #: Larger files go as multipart uploads (5 GiB: S3's limit for one PUT).
    single_put_max = 5 << 30

    def __init__(self, settings: S3Settings, budget: float) -> None:
        self.settings = settings
        connect, read = request_timeouts(budget)
        self.connect_timeout = settings.connect_timeout or connect
        self.read_timeout = settings.read_timeout or read
        self.attempts = settings.attempts or ATTEMPTS
        self._regions: dict[str, str] = {}
        self._keys: dict[tuple[str, str], bytes] = {}
        self._guard = threading.Lock()
        self._pool = ConnectionPool(self.connect_timeout, self.read_timeout, settings.verify)

    # -- fsspec path helpers ------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        for prefix in ("s3://", "s3a://"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        return path.rstrip("/")

    def split_path(self, path: str) -> tuple[str, str, None]:
        bucket, _, key = self._strip_protocol(path).partition("/")
        return bucket, key, None

    def invalidate_cache(self, path: str | None = None) -> None:
        """Nothing is cached: every listing asks S3."""

    # -- reading ------------------------------------------------------------------
    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **_: Any
    ) -> bytes:
        bucket, key, _v = self.split_path(path)
        headers = {}
        if start is not None or end is not None:
            headers["range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        return self._request("GET", bucket, key, headers=headers).body

    def cat(
        self, path: str | list[str], recursive: bool = False, on_error: str = "raise", **_: Any
    ) -> bytes | dict[str, bytes | BaseException]:
        """One object's bytes, or several at once (``on_error="return"``: errors as values)."""
        if isinstance(path, str):
            return self.cat_file(path)
        paths = list(path)
        calls = [lambda p=p: self.cat_file(p) for p in paths]
        out: dict[str, bytes | BaseException] = {}
        for outcome in as_finished(calls, _WORKERS):
            if outcome.error is not None and on_error != "return":
                raise outcome.error
            out[paths[outcome.index]] = outcome.error or outcome.result  # type: ignore[assignment]
        return out

    def get_file(self, rpath: str, lpath: str, **_: Any) -> None:
        bucket, key, _v = self.split_path(rpath)
        self._request("GET", bucket, key, into=lpath)

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
        **_: Any,
    ) -> dict[str, dict[str, Any]] | list[str]:  # fmt: skip
        """Every object under ``path`` (a prefix, as a folder), from paginated ListObjectsV2."""
        bucket, key, _v = self.split_path(path)
        prefix = f"{key}/" if key else ""
        found: dict[str, dict[str, Any]] = {}
        token = ""
        # A server that hands back a token it gave before would page forever.
        tokens: set[str] = set()
        while True:
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
            if token:
                query["continuation-token"] = token
            answer = self._request("GET", bucket, "", query=query)
            root = ElementTree.fromstring(answer.body)
            # A 200 carrying anything else (an error document from a proxy or a
            # broken server) is no empty page: gc would collect what it hides.
            if _local(root.tag) != "ListBucketResult":
                code, message, _r = _error_of(answer.status, answer.body)
                raise S3Error(answer.status, code, message)
            # Keys are encoded only if the answer says so: some servers ignore the
            # parameter, and a raw "+" (a wheel's local version) is no space.
            encoded = _text(root, "EncodingType") == "url"
            for item in _children(root, "Contents"):
                listed = _text(item, "Key")
                listed = unquote_plus(listed) if encoded else listed
                if not listed.startswith(prefix):  # not asked for: not this store's key
                    continue
                name = f"{bucket}/{listed}"
                found[name] = {
                    "name": name,
                    "type": "file",
                    "size": int(_text(item, "Size") or 0),
                    "mtime": _timestamp(_text(item, "LastModified")),
                }
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated") != "true" or not token:
                break
            if token in tokens:
                raise S3Error(200, "InvalidListing", "the server repeated a continuation token")
            tokens.add(token)
        return found if detail else sorted(found)

    # -- writing ------------------------------------------------------------------
    def pipe_file(self, path: str, value: bytes, **_: Any) -> None:
        bucket, key, _v = self.split_path(path)
        self._request("PUT", bucket, key, body=value)

    def put_file(
        self, lpath: str, rpath: str, chunksize: int = 8 << 20, max_concurrency: int = 4, **_: Any
    ) -> None:
        """One streamed PUT, or (past :attr:`single_put_max`) a multipart upload of ``chunksize``
        parts, ``max_concurrency`` at once (the memory it holds)."""
        bucket, key, _v = self.split_path(rpath)
        size = os.path.getsize(lpath)
        if size <= self.single_put_max:
            self._request("PUT", bucket, key, body=FileBody(lpath, 0, size))
        else:
            self._multipart(lpath, size, bucket, key, chunksize, max_concurrency)

    def _multipart(
        self, lpath: str, size: int, bucket: str, key: str, chunksize: int, workers: int
    ) -> None:
        answer = self._request("POST", bucket, key, query={"uploads": ""})
        upload = _text(ElementTree.fromstring(answer.body), "UploadId")
        if not upload:  # an error document at 200: parts and the abort would name no upload
            code, message, _r = _error_of(answer.status, answer.body)
            raise S3Error(answer.status, code, message)
        offsets = range(0, size, chunksize)

        def part(number: int, offset: int) -> str:
            with open(lpath, "rb") as handle:  # one part in memory per worker
                handle.seek(offset)
                data = handle.read(min(chunksize, size - offset))
            query = {"partNumber": str(number), "uploadId": upload}
            return self._request("PUT", bucket, key, query=query, body=data).headers.get("etag", "")

        calls = [lambda n=n, o=o: part(n, o) for n, o in enumerate(offsets, 1)]
        try:
            etags: dict[int, str] = {}
            for outcome in as_finished(calls, workers):
                etags[outcome.index + 1] = outcome.get()
            done = ElementTree.Element("CompleteMultipartUpload")
            for number in sorted(etags):
                item = ElementTree.SubElement(done, "Part")
                ElementTree.SubElement(item, "PartNumber").text = str(number)
                ElementTree.SubElement(item, "ETag").text = etags[number]
            body = ElementTree.tostring(done)
            for attempt in range(1, self.attempts + 1):
                answer = self._request("POST", bucket, key, query={"uploadId": upload}, body=body)
                # S3 may answer 200 and still report a failure in the body; its
                # documentation says to retry that as a 500 would be.
                if _local(ElementTree.fromstring(answer.body).tag) != "Error":
                    break
                code, message, _r = _error_of(answer.status, answer.body)
                if code not in _RETRY_CODES or attempt == self.attempts:
                    raise S3Error(answer.status, code, message)
                self._pause(attempt)
        except BaseException:
            # The upload's failure is what matters (and S3 can expire the parts).
            with contextlib.suppress(OSError):
                self._request("DELETE", bucket, key, query={"uploadId": upload})
            raise

    def rm(self, path: str | list[str], recursive: bool = False, **_: Any) -> None:
        """Delete objects, up to 1000 per DeleteObjects request; absent keys are no error."""
        by_bucket: dict[str, list[str]] = {}
        for item in [path] if isinstance(path, str) else path:
            bucket, key, _v = self.split_path(item)
            by_bucket.setdefault(bucket, []).append(key)
        batches = [
            (bucket, keys[i : i + _MAX_DELETE])
            for bucket, keys in by_bucket.items()
            for i in range(0, len(keys), _MAX_DELETE)
        ]
        calls = [lambda b=b, k=k: self._delete(b, k) for b, k in batches]
        for outcome in as_finished(calls, _WORKERS):
            outcome.get()

    def _delete(self, bucket: str, keys: list[str]) -> None:
        request = ElementTree.Element("Delete")
        ElementTree.SubElement(request, "Quiet").text = "true"
        for key in keys:
            ElementTree.SubElement(ElementTree.SubElement(request, "Object"), "Key").text = key
        body = ElementTree.tostring(request)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        answer = self._request(
            "POST", bucket, "", query={"delete": ""}, body=body, headers={"content-md5": md5}
        )
        root = ElementTree.fromstring(answer.body)
        # A 200 may carry one <Error> for the whole request: then nothing was deleted.
        if _local(root.tag) != "DeleteResult":
            code, message, _r = _error_of(answer.status, answer.body)
            raise S3Error(answer.status, code, message)
        for error in _children(root, "Error"):
            code = _text(error, "Code")
            if code != "NoSuchKey":
                raise S3Error(answer.status, code, _text(error, "Message"))

    # -- requests -----------------------------------------------------------------
    def _request(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | FileBody = b"",
        headers: Mapping[str, str] | None = None,
        into: str | None = None,
    ) -> Answer:
        """Send one request, retried and redirected (see the module doc); raise on an error."""
        payload_sha256 = body.sha256() if isinstance(body, FileBody) else (
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        )  # fmt: skip
        attempt = 0
        redirected = False
        while True:
            try:
                answer = self._send(method, bucket, key, query or {}, body, payload_sha256,
                                    headers or {}, into)  # fmt: skip
            except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                attempt += 1
                if attempt >= self.attempts:
                    if isinstance(exc, OSError):
                        raise
                    # http.client's own (IncompleteRead...): an answer cut short.
                    raise ConnectionResetError(f"incomplete answer: {type(exc).__name__}") from exc
                self._pause(attempt)
                continue
            if answer.status < 300 or (answer.status == 304):
                return answer
            code, message, region = _error_of(answer.status, answer.body)
            region = answer.headers.get("x-amz-bucket-region") or region
            wrong_region = answer.status in (301, 307, 400) and region and (
                answer.status != 400 or code == "AuthorizationHeaderMalformed"
            )  # fmt: skip
            if wrong_region and not redirected and region != self._region(bucket):
                with self._guard:
                    self._regions[bucket] = region
                redirected = True
                continue
            attempt += 1
            if (answer.status in _RETRY_STATUS or code in _RETRY_CODES) and attempt < self.attempts:
                self._pause(attempt)
                continue
            if answer.status == 404:
                raise S3NotFound(answer.status, code, message)
            if answer.status == 403:
                raise S3Denied(answer.status, code, message)
            raise S3Error(answer.status, code, message)

    @staticmethod
    def _pause(attempt: int) -> None:
        time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))

    def _region(self, bucket: str) -> str:
        return self._regions.get(bucket, self.settings.region)

    def _target(self, bucket: str, key: str) -> tuple[str, str, int | None, str]:
        """(scheme, host, port, path) of ``bucket/key`` by the endpoint and addressing style."""
        settings = self.settings
        if settings.endpoint:
            parts = urlsplit(settings.endpoint)
            scheme, host, port = parts.scheme or "https", parts.hostname or "", parts.port
            base = parts.path.rstrip("/")
            style = settings.addressing or "path"
        else:
            region = self._region(bucket)
            scheme = "https" if settings.use_ssl else "http"
            host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
            port, base = None, ""
            style = settings.addressing or ("virtual" if _dns_compatible(bucket) else "path")
        if style == "virtual" and bucket:
            return scheme, f"{bucket}.{host}", port, f"{base}/{key}"
        return scheme, host, port, f"{base}/{bucket}/{key}" if key else f"{base}/{bucket}"

    def _send(
        self,
        method: str,
        bucket: str,
        key: str,
        query: Mapping[str, str],
        body: bytes | FileBody,
        payload_sha256: str,
        extra: Mapping[str, str],
        into: str | None,
    ) -> Answer:
        scheme, host, port, path = self._target(bucket, key)
        canonical_path = encode_path(path)
        canonical_query = encode_query(query)
        length = body.length if isinstance(body, FileBody) else len(body)
        default_port = 443 if scheme == "https" else 80
        headers = {
            "host": host if port in (None, default_port) else f"{host}:{port}",
            "x-amz-content-sha256": payload_sha256,
            "x-amz-date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
            **extra,
        }
        credentials = self.settings.credentials
        if credentials is not None:
            if credentials.token:
                headers["x-amz-security-token"] = credentials.token
            region = self._region(bucket)
            headers["authorization"] = authorization(
                credentials=credentials,
                key=self._signing_key(headers["x-amz-date"][:8], region),
                method=method,
                path=canonical_path,
                query=canonical_query,
                headers=headers,
                payload_sha256=payload_sha256,
                amz_date=headers["x-amz-date"],
                region=region,
            )
        if length or method in ("PUT", "POST"):
            headers["content-length"] = str(length)
        url = f"{canonical_path}?{canonical_query}" if canonical_query else canonical_path
        return self._pool.exchange((scheme, host, port), method, url, headers, body, into)

    def _signing_key(self, date: str, region: str) -> bytes:
        cached = self._keys.get((date, region))
        if cached is None:
            assert self.settings.credentials is not None
            cached = signing_key(self.settings.credentials.secret, date, region)
            with self._guard:
                self._keys[(date, region)] = cached
        return cached

    def close(self) -> None:
        """Close every idle connection (also done when the filesystem is collected)."""
        self._pool.close()


def _timestamp(text: str) -> float:
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def filesystem(options: Mapping[str, Any], budget: float) -> tuple[S3FastFileSystem, list[str]]:
    """The fast client for ``options`` and the secrets it resolved (for scrubbing messages).

    Raises :class:`flowenv.store.s3_settings.Fallback` when s3fs must serve them.
    """
    from flowenv.store.s3_settings import resolve

    settings = resolve(options)
    credentials = settings.credentials
    secrets = [s for s in (credentials.secret, credentials.token) if s] if credentials else []
    return S3FastFileSystem(settings, budget), secrets


__all__ = ["S3Error", "S3FastFileSystem", "filesystem"]
