"""The durable on-disk outbox between event detection and S3.

Every event is written to the node's disk (and fsynced) before `put` returns; a background
thread uploads the oldest first and deletes an entry only after the sink confirmed both of its
objects. The outbox directory is its own index, so a restarted worker resumes where it stopped.

Layout under `directory`:
    entries/<seq:016d>-<created_ms:013d>.evt   one committed event (name order = age order)
    entries/<seq:016d>-<created_ms:013d>.obj   one committed object (see below), in the same order
    tmp/<anything>                              a write in progress; never acknowledged
    dead-letter/<entry name>, <entry name>.txt  an event the sink rejected for good, and why

An answer about one event that no retry will change (a key S3 finds too long, an invalid argument)
is tried MAX_REJECTIONS times, then the entry moves to dead-letter/ (kept, counted, logged once)
so that later events keep flowing. A definite no about the bucket or the credentials concerns
every event: nothing is dead-lettered, `sink_refusal()` says since when, for the worker to decide.

An entry file is: MAGIC, a 4-byte big-endian header length, a JSON header
`{"key": key_base, "json": n, "jpeg": m, "created": t}`, the metadata JSON, the JPEG, then
the sha256 of everything before it. An entry of another kind than an event says so in its header:
`"kind": "object"` is one object (`"key"` its whole key, `"type"` its content type, the body in
the JSON part, no JPEG), e.g. an index object of the event index; it is uploaded in turn, so an
object put after an event reaches the sink after that event. A write goes to tmp/, is fsynced, renamed into entries/,
and entries/ is fsynced; only then does `put` return True. So after a crash, files in tmp/ were
never acknowledged and are discarded (counted as `outbox_partial`), and an entry that fails its
checksum (disk corruption) is discarded and counted as `outbox_corrupt`.

Delivery is at-least-once with idempotent keys: an upload confirmed just before a crash is
uploaded again after the restart and overwrites the same two objects, so the bucket never holds
a duplicate.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import heapq
import json
import logging
import os
import random
import re
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
from edge_inference_api import telemetry

from edge_inference_worker.backoff import backoff_delay
from edge_inference_worker.durable import fsync_directory, replace_durably
from edge_inference_worker.metrics import errors_counter
from edge_inference_worker.sinks import (
    KIND_DISK_FULL,
    MISCONFIGURED,
    REJECTED,
    SINK_ERROR_KINDS,
    Sink,
    SinkError,
    check_key,
    check_key_fits,
)

log = logging.getLogger(__name__)

MAGIC = b"EIOUTBOX1\n"
_LENGTH = struct.Struct(">I")
_DIGEST_SIZE = 32
_ENTRY_NAME = re.compile(r"^(\d{16})-(\d{13})\.(evt|obj)$")

KIND_PARTIAL = "outbox_partial"  # a write interrupted by a crash (never acknowledged)
KIND_CORRUPT = "outbox_corrupt"  # a committed entry that fails its checksum, a stray or vanished file
KIND_OUTBOX_WRITE = "outbox_write"  # writing an entry failed for another OS reason
KIND_UPLOAD_BUG = "outbox_upload"  # the sink raised something unexpected (a bug): retried like an outage
OUTBOX_ERROR_KINDS = (KIND_PARTIAL, KIND_CORRUPT, KIND_OUTBOX_WRITE, KIND_UPLOAD_BUG, KIND_DISK_FULL)

# Tries of an event the sink rejects for good before it goes to dead-letter/: one answer could be a
# proxy's mistake, three in a row with back-off are the sink's.
MAX_REJECTIONS = 3

JPEG_CONTENT_TYPE = "image/jpeg"
JSON_CONTENT_TYPE = "application/json"
# Entry kinds: an event (its JPEG, then its JSON), or one object at a key of its own.
ENTRY_EVENT = "event"
ENTRY_OBJECT = "object"
ENTRY_KINDS = (ENTRY_EVENT, ENTRY_OBJECT)
_SUFFIX = {ENTRY_EVENT: "evt", ENTRY_OBJECT: "obj"}  # the kind in the name: recovery need not read the file


class OutboxError(Exception):
    """An event could not be written to the outbox; it was not accepted."""


class OutboxDiskFullError(OutboxError):
    """The outbox's filesystem is full (ENOSPC); the event was not accepted."""


