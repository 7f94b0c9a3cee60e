"""A folder (a PEP 503 index and its wheels, a conda channel) served over HTTP on 127.0.0.1.

Optionally behind basic auth or a ``?token=`` query parameter: used to prove
that credentials reach uv, rattler and sync's downloads (from the URL, a
netrc file or uv's environment variables) and never a lock file or an error
message. A conda channel under ``t/<token>/`` needs anaconda.org's token path.
"""

from __future__ import annotations

import base64
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.wheels import build_simple_index


class _Handler(SimpleHTTPRequestHandler):
    def __init__(
        self, *args: Any, expected_auth: str | None, query_token: str | None, **kwargs: Any
    ) -> None:
        self.expected_auth = expected_auth
        self.query_token = query_token
        super().__init__(*args, **kwargs)

    def _authorized(self) -> bool:
        if self.query_token is not None:
            query = parse_qs(urlsplit(self.path).query)
            if query.get("token") != [self.query_token]:
                self.send_error(403)
                return False
        if self.expected_auth is None or self.headers.get("Authorization") == self.expected_auth:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="flowenv-tests"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self._authorized():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._authorized():
            super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up early (rattler does) is not the test's business


@contextmanager
def serve_directory(
    root: Path,
    credentials: tuple[str, str] | None = None,
    query_token: str | None = None,
) -> Iterator[str]:
    """Serve ``root`` (basic auth and/or ``?token=`` if given); yields ``http://127.0.0.1:PORT``."""
    expected = None
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        expected = f"Basic {token}"
    handler = partial(
        _Handler, directory=str(root), expected_auth=expected, query_token=query_token
    )
    with serve_handler(handler) as url:
        yield url


@contextmanager
def serve_handler(handler: Callable[..., BaseRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 in a thread; yields ``http://127.0.0.1:PORT``."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_index(
    wheels: Iterable[Path], root: Path, credentials: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve ``wheels`` as ``<url>/simple/`` (+ ``<url>/files/``); yields ``http://127.0.0.1:PORT``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    wheels = [Path(shutil.copy2(w, files / w.name)) for w in wheels]
    with serve_directory(root, credentials) as url:
        build_simple_index(wheels, root, files_url=f"{url}/files")
        yield url
