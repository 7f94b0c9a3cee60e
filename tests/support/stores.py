"""Real object-store servers on 127.0.0.1 for tests, and one fixture that yields each backend.

* S3: moto's server, in a thread (``moto_server``) or as a separate process
  (``moto_process``, for tests that kill -9 a client or measure).
* GCS: gcp-storage-emulator, in-process, in memory.
* Azure Blob: Azurite (npm). Found via ``$FLOWENV_AZURITE`` (the
  ``azurite-blob`` executable or an npm prefix), ``.ci/node`` (where CI installs
  it) or ``PATH``; tests using it are skipped, with the reason, only when it is
  not installed.

``store_target`` is parametrized over the local folder and the three servers,
and gives each test its own fresh bucket/container, so the conformance tests
run unchanged on every backend. See ../shared/STORE-TESTING.md for the
measured pitfalls handled here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

# gcsfs probes a real GCS bucket over gRPC/TLS (retrying for 60 s) unless told
# not to, and reads the variable when first imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

REPO = Path(__file__).resolve().parents[2]
AZURITE_ENV = "FLOWENV_AZURITE"
#: Azurite's documented, public development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
#: "s3" is flowenv's own S3 client; "s3fs" the same moto server through s3fs (the fallback).
BACKENDS = ("file", "s3", "s3fs", "gcs", "azure")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Block until ``port`` accepts connections (or the server process died)."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@attrs.frozen(kw_only=True)
class StoreTarget:
    """One empty store: its URL, the storage options to reach it, env vars for subprocesses."""

    kind: str
    url: str
    options: dict[str, Any] = attrs.field(factory=dict)
    #: Environment a *separate process* needs to reach the store without a config file.
    env: dict[str, str] = attrs.field(factory=dict)

    def project_lines(self) -> str:
        """``[project]`` keys naming this store (for ``make_project(project_extra=...)``)."""
        lines = f"store = {json.dumps(self.url)}\n"
        if self.options:
            lines += f"store-options = {_inline(self.options)}\n"
        return lines

    def filesystem(self) -> Any:
        """An fsspec filesystem on the same store, for a test to inspect or tamper with it."""
        import fsspec

        if self.kind == "file":
            return fsspec.filesystem("file")
        protocol = {"s3": "s3", "s3fs": "s3", "gcs": "gs", "azure": "abfs"}[self.kind]
        return fsspec.filesystem(protocol, skip_instance_cache=True, **self.options)

    @property
    def root(self) -> str:
        """The store's root as the filesystem names paths."""
        return self.url.split("://", 1)[1] if "://" in self.url else self.url


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


# -- S3 ---------------------------------------------------------------------------
def _s3_options(endpoint: str) -> dict[str, Any]:
    # Not region_name: moto then refuses bucket creation (InvalidLocationConstraint).
    return {
        "key": "testing",
        "secret": "testing-secret",
        "client_kwargs": {"endpoint_url": endpoint},
    }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 in a thread of this process; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def moto_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 as a separate process (no GIL shared with the client); yields its endpoint."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    try:
        wait_listening(port, process, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()


def s3_target(endpoint: str, client: str | None = None) -> StoreTarget:
    """A fresh bucket; ``client`` ("fast" or "s3fs") forces that S3 client (FLOWENV_S3_BACKEND)."""
    import s3fs

    options = _s3_options(endpoint)
    bucket = f"flowenv-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir(bucket)
    env = {"FSSPEC_S3": json.dumps(options)}
    if client:
        env["FLOWENV_S3_BACKEND"] = client
    return StoreTarget(
        kind="s3fs" if client == "s3fs" else "s3",
        url=f"s3://{bucket}/store",
        options=options,
        env=env,
    )


# -- GCS --------------------------------------------------------------------------
#: Runs the emulator in its own process: its request errors (clients closing
#: connections) go to a log file, not into the tests' captured stderr, and it
#: does not compete with the client for this process's GIL.
_GCS_EMULATOR = """
import http.server, sys
# The emulator's listen backlog of 5 makes gcsfs's ~100 parallel connections crawl.
http.server.HTTPServer.request_queue_size = 1024
from gcp_storage_emulator.server import create_server
create_server("127.0.0.1", int(sys.argv[1]), in_memory=True).run()
"""


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator in memory, as a process; yields its endpoint URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("gcs") / "gcs.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _GCS_EMULATOR, str(port)], stdout=log, stderr=log
    )
    try:
        wait_listening(port, process, "gcp-storage-emulator")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()


def gcs_target(endpoint: str) -> StoreTarget:
    import gcsfs

    options = {"endpoint_url": endpoint, "token": "anon", "project": "test"}
    bucket = f"flowenv-{uuid.uuid4().hex[:12]}"
    gcsfs.GCSFileSystem(skip_instance_cache=True, **options).mkdir(bucket)
    return StoreTarget(
        kind="gcs",
        url=f"gs://{bucket}/store",
        options=options,
        env={"FSSPEC_GS": json.dumps(options), "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"},
    )


