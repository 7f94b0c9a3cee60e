"""A PEP 503 index and its wheels served over HTTP on 127.0.0.1, optionally behind basic auth.

Used to prove that credentials reach uv (from the URL or a netrc file) and
never reach a lock file or an error message.
"""

from __future__ import annotations

import base64
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.wheels import build_simple_index


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, expected_auth: str | None, **kwargs: Any) -> None:
        self.expected_auth = expected_auth
        super().__init__(*args, **kwargs)

    def _authorized(self) -> bool:
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


@contextmanager
def serve_index(
    wheels: Iterable[Path], root: Path, credentials: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve ``wheels`` as ``<url>/simple/`` (+ ``<url>/files/``); yields ``http://127.0.0.1:PORT``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    wheels = [Path(shutil.copy2(w, files / w.name)) for w in wheels]
    expected = None
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        expected = f"Basic {token}"
    handler = partial(_Handler, directory=str(root), expected_auth=expected)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    build_simple_index(wheels, root, files_url=f"{url}/files")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
