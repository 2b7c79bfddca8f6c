"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, …), same interface as the
local directory.

boto3 is not a dependency of the project, and the archive needs four calls (PUT, GET, HEAD and
DELETE of one object), so this is a small client over the standard library: path-style URLs
(`<endpoint>/<bucket>/<key>`, which every S3-compatible store accepts) signed with AWS
Signature Version 4. Objects are `sha256/ab/cd/<digest>`, as in the local store.

- PUT sends `x-amz-content-sha256` = the blob's digest, which is signed: the store itself
  refuses a body damaged in transit. An S3 PUT is atomic (the object appears whole or not at
  all), and writing the same digest again writes the same bytes, so put is idempotent.
- GET reads the object into a spooled temporary file while hashing it, and hands out chunks
  only once the whole object matches its digest: damaged bytes are never served.
- The blocking HTTP calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from urllib.parse import quote, urlsplit

from orderline_archive.app.ports import (
    CHUNK_BYTES,
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
    check_digest,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Objects up to this size stay in memory while they are checked; larger ones spill to disk.
SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


def sigv4_headers(
    *,
    method: str,
    host: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    payload_sha256: str,
    region: str,
    credentials: Credentials,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers that sign one request with AWS Signature Version 4 (header form):
    `x-amz-date`, `x-amz-content-sha256` and `Authorization`. `path` is already URI-encoded;
    every header in `headers` (and `host`) is signed."""
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed: dict[str, str] = {k.lower(): " ".join(v.split()) for k, v in (headers or {}).items()}
    signed.update({"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date})
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method,
            path,
            query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{credentials.secret_access_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }


class S3BlobStore:
    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        credentials: Credentials,
        timeout_seconds: float = 30.0,
    ) -> None:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the S3 endpoint is an http(s) URL, not {endpoint!r}")
        self.scheme = url.scheme
        self.host = url.netloc  # with the port when there is one: that is what Host says
        self.base_path = url.path.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.timeout = timeout_seconds

    def key_of(self, digest: str) -> str:
        check_digest(digest)
        return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    async def put(self, data: bytes) -> str:
        return (await self.put_many([data]))[0]

    async def put_many(self, contents: Sequence[bytes]) -> list[str]:
        return await asyncio.to_thread(self._put_all, contents)

    def _put_all(self, contents: Sequence[bytes]) -> list[str]:
        digests = []
        for data in contents:
            digest = hashlib.sha256(data).hexdigest()
            status, body = self._request("PUT", digest, data, payload_sha256=digest)
            if status != 200:
                raise BlobStoreUnavailable(digest, f"PUT answered {status}: {_brief(body)}")
            digests.append(digest)
        return digests

    async def open(self, digest: str) -> AsyncIterator[bytes]:
        spool = await asyncio.to_thread(self._download, digest)
        try:
            while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
                yield chunk
        finally:
            spool.close()

    async def read(self, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.open(digest)])

    async def exists(self, digest: str) -> bool:
        status, _ = await asyncio.to_thread(self._request, "HEAD", digest)
        if status == 200:
            return True
        if status == 404:
            return False
        raise BlobStoreUnavailable(digest, f"HEAD answered {status}")

    async def delete(self, digest: str) -> None:
        status, body = await asyncio.to_thread(self._request, "DELETE", digest)
        if status not in (200, 204, 404):
            raise BlobStoreUnavailable(digest, f"DELETE answered {status}: {_brief(body)}")

    # --- HTTP -------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, timeout=self.timeout)

    def _path(self, digest: str) -> str:
        return quote(f"{self.base_path}/{self.bucket}/{self.key_of(digest)}", safe="/-_.~")

    def _signed(self, method: str, path: str, payload_sha256: str) -> dict[str, str]:
        return sigv4_headers(
            method=method,
            host=self.host,
            path=path,
            payload_sha256=payload_sha256,
            region=self.region,
            credentials=self.credentials,
            now=datetime.now(UTC),
        )

    def _request(
        self, method: str, digest: str, body: bytes = b"", *, payload_sha256: str = EMPTY_SHA256
    ) -> tuple[int, bytes]:
        path = self._path(digest)
        headers = self._signed(method, path, payload_sha256)
        if method == "PUT":
            headers["Content-Length"] = str(len(body))
            headers["Content-Type"] = "application/octet-stream"
        conn = self._connection()
        try:
            conn.request(method, path, body=body if method == "PUT" else None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            raise BlobStoreUnavailable(digest, f"{method} failed: {exc}") from exc
        finally:
            conn.close()

    def _download(self, digest: str) -> IO[bytes]:
        """The object in a spooled file positioned at its start, verified against the digest."""
        path = self._path(digest)
        conn = self._connection()
        # Returned open to the caller, which closes it: no `with` here.
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            conn.request("GET", path, headers=self._signed("GET", path, EMPTY_SHA256))
            response = conn.getresponse()
            if response.status == 404:
                raise BlobNotFound(digest, "not in the bucket")
            if response.status != 200:
                raise BlobStoreUnavailable(
                    digest, f"GET answered {response.status}: {_brief(response.read())}"
                )
            hasher = hashlib.sha256()
            while chunk := response.read(CHUNK_BYTES):
                hasher.update(chunk)
                spool.write(chunk)
            if hasher.hexdigest() != digest:
                raise BlobCorrupted(digest, "the object's bytes do not hash to its name")
            spool.seek(0)
            return spool
        except OSError as exc:
            spool.close()
            raise BlobStoreUnavailable(digest, f"GET failed: {exc}") from exc
        except BaseException:
            spool.close()
            raise
        finally:
            conn.close()


def _brief(body: bytes) -> str:
    return body[:200].decode("utf-8", errors="replace")