# -- Azure ------------------------------------------------------------------------
def find_azurite() -> Path | None:
    """The ``azurite-blob`` executable: $FLOWENV_AZURITE, .ci/node (CI), then PATH."""
    candidates: list[Path] = []
    configured = os.environ.get(AZURITE_ENV)
    if configured:
        path = Path(configured)
        candidates += [path, path / "node_modules/.bin/azurite-blob"]
    candidates.append(REPO / ".ci/node/node_modules/.bin/azurite-blob")
    on_path = shutil.which("azurite-blob")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service as a process; yields the account's blob endpoint."""
    binary = find_azurite()
    if binary is None:
        pytest.skip(
            "Azurite is not installed: `npm install --prefix .ci/node azurite` "
            f"(or set {AZURITE_ENV} to its azurite-blob executable)"
        )
    port = free_port()
    data = tmp_path_factory.mktemp("azurite")
    log = (data / "azurite.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        wait_listening(port, process, "azurite-blob")
        yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    finally:
        stop(process)
        log.close()


def azure_target(endpoint: str) -> StoreTarget:
    import adlfs

    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint};"
    )
    options = {"connection_string": connection}
    container = f"flowenv-{uuid.uuid4().hex[:12]}"
    adlfs.AzureBlobFileSystem(skip_instance_cache=True, **options).mkdir(container)
    return StoreTarget(
        kind="azure",
        url=f"az://{container}/store",
        options=options,
        env={"FSSPEC_AZ": json.dumps(options)},
    )


# -- every backend ----------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def store_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> StoreTarget:
    """A fresh, empty store on each backend in turn (the conformance tests' parameter)."""
    kind = request.param
    if kind == "file":
        return StoreTarget(kind="file", url=str(tmp_path / "store"))
    if kind in ("s3", "s3fs"):
        # Forced both ways, so that neither client is tested by accident through the other.
        client = "fast" if kind == "s3" else "s3fs"
        monkeypatch.setenv("FLOWENV_S3_BACKEND", client)
        return s3_target(request.getfixturevalue("moto_server"), client)
    if kind == "gcs":
        return gcs_target(request.getfixturevalue("gcs_server"))
    return azure_target(request.getfixturevalue("azurite_server"))


@pytest.fixture
def flowenv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private FLOWENV_CACHE_DIR: tests never read or fill the user's cache."""
    cache = tmp_path / "flowenv-cache"
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(cache))
    return cache


# -- a project with many artifacts (kill -9 test, benchmark) --------------------------
def many_wheels_project(
    root: Path, count: int, size: int, store: StoreTarget, seed: int = 0
) -> Path:
    """A project requiring ``count`` wheels of about ``size`` incompressible bytes each."""
    import random

    from tests.support.wheels import WheelSpec, build_wheel

    rng = random.Random(seed)
    wheelhouse = root / "wheelhouse"
    for i in range(count):
        name = f"bulk{i:04d}"
        # base64-like text of random bytes: deflate cannot shrink it much.
        payload = rng.randbytes(size).hex()[:size]
        build_wheel(
            WheelSpec(name=name, version="1.0", files={f"{name}/data.py": f"DATA = {payload!r}\n"}),
            wheelhouse,
        )
    return _wheels_project(root / "project", "bulk", wheelhouse, root / "index", store)


def large_wheels_project(root: Path, count: int, megabytes: int, store: StoreTarget) -> Path:
    """A project whose lock names ``count`` local wheels of ``megabytes`` random bytes each."""
    from tests.support.wheels import WheelSpec, build_wheel

    wheelhouse = root / "big-wheelhouse"
    for i in range(count):
        name = f"big{i}"
        spec = WheelSpec(name=name, version="1.0", files={f"{name}/__init__.py": ""})
        path = build_wheel(spec, wheelhouse)
        # A stored (uncompressed) random member makes the wheel as large as asked.
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as wheel:
            wheel.writestr(f"{name}/blob.bin", os.urandom(megabytes * 1_000_000))
    return _wheels_project(root / "big-project", "big", wheelhouse, root / "big-index", store)


def _wheels_project(
    project: Path, name: str, wheelhouse: Path, index_dir: Path, store: StoreTarget
) -> Path:
    """A linux-64 project requiring every wheel of ``wheelhouse`` (at 1.0) from an index of them."""
    from tests.support.wheels import build_simple_index

    wheels = sorted(wheelhouse.glob("*.whl"))
    index = build_simple_index(wheels, index_dir)
    project.mkdir(parents=True, exist_ok=True)
    packages = ", ".join(f'{w.name.split("-")[0]} = "1.0"' for w in wheels)
    (project / "flowenv.toml").write_text(
        "[project]\n"
        f'name = "{name}"\n'
        'platforms = ["linux-64"]\n'
        f"{store.project_lines()}"
        f'pypi.index-url = "{index.as_uri()}"\n\n'
        "[base]\n"
        'python = "3.11"\n'
        f"pypi.packages = {{ {packages} }}\n"
    )
    return project


def peak_rss_kib(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``args`` under ``/usr/bin/time``: the result and the process's peak RSS in KiB."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "rss"
        result = subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M", "-o", str(out), *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        rss = int(out.read_text().split()[-1]) if out.is_file() and out.read_text() else 0
    return result, rss


def run_flowenv(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m flowenv ARGS`` as a separate process (an executor, or a second client)."""
    return subprocess.run(
        [sys.executable, "-m", "flowenv", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
