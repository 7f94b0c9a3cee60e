"""AWS Signature Version 4 for S3 requests: pure functions over method, URL parts and headers.

S3's variant of SigV4: the canonical URI is the path URI-encoded once (no
normalisation, no double encoding), and the payload's SHA-256 travels in the
``x-amz-content-sha256`` header, which is signed like any other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

import attrs

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Characters SigV4 leaves unencoded ("unreserved" in RFC 3986).
_UNRESERVED = "-_.~"


@attrs.frozen(kw_only=True, repr=False)
class Credentials:
    """Static credentials; ``repr`` shows only the key id's first characters."""

    key: str
    secret: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(key={self.key[:4]}…)"


def encode_path(path: str) -> str:
    """``/bucket/a b+c`` -> ``/bucket/a%20b%2Bc`` (slashes kept): the canonical URI."""
    return quote(path, safe="/" + _UNRESERVED)


def encode_query(params: Mapping[str, str]) -> str:
    """The canonical query string: names sorted, names and values encoded (``/`` too)."""
    return "&".join(
        f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}"
        for k, v in sorted(params.items())
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """The day's key for ``region``: four chained HMACs starting from the secret."""
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def authorization(
    *,
    credentials: Credentials,
    key: bytes,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    amz_date: str,
    region: str,
) -> str:
    """The ``Authorization`` header value signing every header in ``headers``.

    ``path`` and ``query`` are already canonical (:func:`encode_path`,
    :func:`encode_query`); header names must be lower case; ``key`` is
    :func:`signing_key` for ``amz_date``'s day and ``region``.
    """
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    signed = ";".join(names)
    canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_sha256}"
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={credentials.key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
