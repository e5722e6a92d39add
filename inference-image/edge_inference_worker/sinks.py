"""Where confirmed events end up: an S3/MinIO bucket, or a local folder (the embedded default).

A sink stores one object per call and raises `SinkError` (with a metric-ready `kind`) when it
could not; retrying is the outbox's job, so the sinks themselves never retry.
"""

from __future__ import annotations

import errno
import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import certifi
import minio
import urllib3
from edge_inference_api import models
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from edge_inference_worker.durable import replace_durably

R = TypeVar("R")

# Error kinds, the `kind` label of the errors counter.
KIND_UNREACHABLE = "s3_unreachable"  # no answer: refused, reset, timed out, DNS
KIND_S3_ERROR = "s3_error"  # a well-formed S3 error (5xx, AccessDenied, NoSuchBucket, ...)
KIND_GARBAGE = "s3_garbage"  # an answer that is not S3 (non-XML, no ETag on a 200)
KIND_DISK_FULL = "disk_full"
KIND_SINK_WRITE = "sink_write"  # a directory sink failing for another OS reason
SINK_ERROR_KINDS = (KIND_UNREACHABLE, KIND_S3_ERROR, KIND_GARBAGE, KIND_DISK_FULL, KIND_SINK_WRITE)

# What a failure says about the future, for the outbox: try again later; this one object will never
# be stored (dead-letter it after a few tries); or the configuration is wrong for every object.
TRANSIENT = "transient"
REJECTED = "rejected"
MISCONFIGURED = "misconfigured"
# Definite answers about the bucket or the credentials: no retry will change them.
MISCONFIGURED_CODES = frozenset({"NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName"})
# Definite answers about one object (its key, size or headers).
REJECTED_CODES = frozenset({
    "KeyTooLongError", "InvalidObjectName", "InvalidArgument", "EntityTooLarge", "MetadataTooLarge",
    "InvalidDigest", "BadDigest", "InvalidStorageClass",
})


class Sink(Protocol):
    """Stores one object; raises on failure (a `SinkError` for the failures we know)."""

    def put_object(self, key: str, data: bytes, content_type: str) -> None: ...


class SinkError(Exception):
    """An object was not stored; `kind` says why, for the errors counter and logs."""

    def __init__(self, kind: str, message: str, verdict: str = TRANSIENT) -> None:
        super().__init__(message)
        self.kind = kind
        self.verdict = verdict


class BucketMissingError(SinkError):
    """The configured bucket does not exist; we never create it silently."""


# S3's limit on an object key, in bytes of UTF-8.
MAX_KEY_BYTES = 1024


def check_key_fits(key: str) -> str:
    """Refuse a key longer than S3 allows, before the event is queued (S3 itself judges at upload)."""
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise ValueError(f"object key of {size} bytes, more than S3's {MAX_KEY_BYTES}: {key[:80]}...")
    return key


def check_key(key: str) -> str:
    """Refuse object keys that are empty, absolute, or climb out of their prefix ('..')."""
    if not key or key.startswith("/") or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: must be relative, non-empty, without NUL")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' segments")
    return key