class OutboxLockedError(OutboxError):
    """Another process holds this outbox directory (two workers must never share one)."""


class OutboxEntryTooLargeError(OutboxError):
    """One event is larger than the whole outbox bound; it could never fit."""


class CorruptEntryError(ValueError):
    """An entry file is truncated or fails its checksum."""


@dataclass(frozen=True)
class SinkRefusal:
    """The sink's answer was a definite no about its configuration, every time since `since` (monotonic)."""

    since: float
    message: str


@dataclass(frozen=True)
class OutboxEntry:
    """A committed entry as read back from disk: an event (JSON + JPEG), or one object."""

    key_base: str
    metadata_json: bytes
    snapshot_jpeg: bytes
    created: float
    kind: str = ENTRY_EVENT
    content_type: str = JSON_CONTENT_TYPE


def encode_entry(
    key_base: str,
    metadata_json: bytes,
    snapshot_jpeg: bytes,
    created: float,
    kind: str = ENTRY_EVENT,
    content_type: str = JSON_CONTENT_TYPE,
) -> bytes:
    """The bytes of one entry file (pure; see the module docstring for the format)."""
    fields: dict = {"key": key_base, "json": len(metadata_json), "jpeg": len(snapshot_jpeg), "created": created}
    if kind != ENTRY_EVENT:  # an event's header stays as it always was
        fields |= {"kind": kind, "type": content_type}
    header = json.dumps(fields, separators=(",", ":")).encode()
    body = b"".join([MAGIC, _LENGTH.pack(len(header)), header, metadata_json, snapshot_jpeg])
    return body + hashlib.sha256(body).digest()


def decode_entry(data: bytes) -> OutboxEntry:
    """Parse and verify one entry file; `CorruptEntryError` if it is partial or damaged."""
    if len(data) < len(MAGIC) + _LENGTH.size + _DIGEST_SIZE or not data.startswith(MAGIC):
        raise CorruptEntryError("not an outbox entry (bad magic or too short)")
    body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise CorruptEntryError("checksum mismatch (truncated or damaged)")
    offset = len(MAGIC)
    (header_length,) = _LENGTH.unpack_from(body, offset)
    offset += _LENGTH.size
    try:
        header = json.loads(body[offset : offset + header_length])
        key, json_length, jpeg_length, created = header["key"], header["json"], header["jpeg"], header["created"]
        kind, content_type = header.get("kind", ENTRY_EVENT), header.get("type", JSON_CONTENT_TYPE)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptEntryError(f"bad header: {error}") from error
    if kind not in ENTRY_KINDS:
        raise CorruptEntryError(f"unknown entry kind {kind!r}")
    offset += header_length
    if offset + json_length + jpeg_length != len(body):
        raise CorruptEntryError("lengths in the header do not match the file")
    metadata = body[offset : offset + json_length]
    snapshot = body[offset + json_length :]
    return OutboxEntry(key, metadata, snapshot, float(created), kind, content_type)


@dataclass(frozen=True)
class _Indexed:
    seq: int
    path: Path
    size: int
    created: float
    event: bool = True  # False: an object entry


