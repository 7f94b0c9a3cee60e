"""SigV4 for S3 against the worked example in AWS's documentation (S3 API reference,
"Signature Calculations for the Authorization Header: Transferring Payload in a
Single Chunk", example "GET Object"): the documented example credentials, request
and resulting signature."""

from __future__ import annotations

from flowenv.store.s3_signing import (
    EMPTY_SHA256,
    Credentials,
    authorization,
    encode_path,
    encode_query,
    signing_key,
)

#: AWS's documented example key pair (not a real account's).
EXAMPLE = Credentials(key="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_get_object_example_from_the_aws_documentation() -> None:
    header = authorization(
        credentials=EXAMPLE,
        key=signing_key(EXAMPLE.secret, "20130524", "us-east-1"),
        method="GET",
        path="/test.txt",
        query="",
        headers={
            "host": "examplebucket.s3.amazonaws.com",
            "range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": "20130524T000000Z",
        },
        payload_sha256=EMPTY_SHA256,
        amz_date="20130524T000000Z",
        region="us-east-1",
    )
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_uri_encoding_rules() -> None:
    """Path: encoded once, slashes kept; query: sorted, everything but unreserved encoded."""
    assert encode_path("/b/a b+c~d_e-f.g/é") == "/b/a%20b%2Bc~d_e-f.g/%C3%A9"
    assert encode_query({"prefix": "store/a b", "list-type": "2", "uploads": ""}) == (
        "list-type=2&prefix=store%2Fa%20b&uploads="
    )
    assert "secret" not in repr(Credentials(key="AKIDXXXX", secret="secret"))
