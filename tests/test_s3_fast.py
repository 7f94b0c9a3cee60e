"""flowenv's own S3 client against a real moto server that checks every SigV4 signature.

moto verifies signatures once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have
gone by: the fixture spends them creating an IAM user with S3 rights, its
access key and a bucket, and from then on each request is signed-checked
(a wrong secret is refused). Retries, region redirects and the keep-alive
reconnect are tested against small local HTTP servers answering what S3
answers (error bodies as AWS sends them).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from flowenv.errors import StoreError
from flowenv.store import open_store
from flowenv.store.s3_fast import S3Error, S3FastFileSystem
from flowenv.store.s3_settings import S3Settings
from flowenv.store.s3_signing import Credentials
from flowenv.store.timeouts import ATTEMPTS
from tests.support.stores import free_port, stop, wait_listening

#: User, its policy and key, a role and its policy, the bucket: the requests moto lets by unsigned.
_SETUP_REQUESTS = 6
_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}],
}


@attrs.frozen
class AuthServer:
    endpoint: str
    bucket: str
    key: str
    secret: str

    def boto(self, service: str) -> Any:
        """A boto3 client as this server's IAM user (to look at what flowenv did)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
        )

    def options(self, secret: str | None = None) -> dict[str, object]:
        return {
            "key": self.key,
            "secret": secret or self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint},
        }


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    import boto3

    port = free_port()
    log = (tmp_path_factory.mktemp("moto-auth") / "moto.log").open("wb")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)}
    binary = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env
    )
    try:
        wait_listening(port, process, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        setup = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="flowenv")
        iam.put_user_policy(UserName="flowenv", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        access = iam.create_access_key(UserName="flowenv")["AccessKey"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(RoleName="writer", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="writer", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        bucket = f"flowenv-auth-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        yield AuthServer(endpoint, bucket, access["AccessKeyId"], access["SecretAccessKey"])
    finally:
        stop(process)
        log.close()


@pytest.fixture(autouse=True)
def _fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWENV_S3_BACKEND", "fast")


def test_signed_requests_are_accepted_and_a_wrong_secret_is_refused(auth_server) -> None:
    url = f"s3://{auth_server.bucket}/signed"
    store = open_store(url, auth_server.options())
    assert type(store.fs) is S3FastFileSystem
    store.write("aliases/a.json", b"{}")
    assert store.read("aliases/a.json") == b"{}"
    assert store.list_sizes() == {"aliases/a.json": 2}

    wrong = open_store(url, auth_server.options(secret="not-the-secret"))
    with pytest.raises(StoreError) as caught:
        wrong.read("aliases/a.json")
    assert caught.value.message == (
        f"{url}: cannot read aliases/a.json: S3Denied: SignatureDoesNotMatch: The request "
        "signature we calculated does not match the signature you provided. Check your key "
        "and signing method. (HTTP 403)"
    )
    with pytest.raises(StoreError) as caught:
        wrong.write("aliases/b.json", b"{}")
    assert "SignatureDoesNotMatch" in caught.value.message
    assert "not-the-secret" not in caught.value.message
    assert store.read("aliases/b.json") is None


#: Every character class SigV4's URI encoding treats specially, and non-ASCII.
AWKWARD = "odd keys/a b+c%20d=e&f?g#h~i!j'k(l)m*n,o;p:q@r$s[t]u{v}w^x`y|z\\é✓.txt"


def test_keys_that_need_uri_encoding_round_trip(auth_server, tmp_path) -> None:
    store = open_store(f"s3://{auth_server.bucket}/enc", auth_server.options())
    store.write(AWKWARD, b"awkward")
    assert store.read(AWKWARD) == b"awkward"
    source = tmp_path / "source"
    source.write_bytes(b"uploaded")
    store.upload(source, AWKWARD + ".up")
    store.download(AWKWARD + ".up", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == b"uploaded"
    assert store.list_sizes() == {AWKWARD: 7, AWKWARD + ".up": 8}
    assert store.read_many([AWKWARD, "absent"]) == {AWKWARD: b"awkward", "absent": None}
    store.delete_many([AWKWARD, AWKWARD + ".up", "absent"])
    assert store.list_sizes() == {}


def test_listing_pages_past_1000_keys(auth_server) -> None:
    store = open_store(f"s3://{auth_server.bucket}/many", auth_server.options())
    keys = [f"artifacts/{i:05d}" for i in range(2345)]
    from flowenv._threads import in_threads

    in_threads([lambda k=k: store.write(k, k.encode()) for k in keys], 16)
    store.write("elsewhere", b"x")  # under the root, outside the listed prefix
    listed = store.list_entries("artifacts")
    assert sorted(listed) == keys
    assert {e.size for e in listed.values()} == {len(keys[0])}
    assert all(e.mtime > 1.7e9 for e in listed.values())
    # More than one DeleteObjects batch (1000 keys each).
    store.delete_many(keys)
    assert store.list_sizes() == {"elsewhere": 1}


def test_multipart_upload(auth_server, tmp_path, monkeypatch) -> None:
    """Past the single-PUT limit (lowered to 5 MiB, S3's smallest part): parts, then one object."""
    from flowenv.store import store as store_module

    monkeypatch.setattr(store_module, "STREAM_PART", 5 << 20)
    store = open_store(f"s3://{auth_server.bucket}/mp", auth_server.options())
    store.fs.single_put_max = 5 << 20
    source = tmp_path / "big"
    source.write_bytes(os.urandom((5 << 20) * 2 + 12345))
    store.upload(source, "artifacts/big")
    store.download("artifacts/big", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == source.read_bytes()
    client = auth_server.boto("s3")
    head = client.head_object(Bucket=auth_server.bucket, Key="mp/artifacts/big")
    assert head["ETag"].endswith('-3"')  # a multipart object's ETag counts its parts
    assert client.list_multipart_uploads(Bucket=auth_server.bucket).get("Uploads", []) == []


def test_session_token_is_sent_and_signed(auth_server) -> None:
    """Temporary credentials (an assumed role): the token header is sent, signed and checked."""
    sts = auth_server.boto("sts")
    role = "arn:aws:iam::123456789012:role/writer"
    temporary = sts.assume_role(RoleArn=role, RoleSessionName="flowenv-test")["Credentials"]
    options = {
        "key": temporary["AccessKeyId"],
        "secret": temporary["SecretAccessKey"],
        "token": temporary["SessionToken"],
        "client_kwargs": {"endpoint_url": auth_server.endpoint},
    }
    store = open_store(f"s3://{auth_server.bucket}/sts", options)
    store.write("k", b"v")
    assert store.read("k") == b"v"
    forged = open_store(f"s3://{auth_server.bucket}/sts", {**options, "token": "forged"})
    with pytest.raises(StoreError) as caught:
        forged.read("k")
    assert "InvalidToken" in caught.value.message


# -- S3's answers, served locally -------------------------------------------------------
#: Error bodies as AWS sends them (request ids shortened).
MALFORMED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>'
    "<Message>The authorization header is malformed; the region 'us-east-1' is wrong; "
    "expecting 'eu-west-1'</Message><Region>eu-west-1</Region>"
    "<RequestId>6Q2N</RequestId><HostId>Zx0=</HostId></Error>"
)
REDIRECT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
    "<Message>The bucket you are attempting to access must be addressed using the specified "
    "endpoint. Please send all future requests to this endpoint.</Message>"
    "<Endpoint>bucket.s3.ap-southeast-2.amazonaws.com</Endpoint><Bucket>bucket</Bucket>"
    "<RequestId>6Q2N</RequestId><HostId>Zx0=</HostId></Error>"
)
SLOWDOWN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    "<Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>"
)


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the server's script."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        server.seen.append((self.command, self.path, self.headers.get("Authorization", "")))  # type: ignore[attr-defined]
        status, headers, body = server.answer(self)  # type: ignore[attr-defined]
        if status == 0:  # drop the connection without a word
            self.close_connection = True
            return
        data = body.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # An idle keep-alive connection the server drops without saying so beforehand.
        self.close_connection = bool(getattr(self.server, "drop_after_answer", False))

    do_PUT = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: http.server.ThreadingHTTPServer, region: str = "us-east-1") -> S3FastFileSystem:
    settings = S3Settings(
        endpoint=f"http://127.0.0.1:{server.server_address[1]}",
        region=region,
        credentials=Credentials(key="AKID", secret="secret"),
    )
    return S3FastFileSystem(settings, budget=8.0)


def _region_of(authorization: str) -> str:
    return authorization.split("Credential=")[1].split("/")[2]


def test_wrong_region_is_retried_in_the_region_s3_names(scripted) -> None:
    def answer(handler: Scripted) -> tuple[int, dict[str, str], str]:
        region = _region_of(handler.headers["Authorization"])
        if handler.path.startswith("/bucket/"):
            if region != "eu-west-1":
                return 400, {"Content-Type": "application/xml"}, MALFORMED
            return 200, {}, "in eu-west-1"
        if region != "ap-southeast-2":
            return 301, {"x-amz-bucket-region": "ap-southeast-2"}, REDIRECT
        return 200, {}, "in ap-southeast-2"

    scripted.answer = answer
    fs = _client(scripted)
    assert fs.cat_file("bucket/key") == b"in eu-west-1"
    assert fs.cat_file("other/key") == b"in ap-southeast-2"
    assert fs.cat_file("bucket/again") == b"in eu-west-1"  # the region is remembered
    regions = [_region_of(a) for _, _, a in scripted.seen]
    assert regions == ["us-east-1", "eu-west-1", "us-east-1", "ap-southeast-2", "eu-west-1"]


def test_slowdown_and_resets_are_retried_then_given_up(scripted) -> None:
    script = iter([(503, {}, SLOWDOWN), (0, {}, ""), (200, {}, "finally")])
    scripted.answer = lambda handler: next(script)
    fs = _client(scripted)
    assert fs.cat_file("bucket/key") == b"finally"
    assert len(scripted.seen) == ATTEMPTS == 3

    scripted.answer = lambda handler: (503, {}, SLOWDOWN)
    scripted.seen.clear()
    with pytest.raises(S3Error) as caught:
        fs.cat_file("bucket/key")
    assert str(caught.value) == "SlowDown: Please reduce your request rate. (HTTP 503)"
    assert len(scripted.seen) == ATTEMPTS


def test_a_keep_alive_connection_closed_by_the_server_is_reopened_for_free(scripted) -> None:
    """A server may close an idle keep-alive connection: that is no failed attempt."""
    answers = iter([(200, {}, "one"), (200, {}, "two")])
    scripted.answer = lambda handler: next(answers)
    scripted.drop_after_answer = True
    fs = _client(scripted)
    assert fs.cat_file("bucket/a") == b"one"
    where = ("http", "127.0.0.1", scripted.server_address[1])
    assert len(fs._pool.idle(where)) == 1  # kept: the server did not say it would close
    assert fs.cat_file("bucket/b") == b"two"
    assert len(scripted.seen) == 2
    fs.close()


def _imported_by(args: list[str], watched: str) -> str:
    """Run ``flowenv ARGS`` in a fresh interpreter: its exit code and which ``watched`` it imported.

    ``watched`` is an expression over ``sys.modules`` (a subprocess: this
    process has imported everything already).
    """
    probe = (
        "import sys\n"
        "from flowenv.cli import main\n"
        f"code = main({args!r})\n"
        f"print(code, {watched})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FLOWENV_S3_BACKEND"}
    ran = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()[-1]


def test_no_op_sync_imports_neither_s3fs_nor_botocore(make_project, moto_server) -> None:
    """The fast client is stdlib only: a no-op sync to S3 pays for no SDK import."""
    from flowenv.cli import main
    from tests.support.stores import s3_target

    store = s3_target(moto_server)
    root = make_project('[base]\npython = "3.11"\npypi.packages = { delta = "0.5" }\n',
                        project_extra=store.project_lines())  # fmt: skip
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "sync"]) == 0
    heavy = "('flowenv.store.s3_fast' in sys.modules, sorted(m for m in "
    heavy += "('s3fs', 'botocore', 'boto3', 'aiobotocore', 'fsspec') if m in sys.modules))"
    assert _imported_by(["-C", str(root), "sync"], heavy) == "0 (True, [])"


