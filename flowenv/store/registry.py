"""Store URL schemes -> fsspec backends, imported lazily, with what to install when one is missing.

Like fsspec's own registry, the table names modules rather than importing
them: ``flowenv lock --check`` and every command that never touches a store
must not pay for importing s3fs, gcsfs or adlfs.
"""

from __future__ import annotations

import importlib

import attrs

from flowenv.errors import UsageError


@attrs.frozen(kw_only=True)
class Backend:
    """One fsspec backend: the protocol fsspec knows it by and the module that implements it."""

    protocol: str
    module: str
    install_hint: str


LOCAL = Backend(protocol="file", module="fsspec.implementations.local", install_hint="")
#: flowenv's own S3 client, used for ``s3://`` when it understands the configuration
#: (see :mod:`flowenv.store.s3_settings`); s3fs (``BACKENDS["s3"]``) serves the rest.
S3_FAST = Backend(protocol="s3", module="flowenv.store.s3_fast", install_hint="")

#: URL scheme -> backend. ``file`` (and a plain path) is the embedded default.
BACKENDS: dict[str, Backend] = {
    "file": LOCAL,
    "s3": Backend(protocol="s3", module="s3fs", install_hint="pip install 'flowenv[s3]'"),
    "gs": Backend(protocol="gs", module="gcsfs", install_hint="pip install 'flowenv[gcs]'"),
    "gcs": Backend(protocol="gcs", module="gcsfs", install_hint="pip install 'flowenv[gcs]'"),
    "az": Backend(protocol="az", module="adlfs", install_hint="pip install 'flowenv[azure]'"),
    "abfs": Backend(protocol="abfs", module="adlfs", install_hint="pip install 'flowenv[azure]'"),
    "abfss": Backend(protocol="abfss", module="adlfs", install_hint="pip install 'flowenv[azure]'"),
}


def scheme_of(url: str) -> str:
    """``s3://b/p`` -> ``s3``; a plain path (also ``C:\\x`` on Windows) -> ``file``."""
    scheme, sep, _ = url.partition("://")
    if not sep or len(scheme) == 1:
        return "file"
    return scheme.lower()


def backend_for(url: str) -> Backend:
    """The backend serving ``url``, its module imported; a usage error naming what to install."""
    scheme = scheme_of(url)
    backend = BACKENDS.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise UsageError(
            f"unsupported store URL scheme '{scheme}://' in {url!r}; supported: {known} or a path"
        )
    if backend is LOCAL:
        return backend  # served with os/shutil, see flowenv.store.store
    try:
        importlib.import_module(backend.module)
    except ImportError:
        raise UsageError(
            f"store {scheme}:// needs the '{backend.module}' package: {backend.install_hint}"
        ) from None
    return backend