class OutboxMetrics:
    """The outbox's Prometheus collectors (names from `edge_inference_api.telemetry`).

    `errors` is the worker's errors-by-kind counter (`WorkerMetrics.errors`); an outbox on its own
    (the webhook's, a test's) registers one on `registry`.
    """

    def __init__(self, registry: prometheus_client.CollectorRegistry, errors: prometheus_client.Counter | None) -> None:
        self.depth = prometheus_client.Gauge(
            telemetry.OUTBOX_DEPTH, "Events waiting in the node's outbox.", registry=registry
        )
        self.bytes = prometheus_client.Gauge(
            telemetry.OUTBOX_BYTES, "Bytes of events waiting in the node's outbox.", registry=registry
        )
        self.oldest_age = prometheus_client.Gauge(
            telemetry.OUTBOX_OLDEST_AGE, "Age of the oldest event waiting in the outbox.", registry=registry
        )
        self.full = prometheus_client.Gauge(
            telemetry.OUTBOX_FULL, "1 while the outbox is full and new events wait.", registry=registry
        )
        self.events_uploaded = prometheus_client.Counter(
            telemetry.EVENTS_UPLOADED, "Events whose snapshot and metadata S3 confirmed.", registry=registry
        )
        self.bytes_uploaded = prometheus_client.Counter(
            telemetry.BYTES_UPLOADED, "Bytes of event objects S3 confirmed.", registry=registry
        )
        self.errors = errors if errors is not None else errors_counter(registry)
        self.dead_letters = prometheus_client.Counter(
            telemetry.OUTBOX_DEAD_LETTERS, "Events the sink rejected for good, moved to dead-letter/.",
            registry=registry,
        )
        self.misconfigured = prometheus_client.Gauge(
            telemetry.SINK_MISCONFIGURED, "1 while the sink answers a definite no about bucket or credentials.",
            registry=registry,
        )
        # Export the outbox's kinds at 0 from the start: alerts on rate() need the series to exist.
        for kind in (*OUTBOX_ERROR_KINDS, *SINK_ERROR_KINDS):
            self.errors.labels(kind=kind)