def test_lock_check_does_not_import_the_client(make_project) -> None:
    root = make_project('[base]\npython = "3.11"\npypi.packages = { delta = "0.5" }\n',
                        project_extra='store = "s3://bucket/x"\n')  # fmt: skip
    from flowenv.cli import main

    assert main(["-C", str(root), "lock"]) == 0
    s3 = "sorted(m for m in sys.modules if m.startswith('flowenv.store.s3'))"
    assert _imported_by(["-C", str(root), "lock", "--check"], s3) == "0 []"


def test_a_server_that_always_hangs_up_is_unreachable_once(scripted) -> None:
    """Every try closed without an answer: the store is marked unreachable (one message)."""
    scripted.answer = lambda handler: (0, {}, "")
    endpoint = f"http://127.0.0.1:{scripted.server_address[1]}"
    options = {"key": "k", "secret": "s3cr3t", "client_kwargs": {"endpoint_url": endpoint}}
    store = open_store("s3://bucket/x", options)
    with pytest.raises(StoreError) as first:
        store.read("aliases/a")
    assert first.value.message.startswith(
        "s3://bucket/x: the store did not answer (RemoteDisconnected: "
    )
    assert len(scripted.seen) == ATTEMPTS
    with pytest.raises(StoreError) as second:
        store.read("aliases/b")
    assert second.value.message == first.value.message
    assert len(scripted.seen) == ATTEMPTS  # failed at once, without asking again


