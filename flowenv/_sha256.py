"""sha256 by CPython's built-in implementation, without loading OpenSSL.

``hashlib`` loads libcrypto (``_hashlib``), a few ms of every start-up that
only needs a digest or two (``lock --check``'s fast path, the input hashes a
``lock`` compares). The digest is the same as ``hashlib.sha256``'s; only the
module differs (``_sha2`` on 3.12+, ``_sha256`` on 3.11, hashlib where neither
exists). Standard library only, like the fast path that imports it.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: see flowenv.lockfiles.freshness.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _factory() -> Callable[[bytes], Any]:
    for name in ("_sha2", "_sha256"):
        try:
            return __import__(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


_SHA256 = _factory()


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 lowercase hex digits (what ``hashlib`` would give)."""
    digest: str = _SHA256(data).hexdigest()
    return digest