class Outbox:
    """A size-bounded, crash-safe queue of events on disk, drained to a sink by one thread.

    `errors`: the counter to count its errors on (see `OutboxMetrics`).
    """

    def __init__(
        self,
        directory: Path,
        sink: Sink,
        max_bytes: int,
        registry: prometheus_client.CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        backoff: tuple[float, float] = (0.5, 60.0),
        rng: random.Random | None = None,
        lock_timeout: float = 30.0,
        errors: prometheus_client.Counter | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.sink = sink
        self.max_bytes = max_bytes
        self.metrics = OutboxMetrics(registry, errors)
        self._clock = clock
        self._backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self._entries_dir = self.directory / "entries"
        self._tmp_dir = self.directory / "tmp"
        self._dead_dir = self.directory / "dead-letter"
        self._rejections: dict[int, int] = {}  # seq -> definite rejections so far (uploader thread only)
        self._refusal: SinkRefusal | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._index: dict[int, _Indexed] = {}
        self._heap: list[int] = []  # seqs, lazily pruned of uploaded ones
        self._committed_bytes = 0
        self._reserved_bytes = 0  # puts writing right now
        self._next_seq = 0
        self._full_since: float | None = None  # a full episode, for the log
        self._refused_size = 0  # size of the last event refused for room (0: none waiting)
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd = self._lock_directory(lock_timeout)
        self._recover()
        self.metrics.depth.set_function(self.events_waiting)
        self.metrics.bytes.set_function(self.bytes_waiting)
        self.metrics.oldest_age.set_function(self.oldest_age_seconds)
        self.metrics.full.set(0)

    # ------------------------------------------------------------------ producer side

    def put(self, key_base: str, metadata_json: bytes, snapshot_jpeg: bytes, timeout: float | None = None) -> bool:
        """Write one event durably; True once it is on disk. Blocks while the outbox is full.

        Returns False (nothing written) if the outbox is closing or `timeout` passed while full.
        Raises `OutboxDiskFullError` on ENOSPC, `OutboxEntryTooLargeError` for an event bigger
        than the bound, `OutboxError` for other write failures, ValueError for a bad key.
        """
        check_key_fits(check_key(key_base + ".json"))
        created = self._clock()
        data = encode_entry(key_base, metadata_json, snapshot_jpeg, created)
        return self._commit(key_base, data, created, timeout, ENTRY_EVENT)

    def put_object(self, key: str, body: bytes, content_type: str, timeout: float | None = None) -> bool:
        """Write one object durably, to be uploaded at `key` after everything put before it.

        Same contract as `put` (blocks while full; False on close or timeout; the same errors).
        """
        check_key_fits(check_key(key))
        created = self._clock()
        data = encode_entry(key, body, b"", created, ENTRY_OBJECT, content_type)
        return self._commit(key, data, created, timeout, ENTRY_OBJECT)

    def _commit(self, key_base: str, data: bytes, created: float, timeout: float | None, kind: str) -> bool:
        """Reserve room for an encoded entry, write it durably and queue it."""
        if len(data) > self.max_bytes:
            raise OutboxEntryTooLargeError(
                f"event {key_base} is {len(data)} bytes, more than the outbox bound of {self.max_bytes}"
            )
        seq = self._reserve(len(data), key_base, timeout)
        if seq is None:
            return False
        path = self._entries_dir / f"{seq:016d}-{int(created * 1000):013d}.{_SUFFIX[kind]}"
        try:
            self._write_durably(path, data)
        except OSError as error:
            with self._changed:
                self._reserved_bytes -= len(data)
                self._update_full_state()
                self._changed.notify_all()
            if error.errno == errno.ENOSPC:
                self.metrics.errors.labels(kind=KIND_DISK_FULL).inc()
                log.error("outbox disk full: event not accepted",
                          extra={"fields": {"key": key_base, "error": str(error)}})
                raise OutboxDiskFullError(
                    f"outbox disk full at {self.directory}: event {key_base} not accepted"
                ) from error
            self.metrics.errors.labels(kind=KIND_OUTBOX_WRITE).inc()
            log.error("outbox write failed: event not accepted",
                      extra={"fields": {"key": key_base, "error": str(error)}})
            raise OutboxError(f"cannot write event {key_base} to {self.directory}: {error}") from error
        with self._changed:
            self._reserved_bytes -= len(data)
            self._add(_Indexed(seq, path, len(data), created, kind == ENTRY_EVENT))
            self._changed.notify_all()
        return True

    def _reserve(self, size: int, key_base: str, timeout: float | None) -> int | None:
        """Wait for room for `size` bytes; the entry's sequence number, or None on close/timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._closing and self._used_bytes() + size > self.max_bytes:
                self._mark_full(size, key_base)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining)
            if self._closing:
                return None
            self._reserved_bytes += size
            self._update_full_state()
            seq = self._next_seq
            self._next_seq += 1
            return seq

    def _used_bytes(self) -> int:
        return self._committed_bytes + self._reserved_bytes

    def _mark_full(self, size: int, key_base: str) -> None:
        """A put found no room: raise the gauge, and log loudly once per full episode."""
        self._refused_size = size
        self.metrics.full.set(1)
        if self._full_since is None:
            self._full_since = time.monotonic()
            log.error(
                "OUTBOX FULL: new events wait for S3 (nothing is dropped)",
                extra={"fields": {"events": len(self._index), "bytes": self._committed_bytes,
                                  "maxBytes": self.max_bytes, "key": key_base}},
            )

    def _update_full_state(self) -> None:
        """After space changed: clear the gauge once the refused event fits, end the episode at half full.

        The gauge follows the refusals exactly; the log episode ends only at half the bound, so an
        outbox hovering at its limit says "full" once rather than on every event.
        """
        if self._refused_size and self._used_bytes() + self._refused_size <= self.max_bytes:
            self._refused_size = 0
            self.metrics.full.set(0)
        if self._full_since is not None and self._used_bytes() <= self.max_bytes // 2:
            log.warning("outbox has room again",
                        extra={"fields": {"fullSeconds": round(time.monotonic() - self._full_since, 1)}})
            self._full_since = None

    def _write_durably(self, path: Path, data: bytes) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir, prefix=path.stem + "-", suffix=".part")
        os.close(fd)
        replace_durably(path, data, Path(tmp_name))

    # ------------------------------------------------------------------ state

    def depth(self) -> int:
        """Entries waiting on disk (events and objects)."""
        with self._lock:
            return len(self._index)

    def events_waiting(self) -> int:
        """Events waiting on disk (what the events gauge shows; objects left out)."""
        with self._lock:
            return sum(1 for entry in self._index.values() if entry.event)

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the outbox to be empty; True if it is (woken by the last upload)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def sink_refusal(self) -> SinkRefusal | None:
        """Since when the sink has answered a definite no about bucket or credentials (None: it has not)."""
        return self._refusal

    def bytes_waiting(self) -> int:
        """Bytes of entry files waiting on disk."""
        with self._lock:
            return self._committed_bytes

    def oldest_age_seconds(self) -> float:
        """Age of the oldest waiting event (0 when empty)."""
        with self._lock:
            head = self._head()
            return 0.0 if head is None else max(0.0, self._clock() - head.created)

    def _head(self) -> _Indexed | None:
        while self._heap and self._heap[0] not in self._index:
            heapq.heappop(self._heap)
        return self._index[self._heap[0]] if self._heap else None

    def _add(self, entry: _Indexed) -> None:
        self._index[entry.seq] = entry
        heapq.heappush(self._heap, entry.seq)
        self._committed_bytes += entry.size

    def _remove(self, entry: _Indexed) -> None:
        if self._index.pop(entry.seq, None) is not None:
            self._committed_bytes -= entry.size
            self._update_full_state()
            self._changed.notify_all()

    # ------------------------------------------------------------------ recovery

    def _lock_directory(self, timeout: float) -> int:
        """Hold an exclusive lock on the directory for this outbox's life.

        Two workers on one state folder (a pod replaced while the old one still flushes) would
        discard each other's writes in progress; the second waits up to `timeout` s, then refuses.
        The kernel drops the lock when the process dies, so a crash never leaves it stale.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise OutboxLockedError(
                        f"outbox {self.directory} is in use by another process (waited {timeout:.0f} s)"
                    ) from None
                time.sleep(0.1)

    def _recover(self) -> None:
        """Rebuild the index from the directory; discard writes a crash interrupted."""
        self._entries_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        partial = 0
        for leftover in self._tmp_dir.iterdir():
            leftover.unlink()
            partial += 1
        if partial:
            self.metrics.errors.labels(kind=KIND_PARTIAL).inc(partial)
            log.warning("outbox: discarded partial writes left by a crash (never acknowledged)",
                        extra={"fields": {"partial": partial}})
            fsync_directory(self._tmp_dir)
        for path in self._entries_dir.iterdir():
            match = _ENTRY_NAME.match(path.name)
            if not match:
                self._discard(path, "not an outbox entry name")
                continue
            self._add(_Indexed(int(match[1]), path, path.stat().st_size, int(match[2]) / 1000, match[3] == "evt"))
            self._next_seq = max(self._next_seq, int(match[1]) + 1)
        if self._index:
            log.info(
                "outbox: resuming",
                extra={"fields": {"events": len(self._index), "bytes": self._committed_bytes,
                                  "directory": str(self.directory)}},
            )

    def _discard(self, path: Path, why: str) -> None:
        log.error("outbox: discarding corrupt entry", extra={"fields": {"entry": path.name, "why": why}})
        path.unlink(missing_ok=True)
        self.metrics.errors.labels(kind=KIND_CORRUPT).inc()

    # ------------------------------------------------------------------ uploader

    def start(self) -> None:
        """Start the uploader thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="outbox-uploader", daemon=True)
        self._thread.start()

    def close(self, flush_timeout: float) -> None:
        """Refuse new events, try to upload what is waiting for up to `flush_timeout` s, stop.

        Whatever is not uploaded stays on disk for the next start.
        """
        deadline = time.monotonic() + flush_timeout
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            while self._thread is not None and self._index and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            self._stop.set()
            self._changed.notify_all()
        self.metrics.full.set(0)
        if self._thread is not None:
            # An upload in flight finishes or times out on its own; the thread is a daemon.
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
            if self._thread.is_alive():
                return  # keep the directory lock: the thread may still delete an entry
            self._thread = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the directory lock
            self._lock_fd = -1

    def _run(self) -> None:
        failures = 0
        outage_started: float | None = None
        last_report = 0.0
        while not self._stop.is_set():
            with self._changed:
                head = self._head()
                if head is None:
                    self._changed.wait(timeout=1.0)
                    continue
            try:
                self._upload(head)
            except SinkError as error:
                self.metrics.errors.labels(kind=error.kind).inc()
                self._judge(head, error)
                if error.verdict == REJECTED and head.seq not in self._index:
                    continue  # dead-lettered: the next event goes at once
                now = time.monotonic()
                if outage_started is None:
                    outage_started, last_report = now, now
                    log.error(f"outbox: upload failed ({error.kind}), retrying with backoff",
                              extra={"fields": {"kind": error.kind, "error": str(error)}})
                elif now - last_report >= 60.0:
                    last_report = now
                    log.error(
                        f"outbox: still failing ({error.kind})",
                        extra={"fields": {"attempts": failures + 1, "seconds": round(now - outage_started),
                                          "kind": error.kind, "error": str(error)}},
                    )
                self._stop.wait(backoff_delay(failures, *self._backoff, self._rng))
                failures += 1
                continue
            except Exception as error:  # a sink bug must not kill the uploader; count and back off
                self.metrics.errors.labels(kind=KIND_UPLOAD_BUG).inc()
                log.exception("outbox: unexpected upload failure", extra={"fields": {"error": str(error)}})
                self._stop.wait(backoff_delay(failures, *self._backoff, self._rng))
                failures += 1
                continue
            self._refusal = None
            self.metrics.misconfigured.set(0)
            if outage_started is not None:
                log.warning(
                    "outbox: S3 confirmed uploads again",
                    extra={"fields": {"failedAttempts": failures,
                                      "seconds": round(time.monotonic() - outage_started, 1)}},
                )
            failures, outage_started = 0, None

    def _judge(self, entry: _Indexed, error: SinkError) -> None:
        """Remember a definite no: about the configuration (for the worker), or about this event (dead-letter)."""
        if error.verdict == MISCONFIGURED:
            if self._refusal is None:
                self._refusal = SinkRefusal(time.monotonic(), str(error))
            self.metrics.misconfigured.set(1)
        if error.verdict != REJECTED:
            return
        self._rejections[entry.seq] = self._rejections.get(entry.seq, 0) + 1
        if self._rejections[entry.seq] >= MAX_REJECTIONS:
            self._dead_letter(entry, str(error))

    def _dead_letter(self, entry: _Indexed, why: str) -> None:
        """Move an entry the sink rejected for good out of the way, with the reason beside it.

        If the disk refuses the move, the entry stays at the head and is tried again after the back-off.
        """
        target = self._dead_dir / entry.path.name
        try:
            self._dead_dir.mkdir(exist_ok=True)
            (self._dead_dir / f"{entry.path.name}.txt").write_text(f"{why}\n")
            os.replace(entry.path, target)
            fsync_directory(self._dead_dir)
            fsync_directory(self._entries_dir)
        except OSError as error:
            self.metrics.errors.labels(kind=KIND_OUTBOX_WRITE).inc()
            log.error("outbox: cannot move a rejected event to dead-letter; it is tried again",
                      extra={"fields": {"error": str(error)}})
            return
        with self._changed:
            self._remove(entry)
        self._rejections.pop(entry.seq, None)
        self.metrics.dead_letters.inc()
        log.error(f"outbox: event moved to dead-letter: {why}",
                  extra={"fields": {"rejections": MAX_REJECTIONS, "entry": str(target), "why": why}})

    def _upload(self, indexed: _Indexed) -> None:
        try:
            entry = decode_entry(indexed.path.read_bytes())
        except (CorruptEntryError, FileNotFoundError) as error:  # damaged, or deleted by hand
            with self._changed:
                self._remove(indexed)
            self._discard(indexed.path, str(error))
            return
        if entry.kind == ENTRY_OBJECT:
            self.sink.put_object(entry.key_base, entry.metadata_json, entry.content_type)
        else:
            # JPEG first, JSON last: a JSON in the bucket implies its snapshot is there too.
            self.sink.put_object(entry.key_base + ".jpg", entry.snapshot_jpeg, JPEG_CONTENT_TYPE)
            self.sink.put_object(entry.key_base + ".json", entry.metadata_json, JSON_CONTENT_TYPE)
        # No directory fsync after the unlink: if a crash resurrects the entry, it is uploaded
        # again to the same keys, which overwrites and never duplicates.
        indexed.path.unlink(missing_ok=True)
        self._rejections.pop(indexed.seq, None)
        with self._changed:
            self._remove(indexed)
        if entry.kind == ENTRY_EVENT:
            self.metrics.events_uploaded.inc()
        self.metrics.bytes_uploaded.inc(len(entry.snapshot_jpeg) + len(entry.metadata_json))