def test_anonymous_requests_are_not_signed(scripted) -> None:
    """``anon = true`` (a public bucket): no Authorization header, no credentials looked up."""
    scripted.answer = lambda handler: (200, {}, "public")
    endpoint = f"http://127.0.0.1:{scripted.server_address[1]}"
    store = open_store("s3://bucket/x", {"anon": True, "client_kwargs": {"endpoint_url": endpoint}})
    assert store.read("k") == b"public"
    assert scripted.seen == [("GET", "/bucket/x/k", "")]


_AWS = "s3.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("endpoint", "region", "addressing", "bucket", "expected"),
    [
        # AWS: virtual-hosted where the name allows it (no dots: TLS wildcard certificates)
        (None, "eu-west-1", None, "my-bucket", ("https", f"my-bucket.{_AWS}", None, "/k/a")),
        (None, "us-east-1", None, "bkt", ("https", "bkt.s3.amazonaws.com", None, "/k/a")),
        (None, "eu-west-1", None, "my.bkt", ("https", _AWS, None, "/my.bkt/k/a")),
        (None, "eu-west-1", "path", "my-bucket", ("https", _AWS, None, "/my-bucket/k/a")),
        # a custom endpoint: path style unless asked, its own path prefix kept
        ("http://minio:9000/s3", "us-east-1", None, "b", ("http", "minio", 9000, "/s3/b/k/a")),
        ("https://store.example", "x", "virtual", "b", ("https", "b.store.example", None, "/k/a")),
    ],
)
def test_where_requests_go(endpoint, region, addressing, bucket, expected) -> None:
    settings = S3Settings(endpoint=endpoint, region=region, credentials=None, addressing=addressing)
    assert S3FastFileSystem(settings, budget=8.0)._target(bucket, "k/a") == expected


