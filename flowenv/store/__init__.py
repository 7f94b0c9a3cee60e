"""Stores addressed by URL: a local folder (the default), s3://, gs://, az:// / abfs://.

Storage options come from the standard places, in increasing precedence: the
backend's own (AWS profiles and ``AWS_*`` variables, Google application
default credentials, ``AZURE_STORAGE_*`` variables), fsspec's configuration
(``FSSPEC_S3='{"key": …}'`` and friends, ``~/.config/fsspec``), the project's
``[project.store-options]`` table, then options passed in code. None of them
is ever printed.

``s3://`` is served by flowenv's own S3 client when it understands the
configuration, by s3fs otherwise (:mod:`flowenv.store.s3_settings` has the rule).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flowenv.store.registry import LOCAL, S3_FAST, backend_for, scheme_of
from flowenv.store.store import Store

__all__ = ["STORE_ENV", "Store", "open_store", "store_url_for"]

#: Store URL used when neither ``--store`` nor a configuration names one (executors).
STORE_ENV = "FLOWENV_STORE"


def store_url_for(explicit: str | None, configured: str | None, base: Path) -> str:
    """The store: explicit, else $FLOWENV_STORE, else the configuration's (paths absolute)."""
    url = explicit or os.environ.get(STORE_ENV) or configured
    if not url:
        from flowenv.errors import UsageError

        raise UsageError(f"no store: pass --store URL or set {STORE_ENV}")
    if scheme_of(url) == "file":
        path = _file_url_path(url) if url.lower().startswith("file://") else Path(url)
        # A relative store in flowenv.toml is relative to the project, on the CLI to the cwd.
        return str((base / path).resolve() if not path.is_absolute() else path)
    return url


def _file_url_path(url: str) -> Path:
    """The path of a ``file://`` URL; ``file://../x`` (no host, relative) stays relative.

    A URL parser reads ``file://../../x`` as host ".." and path "/../x", i.e.
    "/x": a relative path written as a URL would silently become an absolute one.
    """
    rest = url[len("file://") :]
    if rest.lower().startswith("localhost/"):
        rest = rest[len("localhost") :]
    return Path(unquote(urlsplit("file://" + rest).path if rest.startswith("/") else rest))


def open_store(url: str, options: Mapping[str, Any] | None = None) -> Store:
    """A :class:`Store` for ``url`` (as returned by :func:`store_url_for`)."""
    from flowenv.store.timeouts import default_options, merge_defaults, store_timeout, tune

    budget = store_timeout()
    opts = dict(options or {})
    if scheme_of(url) == "s3":
        fast = _fast_s3(url, opts, budget)
        if fast is not None:
            return fast
    backend = backend_for(url)
    if backend is LOCAL:
        root = str(Path(url).resolve()).replace(os.sep, "/")
        return Store(url, backend, None, root, opts, timeout=budget)
    import fsspec

    cls = fsspec.get_filesystem_class(backend.protocol)
    # fsspec would hand back a cached instance made with other timeouts.
    full = merge_defaults(default_options(backend.protocol, budget), opts)
    fs = _make(cls, full, url)
    tune(fs, backend.protocol)
    root = cls._strip_protocol(url).rstrip("/")
    return Store(url, backend, fs, root, opts, timeout=budget)


def _fast_s3(url: str, options: dict[str, Any], budget: float) -> Store | None:
    """flowenv's S3 client when it can serve ``options`` (and is not switched off), else None."""
    from flowenv.store.s3_settings import Fallback, choice

    chosen = choice()
    if chosen == "s3fs":
        return None
    from flowenv.store.s3_fast import S3FastFileSystem, filesystem

    try:
        fs, secrets = filesystem(options, budget)
    except Fallback as why:
        if chosen == "fast":
            from flowenv.errors import UsageError
            from flowenv.store.s3_settings import BACKEND_ENV

            raise UsageError(f"{BACKEND_ENV}=fast cannot serve this store: {why}") from None
        return None
    root = S3FastFileSystem._strip_protocol(url)
    # Secrets found in the environment or AWS files are scrubbed from messages too.
    scrub = {**options, "_resolved": dict(enumerate(secrets))}
    return Store(url, S3_FAST, fs, root, scrub, timeout=budget)


def _make(cls: Any, options: dict[str, Any], url: str) -> Any:
    try:
        return cls(**options)
    except TypeError as exc:
        from flowenv.errors import UsageError

        # Only the option *names* are safe to show.
        raise UsageError(
            f"store {scheme_of(url)}:// rejected its options ({', '.join(sorted(options))}): "
            f"{str(exc).split(':')[0]}"
        ) from None
