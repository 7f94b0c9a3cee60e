"""flowenv's S3 client against a hostile or broken server on 127.0.0.1.

Each test's server writes raw HTTP answers, so it can lie about lengths, cut
bodies short, loop a listing forever or answer 200 with an error document:
what a misbehaving proxy or S3-compatible server does. The client must
neither hang, nor loop, nor take a broken answer for a good one.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowenv.store.s3_fast import S3Error, S3FastFileSystem
from flowenv.store.s3_http import FileBody
from flowenv.store.s3_settings import S3Settings
from flowenv.store.s3_signing import Credentials

#: (request line, headers) -> raw bytes to write back, at once or in blocks (b"" closes
#: without a word).
Script = Callable[[str, dict[str, str]], "bytes | Iterator[bytes]"]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: RawServer = self.server  # type: ignore[assignment]
        server.connections += 1
        while True:
            line = self.rfile.readline().decode("latin-1").strip()
            if not line:
                return
            headers: dict[str, str] = {}
            while (header := self.rfile.readline().decode("latin-1").strip()) != "":
                name, _, value = header.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.rfile.read(length)) < length:
                return  # the client stopped mid-body: no whole request
            server.seen.append(line)
            answer = server.script(line, headers)
            if not answer:
                return
            try:
                for block in [answer] if isinstance(answer, bytes) else answer:
                    self.wfile.write(block)
                    self.wfile.flush()
                    server.sent += len(block)
            except OSError:
                return  # the client hung up mid-answer
            if server.close_after:
                return


class RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []
        self.script: Script = lambda line, headers: b""
        self.close_after = False
        self.sent = 0
        self.connections = 0

    def client(self) -> S3FastFileSystem:
        settings = S3Settings(
            endpoint=f"http://127.0.0.1:{self.server_address[1]}",
            region="us-east-1",
            credentials=Credentials(key="AKID", secret="secret"),
        )
        return S3FastFileSystem(settings, budget=8.0)


@pytest.fixture
def raw() -> Iterator[RawServer]:
    server = RawServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def http_answer(status: int, body: bytes, *, length: int | None = None, extra: str = "") -> bytes:
    """A raw HTTP/1.1 answer; ``length`` is the Content-Length it claims (default: the truth)."""
    claimed = len(body) if length is None else length
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {claimed}\r\n{extra}\r\n"
    return head.encode() + body


def listing(keys: list[str], token: str = "") -> bytes:
    contents = "".join(
        f"<Contents><Key>{k}</Key><Size>1</Size><LastModified>2026-01-01T00:00:00.000Z"
        "</LastModified></Contents>"
        for k in keys
    )
    more = f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
    tail = more if token else "<IsTruncated>false</IsTruncated>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{contents}{tail}</ListBucketResult>"
    ).encode()


def test_a_listing_that_repeats_its_continuation_token_is_an_error(raw) -> None:
    """IsTruncated with the same token forever: refuse at the repeat, never loop."""
    raw.script = lambda line, headers: http_answer(200, listing(["p/a"], token="same"))
    with pytest.raises(S3Error) as caught:
        raw.client().find("bucket/p")
    assert "continuation token" in str(caught.value)
    assert len(raw.seen) == 2  # the first page, and the one that repeated the token


def test_a_listing_answered_200_with_an_error_document_is_an_error(raw) -> None:
    """A 200 whose body is no ListBucketResult (a proxy's error page) must not read as empty:
    gc would take the missing manifests for gone and collect the artifacts they name."""
    error = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
    pages = iter([http_answer(200, listing(["p/a"], token="t1")), http_answer(200, error)])
    raw.script = lambda line, headers: next(pages)
    with pytest.raises(S3Error) as caught:
        raw.client().find("bucket/p")
    assert str(caught.value) == "InternalError: try again (HTTP 200)"


def test_a_download_cut_short_is_not_kept(raw, tmp_path: Path) -> None:
    """Content-Length 100, 40 bytes, then the connection closes: retried, then an error."""
    raw.script = lambda line, headers: http_answer(200, b"x" * 40, length=100)
    raw.close_after = True
    target = tmp_path / "object"
    with pytest.raises(ConnectionError):
        raw.client().get_file("bucket/key", str(target))
    assert len(raw.seen) == 3  # every attempt was cut short


def test_a_download_cut_short_once_is_retried(raw, tmp_path: Path) -> None:
    answers = iter([http_answer(200, b"x" * 40, length=100), http_answer(200, b"y" * 100)])
    raw.script = lambda line, headers: next(answers)
    raw.close_after = True
    target = tmp_path / "object"
    raw.client().get_file("bucket/key", str(target))
    assert target.read_bytes() == b"y" * 100


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>\n<ListBucketResult><Contents><Key>&lol9;</Key></Contents></ListBucketResult>"
)


def test_an_entity_expansion_bomb_in_a_listing_is_refused(raw) -> None:
    """expat's amplification limit refuses the billion laughs (a parse error, not 3 GB)."""
    raw.script = lambda line, headers: http_answer(200, BILLION_LAUGHS)
    with pytest.raises(SyntaxError):  # xml.etree.ElementTree.ParseError
        raw.client().find("bucket/p")


def test_an_entity_expansion_bomb_in_an_error_body_is_only_its_status(raw) -> None:
    raw.script = lambda line, headers: http_answer(403, BILLION_LAUGHS)
    with pytest.raises(PermissionError) as caught:
        raw.client().cat_file("bucket/key")
    assert str(caught.value) == "Forbidden (HTTP 403)"


def test_an_external_entity_is_never_fetched(raw, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<Error><Code>AccessDenied</Code><Message>&x;</Message></Error>"
    ).encode()
    raw.script = lambda line, headers: http_answer(403, body)
    with pytest.raises(PermissionError) as caught:
        raw.client().cat_file("bucket/key")
    assert "TOP-SECRET" not in str(caught.value)


def test_a_redirect_to_another_host_is_not_followed(raw) -> None:
    """A 301/307 naming no region (a Location elsewhere) is an error: nothing goes there."""
    raw.script = lambda line, headers: http_answer(
        307, b"", extra="Location: http://203.0.113.9/steal\r\n"
    )
    with pytest.raises(S3Error) as caught:
        raw.client().cat_file("bucket/key")
    assert str(caught.value) == "TemporaryRedirect (HTTP 307)"
    assert len(raw.seen) == 1


def test_a_delete_answered_200_with_an_error_document_is_an_error(raw) -> None:
    """DeleteObjects answered 200 with a whole-request <Error>: nothing was deleted, say so."""
    error = b"<Error><Code>AccessDenied</Code><Message>no delete for you</Message></Error>"
    raw.script = lambda line, headers: http_answer(200, error)
    with pytest.raises(S3Error) as caught:
        raw.client().rm(["bucket/p/a", "bucket/p/b"])
    assert str(caught.value) == "AccessDenied: no delete for you (HTTP 200)"


def test_an_endless_error_body_is_not_read_to_its_end(raw) -> None:
    """A 500 claiming a terabyte and streaming it: the client reads a bounded head, hangs up."""
    huge = 64 << 20

    def endless(line: str, headers: dict[str, str]) -> Iterator[bytes]:
        yield b"HTTP/1.1 500 X\r\nContent-Length: %d\r\n\r\n" % (1 << 40)
        block = b"<Error><Code>InternalError</Code></Error>" + b" " * ((1 << 16) - 41)
        for _ in range(huge >> 16):
            yield block

    raw.script = endless
    with pytest.raises(S3Error) as caught:
        raw.client().cat_file("bucket/key")
    assert str(caught.value) == "InternalError (HTTP 500)"
    assert len(raw.seen) == 3  # retried as a 500 is
    assert raw.sent < huge  # no attempt was read to the end


def test_a_body_claiming_a_terabyte_is_not_allocated_at_once(raw) -> None:
    """A 200 whose Content-Length lies (1 TiB, then the connection closes): a cut-short
    answer, retried, then a reset connection; never a MemoryError."""
    raw.script = lambda line, headers: http_answer(200, b"tiny", length=1 << 40)
    raw.close_after = True
    with pytest.raises(ConnectionError):
        raw.client().cat_file("bucket/key")
    assert len(raw.seen) == 3


def test_an_error_answer_read_whole_keeps_its_connection(raw) -> None:
    """The bounded read of an error body still reuses the connection when it read it all."""
    answers = iter([http_answer(404, b"<Error><Code>NoSuchKey</Code></Error>"),
                    http_answer(200, b"there")])  # fmt: skip
    raw.script = lambda line, headers: next(answers)
    fs = raw.client()
    with pytest.raises(FileNotFoundError):
        fs.cat_file("bucket/gone")
    assert fs.cat_file("bucket/key") == b"there"
    where = ("http", "127.0.0.1", raw.server_address[1])
    assert len(fs._pool.idle(where)) == 1
    assert raw.connections == 1


def test_a_file_that_grew_since_it_was_measured_sends_only_the_measured_bytes(
    raw, tmp_path: Path
) -> None:
    """Bytes past Content-Length would be read by the server as the next request on the
    keep-alive connection, and its answer taken for the next request's."""
    source = tmp_path / "growing"
    source.write_bytes(b"hello" + b"GET /appended HTTP/1.1\r\n\r\n")
    raw.script = lambda line, headers: http_answer(200, b"")
    fs = raw.client()
    fs._request("PUT", "bucket", "key", body=FileBody(str(source), 0, 5))
    fs.cat_file("bucket/other")
    assert [line.split()[:2] for line in raw.seen] == [
        ["PUT", "/bucket/key"],
        ["GET", "/bucket/other"],
    ]


def test_a_file_that_shrank_since_it_was_measured_is_an_error_not_a_hang(
    raw, tmp_path: Path
) -> None:
    source = tmp_path / "shrinking"
    source.write_bytes(b"hello")
    raw.script = lambda line, headers: http_answer(200, b"")
    with pytest.raises(OSError, match="shrank while being uploaded"):
        raw.client()._request("PUT", "bucket", "key", body=FileBody(str(source), 0, 10))
    assert raw.seen == []  # the server never got a whole request
    # Shrunk after it was hashed: the send itself stops instead of leaving the server waiting.
    fs = raw.client()
    where = ("http", "127.0.0.1", raw.server_address[1])
    with pytest.raises(OSError, match="shrank while being uploaded"):
        fs._pool.exchange(where, "PUT", "/bucket/key", {"content-length": "10"},
                          FileBody(str(source), 0, 10))  # fmt: skip
    assert raw.seen == []


def test_listed_keys_outside_the_requested_prefix_are_not_taken(raw) -> None:
    """A server answering keys it was not asked for (another prefix, a leading slash): the
    store would take them for keys of its own, relative to its root."""
    raw.script = lambda line, headers: http_answer(
        200, listing(["p/a", "q/envs/x", "/p/abs", "pp/near", "p/sub/b"])
    )
    assert raw.client().find("bucket/p") == ["bucket/p/a", "bucket/p/sub/b"]


def test_a_refusal_is_one_line_without_secrets(raw) -> None:
    """A 403 echoing the credentials: the store's message names the code, never the secret."""
    from flowenv.errors import StoreError
    from flowenv.store import open_store

    body = (
        b"<Error><Code>AccessDenied</Code><Message>key AKIDSECRETKEY secret s3cr3t-value "
        b"token tok3n-value\nsecond line</Message></Error>"
    )
    raw.script = lambda line, headers: http_answer(403, body)
    endpoint = f"http://127.0.0.1:{raw.server_address[1]}"
    options = {
        "key": "AKIDSECRETKEY", "secret": "s3cr3t-value", "token": "tok3n-value",
        "client_kwargs": {"endpoint_url": endpoint},
    }  # fmt: skip
    store = open_store("s3://bucket/root", options)
    with pytest.raises(StoreError) as caught:
        store.read("aliases/a")
    message = caught.value.message
    for secret in ("AKIDSECRETKEY", "s3cr3t-value", "tok3n-value"):
        assert secret not in message
    assert message.startswith("s3://bucket/root: cannot read aliases/a: S3Denied: AccessDenied")
    assert "\n" not in message
    assert caught.value.exit_code == 4
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


INITIATED = (
    b"<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>"
)


@pytest.mark.parametrize("failing", ["part", "complete"])
def test_a_failed_multipart_upload_is_aborted(raw, tmp_path: Path, failing: str) -> None:
    """A part refused, or a completion answered 200 with an <Error>: the upload is aborted
    (no parts left to bill), and the error is the part's or the completion's."""
    refused = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"

    def script(line: str, headers: dict[str, str]) -> bytes:
        method, target = line.split()[:2]
        if method == "POST" and target.endswith("?uploads="):
            return http_answer(200, INITIATED)
        if method == "PUT":
            if failing == "part" and "partNumber=2" in target:
                return http_answer(403, refused)
            return http_answer(200, b"", extra='ETag: "e"\r\n')
        if method == "POST":  # the completion
            return http_answer(200, refused)
        return http_answer(204, b"")  # the abort

    raw.script = script
    source = tmp_path / "big"
    source.write_bytes(b"x" * 25)
    fs = raw.client()
    fs.single_put_max = 10
    with pytest.raises(S3Error, match="AccessDenied"):
        fs.put_file(str(source), "bucket/key", chunksize=10, max_concurrency=1)
    assert raw.seen[-1].split()[:2] == ["DELETE", "/bucket/key?uploadId=up-1"]
    assert sum(line.startswith("DELETE") for line in raw.seen) == 1


def chunked(status: int, blocks: list[bytes], *, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(b), b) for b in blocks)
    tail = b"0\r\n\r\n" if end else b""
    return b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n%s%s" % (status, body, tail)


