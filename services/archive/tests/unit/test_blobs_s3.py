"""The S3 blob store against a local fake S3 server: a real HTTP server on a thread that keeps
objects in memory and refuses any request whose AWS Signature Version 4 does not check out
(verified here independently of the client's signing code)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

from orderline_archive.adapters.blobs_s3 import Credentials, S3BlobStore, sigv4_headers
from orderline_archive.app.ports import (
    CHUNK_BYTES,
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
)

KEY_ID = "AKIDORDERLINETEST"
SECRET = "orderline/fake+secret"
REGION = "cn-north-1"
BUCKET = "dossiers"


@dataclass
class FakeS3:
    """What the fake holds and saw: objects by path, and every request with its verdict."""

    objects: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=lambda: {KEY_ID: SECRET})


def expected_signature(
    method: str, raw_path: str, headers: dict[str, str], authorization: str, secret: str
) -> tuple[str, str]:
    """(the signature the request should carry, the one it carries), per the SigV4 spec."""
    algorithm, _, rest = authorization.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    _, day, region, service, terminal = parts["Credential"].split("/")
    assert terminal == "aws4_request"
    signed = parts["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
    path, _, query = raw_path.partition("?")
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    canonical = (
        f"{method}\n{path}\n{query}\n{canonical_headers}\n{';'.join(signed)}\n"
        f"{headers['x-amz-content-sha256']}"
    )
    amz_date = headers["x-amz-date"]
    assert amz_date.startswith(day)
    to_sign = (
        f"AWS4-HMAC-SHA256\n{amz_date}\n{day}/{region}/{service}/aws4_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )
    k = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
    return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), parts["Signature"]


def handler_for(state: FakeS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _authorised(self, body: bytes) -> bool:
            headers = {k.lower(): v for k, v in self.headers.items()}
            auth = headers.get("authorization", "")
            try:
                key_id = auth.split("Credential=", 1)[1].split("/", 1)[0]
                want, got = expected_signature(
                    self.command, self.path, headers, auth, state.secrets[key_id]
                )
            except (IndexError, KeyError, ValueError, AssertionError):
                return False
            if not hmac.compare_digest(want, got):
                return False
            declared = headers["x-amz-content-sha256"]
            # S3 checks the signed payload hash against the body it received.
            return declared == hashlib.sha256(body).hexdigest()

        def _answer(self, status: int, body: bytes = b"") -> None:
            state.requests.append((self.command, unquote(self.path), status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self._authorised(body):
                self._answer(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
                return
            key = unquote(self.path)
            if not key.startswith(f"/{BUCKET}/"):
                self._answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
            elif self.command == "PUT":
                state.objects[key] = body
                self._answer(200)
            elif key not in state.objects:
                self._answer(404, b"" if self.command == "HEAD" else b"<Error>NoSuchKey</Error>")
            elif self.command == "DELETE":
                del state.objects[key]
                self._answer(204)
            else:
                self._answer(200, state.objects[key])

        do_PUT = do_GET = do_HEAD = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake_s3() -> Iterator[tuple[FakeS3, str]]:
    state = FakeS3()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def store_at(endpoint: str, secret: str = SECRET) -> S3BlobStore:
    return S3BlobStore(
        endpoint=endpoint,
        bucket=BUCKET,
        region=REGION,
        credentials=Credentials(KEY_ID, secret),
    )


def test_the_signature_matches_the_aws_documented_example() -> None:
    """AWS's SigV4 example "GET Object" (s3/latest/API/sig-v4-header-based-auth.html)."""
    signed = sigv4_headers(
        method="GET",
        host="examplebucket.s3.amazonaws.com",
        path="/test.txt",
        headers={"Range": "bytes=0-9"},
        payload_sha256=hashlib.sha256(b"").hexdigest(),
        region="us-east-1",
        credentials=Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


async def test_put_get_head_and_delete_against_a_fake_that_checks_signatures(
    fake_s3: tuple[FakeS3, str],
) -> None:
    state, endpoint = fake_s3
    store = store_at(endpoint)
    data = bytes(range(256)) * 600  # 150 KiB: three chunks
    digest = await store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    key = f"/{BUCKET}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert state.objects == {key: data}
    assert await store.put(data) == digest  # idempotent: the same object, the same bytes
    assert state.objects == {key: data}

    assert await store.exists(digest)
    chunks = [c async for c in store.open(digest)]
    assert [len(c) for c in chunks] == [CHUNK_BYTES, CHUNK_BYTES, len(data) - 2 * CHUNK_BYTES]
    assert await store.read(digest) == data

    await store.delete(digest)
    assert not await store.exists(digest)
    with pytest.raises(BlobNotFound):
        await store.read(digest)
    # Every request was signed as the fake requires.
    assert all(status != 403 for _, _, status in state.requests)
    assert [m for m, _, _ in state.requests] == [
        "PUT", "PUT", "HEAD", "GET", "GET", "DELETE", "HEAD", "GET",
    ]  # fmt: skip


async def test_a_wrong_secret_is_refused_by_the_store(fake_s3: tuple[FakeS3, str]) -> None:
    state, endpoint = fake_s3
    with pytest.raises(BlobStoreUnavailable, match="403"):
        await store_at(endpoint, secret="not-the-secret").put(b"document")
    assert state.objects == {}
    assert state.requests[-1][2] == 403


async def test_an_object_changed_in_the_bucket_is_an_error_never_served(
    fake_s3: tuple[FakeS3, str],
) -> None:
    state, endpoint = fake_s3
    store = store_at(endpoint)
    digest = await store.put(b"sealed document")
    (key,) = state.objects
    state.objects[key] = b"sealed documenT"
    served: list[bytes] = []
    with pytest.raises(BlobCorrupted):
        async for chunk in store.open(digest):
            served.append(chunk)
    assert served == []


async def test_an_unreachable_store_is_unavailable() -> None:
    store = store_at("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(BlobStoreUnavailable):
        await store.put(b"document")
    with pytest.raises(ValueError):
        S3BlobStore(
            endpoint="minio:9000", bucket=BUCKET, region=REGION, credentials=Credentials("a", "b")
        )
