"""Reading events where the workers put them: a bucket on S3/MinIO, or a local folder.

Both stores answer the same three questions (which keys start with this prefix, what is in this
object, where can a browser fetch it) and count what they read, so the index benchmark and the
tests can compare the index against a full listing by objects touched, not by time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from edge_inference_api import models
from minio.error import S3Error

from ..sinks import FolderSink, MinioSink, SinkError, check_key, sink_from_config

# How long a presigned snapshot link stays valid: long enough to keep a page open for a shift.
PRESIGNED_LINK_LIFETIME = timedelta(hours=12)
# S3's default region: signing a link for another address must not ask that address for its region.
DEFAULT_REGION = "us-east-1"


class ObjectMissingError(SinkError):
    """The object asked for is not in the store."""


@dataclass
class ReadCounter:
    """What a query read: listing requests, keys those listings returned, objects fetched."""

    list_requests: int = 0
    keys_listed: int = 0
    objects_fetched: int = 0

    @property
    def objects_read(self) -> int:
        """Keys listed plus objects fetched: every object a query had to touch."""
        return self.keys_listed + self.objects_fetched


class EventStore(Protocol):
    """Read access to the objects the workers upload (and writes, for the index backfill)."""

    prefix: str
    counter: ReadCounter

    def keys(self, prefix: str) -> Iterator[str]: ...

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def link(self, key: str) -> str | None: ...


class BucketStore:
    """Events in an S3/MinIO bucket, read through the worker's fail-fast sink.

    `links`: the sink that signs snapshot links, when browsers reach S3 at another address.
    """

    def __init__(self, sink: MinioSink, prefix: str, links: MinioSink | None = None) -> None:
        self.sink = sink
        self.prefix = prefix
        self.links = links or sink
        self.counter = ReadCounter()

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix` (recursive), in key order."""
        self.counter.list_requests += 1
        for key in self.sink.keys(prefix):
            self.counter.keys_listed += 1
            yield key

    def get(self, key: str) -> bytes:
        """The object's bytes; `ObjectMissingError` when there is none."""
        self.counter.objects_fetched += 1
        try:
            return self.sink.read(key)
        except SinkError as error:
            if isinstance(error.__cause__, S3Error) and error.__cause__.code == "NoSuchKey":
                raise ObjectMissingError(error.kind, f"s3://{self.sink.bucket}/{key}: no such object") from None
            raise

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload one object (the index backfill)."""
        self.sink.put_object(key, data, content_type)

    def link(self, key: str) -> str:
        """A presigned GET URL: the browser fetches the snapshot from S3 with no credentials of its own."""
        return self.links.link(key, PRESIGNED_LINK_LIFETIME)


class FolderStore:
    """Events in a local folder (`detect --out ./events`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.prefix = ""
        self.counter = ReadCounter()

    def keys(self, prefix: str) -> Iterator[str]:
        """Every file under `prefix` as a key, in key order (partial writes `.*.part` left out)."""
        self.counter.list_requests += 1
        folder = prefix.rpartition("/")[0]
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return
        found = []
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.startswith("."):
                    found.append(key)
        for key in sorted(found):
            self.counter.keys_listed += 1
            yield key

    def get(self, key: str) -> bytes:
        """The file's bytes; `ObjectMissingError` when there is none."""
        self.counter.objects_fetched += 1
        path = self.root / check_key(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissingError("sink_write", f"{path}: no such file") from None
        except OSError as error:
            raise SinkError("sink_write", f"cannot read {path}: {error}") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write one file atomically (the index backfill)."""
        FolderSink(self.root).put_object(key, data, content_type)

    def link(self, key: str) -> None:
        """A folder has no links to hand out: reports embed the snapshots instead."""
        return None


def store_from_sink(
    sink: models.S3Sink | models.DirectorySink,
    access_key: str | None,
    secret_key: str | None,
    public_endpoint: str | None = None,
) -> EventStore:
    """The store for an `--out`-style location (credentials from the environment, as `detect`).

    `public_endpoint` (http(s)://host[:port]): where browsers reach the bucket, for snapshot links.
    """
    writer = sink_from_config(sink, access_key, secret_key)
    if isinstance(writer, MinioSink):
        assert isinstance(sink, models.S3Sink)
        links = None
        if public_endpoint:
            links = presigning_sink(public_endpoint, sink.bucket, access_key, secret_key, sink.region or DEFAULT_REGION)
        return BucketStore(writer, sink.prefix, links)
    assert isinstance(sink, models.DirectorySink)
    return FolderStore(Path(sink.path))


def presigning_sink(
    endpoint: str, bucket: str, access_key: str | None, secret_key: str | None, region: str
) -> MinioSink:
    """A sink that only signs links for `endpoint`; the region is given, so signing needs no network."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
        raise ValueError(f"public endpoint {endpoint!r} must be http(s)://host[:port]")
    return MinioSink(
        parts.netloc, bucket, access_key=access_key, secret_key=secret_key, secure=parts.scheme == "https",
        region=region,
    )