def test_chunked_answers_are_read_whole_and_a_cut_one_is_retried(raw, tmp_path: Path) -> None:
    answers = iter(
        [
            chunked(200, [b"ab", b"cd"]),
            chunked(200, [b"ef", b"gh"]),
            chunked(200, [b"cut"], end=False),  # then the connection closes
            chunked(200, [b"whole"]),
        ]
    )
    raw.script = lambda line, headers: next(answers)
    fs = raw.client()
    assert fs.cat_file("bucket/a") == b"abcd"
    fs.get_file("bucket/b", str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"efgh"
    raw.close_after = True
    fs.get_file("bucket/c", str(tmp_path / "c"))
    assert (tmp_path / "c").read_bytes() == b"whole"


@pytest.mark.parametrize(("size", "requests"), [(10, 1), (11, 4)])
def test_a_file_exactly_at_the_single_put_limit_is_one_put(
    raw, tmp_path: Path, size: int, requests: int
) -> None:
    """At the limit: one PUT; one byte past it: initiate, two parts, complete."""

    def script(line: str, headers: dict[str, str]) -> bytes:
        if line.startswith("POST") and "uploads=" in line:
            return http_answer(200, INITIATED)
        if line.startswith("POST"):
            return http_answer(200, b"<CompleteMultipartUploadResult/>")
        return http_answer(200, b"", extra='ETag: "e"\r\n')

    raw.script = script
    source = tmp_path / "file"
    source.write_bytes(b"x" * size)
    fs = raw.client()
    fs.single_put_max = 10
    fs.put_file(str(source), "bucket/key", chunksize=10)
    assert len(raw.seen) == requests


def test_an_initiation_answered_200_with_an_error_document_sends_nothing_more(
    raw, tmp_path: Path
) -> None:
    """No UploadId: no parts under an empty id, and no DELETE of ``key?uploadId=`` (a lenient
    server could take that for a delete of the object itself)."""
    refused = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    raw.script = lambda line, headers: http_answer(200, refused)
    source = tmp_path / "big"
    source.write_bytes(b"x" * 25)
    fs = raw.client()
    fs.single_put_max = 10
    with pytest.raises(S3Error, match="AccessDenied"):
        fs.put_file(str(source), "bucket/key", chunksize=10)
    assert [line.split()[0] for line in raw.seen] == ["POST"]


def test_keys_are_url_decoded_only_when_the_listing_says_it_encoded_them(raw) -> None:
    """A server that ignores ``encoding-type=url`` sends keys as they are: a wheel's local
    version ``+cu121`` must not become a space (sync would re-upload it every time)."""
    plain = listing(["p/torch-2.1.0+cu121.whl", "p/a%20b"])
    encoded = plain.replace(b"<IsTruncated>", b"<EncodingType>url</EncodingType><IsTruncated>")
    encoded = encoded.replace(b"p/torch-2.1.0+cu121.whl", b"p/torch-2.1.0%2Bcu121.whl")
    encoded = encoded.replace(b"p/a%20b", b"p/a%2520b")
    for body in (plain, encoded):
        raw.script = lambda line, headers, body=body: http_answer(200, body)
        assert raw.client().find("bucket/p") == ["bucket/p/a%20b", "bucket/p/torch-2.1.0+cu121.whl"]


def test_a_completion_answered_200_with_a_retryable_error_is_tried_again(
    raw, tmp_path: Path
) -> None:
    """S3 documents that CompleteMultipartUpload can fail after its 200 (InternalError in
    the body) and that it is then retried, as its own 500 would be: not aborted."""
    completions = iter(
        [
            http_answer(200, b"<Error><Code>InternalError</Code><Message>m</Message></Error>"),
            http_answer(200, b"<CompleteMultipartUploadResult/>"),
        ]
    )

    def script(line: str, headers: dict[str, str]) -> bytes:
        if line.startswith("POST") and "uploads=" in line:
            return http_answer(200, INITIATED)
        if line.startswith("POST"):
            return next(completions)
        if line.startswith("PUT"):
            return http_answer(200, b"", extra='ETag: "e"\r\n')
        return http_answer(204, b"")

    raw.script = script
    source = tmp_path / "big"
    source.write_bytes(b"x" * 25)
    fs = raw.client()
    fs.single_put_max = 10
    fs.put_file(str(source), "bucket/key", chunksize=10)
    assert [line.split()[0] for line in raw.seen] == ["POST", "PUT", "PUT", "PUT", "POST", "POST"]