def test_sixteen_threads_share_one_client(moto_server, tmp_path) -> None:
    """sync's and hydrate's 16 workers on one client and its pool: each thread's uploads,
    reads and downloads (empty objects and awkward keys among them) come back intact."""
    from flowenv._threads import in_threads
    from tests.support.stores import s3_target

    target = s3_target(moto_server, "fast")
    store = open_store(target.url, target.options)
    assert type(store.fs) is S3FastFileSystem

    def work(i: int) -> None:
        payload = os.urandom(i * 4099)  # thread 0 stores an empty object
        key = f"artifacts/{i:02d} +%~é/{AWKWARD[-12:]}"
        source = tmp_path / f"up{i}"
        source.write_bytes(payload)
        store.upload(source, key)
        store.write(f"{key}.meta", payload[:7])
        for round_ in range(3):
            store.download(key, tmp_path / f"down{i}-{round_}")
            assert (tmp_path / f"down{i}-{round_}").read_bytes() == payload
            assert store.read(f"{key}.meta") == payload[:7]

    in_threads([lambda i=i: work(i) for i in range(16)], 16)
    sizes = store.list_sizes("artifacts")
    assert len(sizes) == 32
    assert sizes[f"artifacts/00 +%~é/{AWKWARD[-12:]}"] == 0
    assert sizes[f"artifacts/15 +%~é/{AWKWARD[-12:]}"] == 15 * 4099
