"""A store that stops answering, or is not there: one clear message, exit 4, within the budget.

The frozen server accepts connections and never answers (as a hung S3
endpoint does); the dead one refuses them. ``FLOWENV_STORE_TIMEOUT`` is set
low so the tests are quick; the default (60 s) is the same code path.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from flowenv.cli import main
from tests.support.stores import free_port, run_flowenv


@pytest.fixture
def frozen_endpoint() -> Iterator[str]:
    """An HTTP endpoint on 127.0.0.1 that accepts every connection and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _options(endpoint: str) -> dict[str, object]:
    return {"key": "k", "secret": "s3cr3t-value", "client_kwargs": {"endpoint_url": endpoint}}


@pytest.mark.parametrize("client", ["fast", "s3fs"])
@pytest.mark.parametrize("kind", ["frozen", "dead"])
def test_sync_and_hydrate_give_up_with_one_message(
    kind, client, make_project, frozen_endpoint, flowenv_cache, tmp_path
) -> None:
    endpoint = frozen_endpoint if kind == "frozen" else f"http://127.0.0.1:{free_port()}"
    options = _options(endpoint)
    extra = (
        'store = "s3://bucket/x"\n'
        f'store-options = {{ key = "k", secret = "s3cr3t-value", '
        f'client_kwargs = {{ endpoint_url = "{endpoint}" }} }}\n'
    )
    # Many artifacts: a dead store must still give one message, not one per artifact.
    body = '[base]\npython = "3.11"\npypi.packages = { delta = "0.5", epsilon = "3.1" }\n'
    root = make_project(body, project_extra=extra)
    assert main(["-C", str(root), "lock"]) == 0
    env = {
        **os.environ,
        "FLOWENV_STORE_TIMEOUT": "4",
        "FLOWENV_CACHE_DIR": str(flowenv_cache),
        "FLOWENV_S3_BACKEND": client,  # flowenv's own S3 client, and s3fs (the fallback)
    }

    synced = run_flowenv("-C", str(root), "sync", env=env)
    hydrated = run_flowenv(
        "hydrate", "base", "--store", "s3://bucket/x", "--project", "proj",
        env={**env, "FSSPEC_S3": json.dumps(options)}, cwd=tmp_path,
    )  # fmt: skip
    for result in (synced, hydrated):
        assert result.returncode == 4, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("flowenv: error: s3://bucket/x: the store did not answer (")
        assert lines[0].endswith(
            "gave up after 4 s of waiting (set FLOWENV_STORE_TIMEOUT to change it)"
        )
        assert "s3cr3t-value" not in result.stderr
        assert "Traceback" not in result.stderr


def test_malformed_timeout_is_a_usage_error(make_project, flowenv_cache) -> None:
    root = make_project('[base]\npython = "3.11"\n')
    env = {**os.environ, "FLOWENV_STORE_TIMEOUT": "soon"}
    result = run_flowenv("-C", str(root), "store", "ls", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "flowenv: error: FLOWENV_STORE_TIMEOUT='soon': expected a number of seconds "
        "between 0 and 86400\n"
    )


def test_frozen_gcs_endpoint_fails_hydrate_once(frozen_endpoint, flowenv_cache, tmp_path) -> None:
    """gcsfs retries six times with back-off whatever it is told; its traceback log stays quiet."""
    options = {"endpoint_url": frozen_endpoint, "token": "anon", "project": "test"}
    env = {
        **os.environ,
        "FLOWENV_STORE_TIMEOUT": "1",
        "FSSPEC_GS": json.dumps(options),
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    result = run_flowenv(
        "hydrate", "base", "--store", "gs://bucket/x", "--project", "proj", env=env, cwd=tmp_path
    )
    assert result.returncode == 4
    assert result.stderr.startswith("flowenv: error: gs://bucket/x: the store did not answer (")
    assert result.stderr.count("\n") == 1, result.stderr


AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _azure_connection(endpoint: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/devstoreaccount1;"
    )


def test_azure_retries_are_bounded_by_the_budget(frozen_endpoint) -> None:
    """adlfs hands the SDK no retry settings: left alone, its policy waited 15, 18 and 24 s
    between tries (93 s against a frozen endpoint with an 8 s budget)."""
    from flowenv.store import open_store
    from flowenv.store.timeouts import ATTEMPTS

    store = open_store("az://bucket/x", {"connection_string": _azure_connection(frozen_endpoint)})
    policies = store.fs.service_client._pipeline._impl_policies
    retry = [p for p in policies if hasattr(p, "total_retries")]
    assert len(retry) == 1
    assert (retry[0].total_retries, retry[0].read_retries, retry[0].connect_retries) == (
        ATTEMPTS - 1,
        ATTEMPTS - 1,
        ATTEMPTS - 1,
    )
    assert retry[0].initial_backoff == 1.0
    # Every blob client adlfs makes shares these policies.
    container = store.fs.service_client.get_container_client("bucket")
    assert retry[0] in container._pipeline._impl_policies


def test_frozen_azure_endpoint_fails_hydrate_once(frozen_endpoint, flowenv_cache, tmp_path) -> None:
    env = {
        **os.environ,
        "FLOWENV_STORE_TIMEOUT": "1",
        "FSSPEC_AZ": json.dumps({"connection_string": _azure_connection(frozen_endpoint)}),
    }
    result = run_flowenv(
        "hydrate", "base", "--store", "az://bucket/x", "--project", "proj", env=env, cwd=tmp_path
    )
    assert result.returncode == 4
    assert result.stderr.startswith("flowenv: error: az://bucket/x: the store did not answer (")
    assert result.stderr.count("\n") == 1, result.stderr