class MinioSink:
    """A bucket on S3/MinIO through the `minio` client; fails fast so the outbox owns retries."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        access_key: str | None,
        secret_key: str | None,
        secure: bool = True,
        region: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.client = minio.Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(timeout, secure),
        )

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"MinioSink({scheme}://{self.endpoint}/{self.bucket})"

    def check(self) -> None:
        """Raise `BucketMissingError` unless the bucket exists (other failures as `SinkError`)."""
        exists = translate_minio_errors(lambda: self.client.bucket_exists(self.bucket), f"bucket {self.bucket!r}")
        if not exists:
            raise BucketMissingError(
                KIND_S3_ERROR, f"bucket {self.bucket!r} does not exist on {self.endpoint}; create it first",
                MISCONFIGURED,
            )

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Upload one object; raise `SinkError` unless S3 confirmed it (a 2xx with an ETag)."""
        check_key(key)
        where = f"s3://{self.bucket}/{key}"
        result = translate_minio_errors(
            lambda: self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type),
            where,
        )
        # Every S3 implementation answers a PUT with an ETag; a bare 200 without one is some
        # other HTTP server (a captive proxy, a misrouted port), and nothing was stored.
        if not result.etag:
            raise SinkError(KIND_GARBAGE, f"{where}: server answered without an ETag; not an S3 confirmation")

    def exists(self, key: str) -> bool:
        """Whether the bucket holds `key` (a HEAD); other failures raise `SinkError`."""
        where = f"s3://{self.bucket}/{key}"
        try:
            translate_minio_errors(lambda: self.client.stat_object(self.bucket, key), where)
        except SinkError as error:
            if isinstance(error.__cause__, S3Error) and error.__cause__.code in ("NoSuchKey", "NoSuchObject"):
                return False
            raise
        return True

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix` (recursive), in key order; a failure raises `SinkError`."""
        listing = iter(self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
        where = f"listing s3://{self.bucket}/{prefix}"
        while (item := translate_minio_errors(lambda: next(listing, None), where)) is not None:
            yield item.object_name

    def read(self, key: str) -> bytes:
        """One object's bytes; a failure raises `SinkError` (its cause the client's error, e.g. NoSuchKey)."""
        return translate_minio_errors(lambda: self._read(check_key(key)), f"s3://{self.bucket}/{key}")

    def _read(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def link(self, key: str, lifetime: timedelta) -> str:
        """A presigned GET URL of `key` at this sink's address (signed here; no request is made)."""
        return self.client.presigned_get_object(self.bucket, check_key(key), expires=lifetime)

    def object_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        """The body of one object, streamed in chunks.

        Raises `SinkError` if the object cannot be opened; a connection lost mid-body raises what
        the HTTP client raises.
        """
        where = f"s3://{self.bucket}/{key} on {self.endpoint}"
        response = translate_minio_errors(lambda: self.client.get_object(self.bucket, key), where)
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()


class FolderSink:
    """Objects as files under a folder, each written atomically (tmp + fsync + rename + dir fsync)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FolderSink({self.root})"

    def check(self) -> None:
        """Create the folder if needed and make sure it is a writable directory."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SinkError(KIND_SINK_WRITE, f"cannot create output folder {self.root}: {error}") from error
        if not os.access(self.root, os.W_OK):
            raise SinkError(KIND_SINK_WRITE, f"output folder {self.root} is not writable")

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Write `root/key` atomically: readers see the old file or the whole new one, never a part.

        The temporary file has a fixed name per key (`.<name>.part` beside it): a write cut off by
        a crash leaves it behind, and the outbox retries exactly that key after the restart, which
        reuses and renames it, so no stray partial files accumulate.
        """
        target = self.root / check_key(key)
        tmp = target.with_name(f".{target.name}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(target, data, tmp)
        except OSError as error:
            kind = KIND_DISK_FULL if error.errno == errno.ENOSPC else KIND_SINK_WRITE
            verdict = REJECTED if error.errno == errno.ENAMETOOLONG else TRANSIENT
            raise SinkError(kind, f"cannot write {target}: {error}", verdict) from error


def sink_from_config(
    sink: models.S3Sink | models.DirectorySink, access_key: str | None, secret_key: str | None
) -> MinioSink | FolderSink:
    """The sink a `WorkerConfig.sink` describes (credentials come from the environment, not the config)."""
    if isinstance(sink, models.S3Sink):
        return MinioSink(
            sink.endpoint,
            sink.bucket,
            access_key=access_key,
            secret_key=secret_key,
            secure=sink.secure,
            region=sink.region,
        )
    return FolderSink(Path(sink.path))


def _http_client(timeout: float, secure: bool) -> urllib3.PoolManager:
    # No retries here: minio's default retries 5xx and connection errors for seconds inside one
    # call, which would hide outages from the outbox's backoff, metrics and logs.
    ca_certs = os.environ.get("SSL_CERT_FILE") or certifi.where()
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0),
        maxsize=4,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        ca_certs=ca_certs if secure else None,
    )


def translate_minio_errors(call: Callable[[], R], where: str) -> R:
    """Run one minio call, turning its many failure types into a `SinkError` with a kind.

    `where` (the bucket/key) starts the message.
    """
    try:
        return call()
    except S3Error as error:
        if error.code == "NoSuchBucket":
            raise BucketMissingError(
                KIND_S3_ERROR,
                f"{where}: NoSuchBucket: bucket does not exist (create it; it is never created silently)",
                MISCONFIGURED,
            ) from error
        verdict = (MISCONFIGURED if error.code in MISCONFIGURED_CODES
                   else REJECTED if error.code in REJECTED_CODES else TRANSIENT)
        raise SinkError(KIND_S3_ERROR, f"{_short_where(where)}: S3 error {error.code}: {error.message}",
                        verdict) from error
    except ServerError as error:
        raise SinkError(KIND_S3_ERROR, f"{where}: S3 server error HTTP {error.status_code}") from error
    except (InvalidResponseError, ET.ParseError, UnicodeDecodeError) as error:
        raise SinkError(KIND_GARBAGE, f"{where}: not an S3 answer: {_short(error)}") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise SinkError(KIND_UNREACHABLE, f"{where}: S3 unreachable: {_short(error)}") from error
    except MinioException as error:
        raise SinkError(KIND_GARBAGE, f"{where}: unexpected S3 client error: {_short(error)}") from error


def _short_where(where: str, limit: int = 200) -> str:
    """A bucket/key for a message: a key S3 refused for its length would otherwise fill the log line."""
    return where if len(where) <= limit else f"{where[: limit - 3]}..."


def _short(error: Exception, limit: int = 300) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
