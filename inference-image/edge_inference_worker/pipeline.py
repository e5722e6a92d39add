"""One video file through the stages: decode -> motion gate -> detect -> group -> snapshot -> outbox.

Each stage is a generator or a call timed into `stage_seconds`; frames stream through one batch
at a time and never pile up. Batches are aligned to absolute sample indices (`index //
batch_size`), and a checkpoint is only taken between batches while no event is open, so a run
resumed from any checkpoint makes exactly the decisions an uninterrupted run makes.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
from edge_inference_api.models import WorkerConfig

from .backoff import backoff_delay
from .decode import DecodeError, SampledFrame, VideoInfo, VideoReader
from .detector import Detector
from .event_document import ModelInfo, SourceFile, encode_document, event_document, key_base
from .events import Detection, Event, EventGrouper, Interest
from .files import VideoFile
from .httpserver import HealthState
from .indexer import EventIndexWriter
from .ledger import Ledger
from .metrics import WorkerMetrics
from .motion import MotionGate
from .outbox import OutboxEntryTooLargeError, OutboxError
from .outcomes import DONE, EMPTY, FAILED, TRUNCATED, UNREADABLE, VANISHED
from .snapshot import render_snapshot
from .stationary import StationaryTracker
from .streams import ReadAhead, ReadAheadLimit, aligned_batches, timed
from .webhook import Notifier

log = logging.getLogger(__name__)

# A checkpoint at most every this many seconds of video (and only while no event is open).
CHECKPOINT_VIDEO_SECONDS = 10.0
PROGRESS_LOG_SECONDS = 10.0
# How long one blocking outbox write waits before the loop beats the heartbeat and checks for stop.
OUTBOX_WAIT_SECONDS = 5.0
# (base, cap) in seconds of `retry_delay`, the back-off of writes to the node's disk.
RETRY_BACKOFF = (0.5, 30.0)
# Frames decoded ahead of the detector: two batches (the next decodes during this one). With motion
# gating, far more: decoding runs on through an event's forward passes, and the static stretch after
# it is then read from the buffer. READ_AHEAD_BYTES is for all the frames the pipeline holds: those
# read ahead, counted as they are held (the decoder's planes in their real format, the BGR image once
# converted), and FRAMES_HELD_ELSEWHERE frames' worth at the size of the first (the decoder's reference
# and reordering pictures and its tables, the BGR images being detected, kept as an event's best frame
# or drawn as a snapshot: measured about 18 4:2:0 frames at 1080p). So larger frames do not grow the
# total (docs/benchmarks.md, "Real cameras"). The gated speed-up grows with the read-ahead up to 256
# frames (docs/benchmarks.md, "Motion gating", for the measured table).
READ_AHEAD_BATCHES = 2
READ_AHEAD_BYTES = 64 * 2**20
READ_AHEAD_GATED_FRAMES = (8, 256)
FRAMES_HELD_ELSEWHERE = 18
# A snapshot too big for the outbox is re-encoded once at this quality before giving up on it.
FALLBACK_JPEG_QUALITY = 40

KIND_STATE_WRITE = "state_write"
KIND_EVENT_TOO_LARGE = "event_too_large"
KIND_PIPELINE = "pipeline"

T = TypeVar("T")
# The jitter of `retry_delay`: no seed, as workers that failed together should not retry in step.
_JITTER = random.Random()


class OutboxWriter(Protocol):
    """Where the pipeline puts events: the worker's `Outbox`."""

    def put(self, key_base: str, metadata_json: bytes, snapshot_jpeg: bytes, timeout: float | None = None) -> bool: ...


@dataclass
class Services:
    """What the pipeline works with; the worker builds these once."""

    config: WorkerConfig
    detector: Detector
    model: ModelInfo
    outbox: OutboxWriter
    ledger: Ledger
    metrics: WorkerMetrics
    health: HealthState
    stop: threading.Event
    index: EventIndexWriter | None = None  # the event index's records (None: no index written)
    notifier: Notifier | None = None  # the job's webhook (None: no webhook)

    def beat(self) -> None:
        """The worker's one heartbeat: the metric liveness alerts read and the /healthz probe."""
        self.metrics.beat()
        self.health.beat()


@dataclass
class FileResult:
    outcome: str | None  # None: interrupted by stop, nothing final recorded
    reason: str = ""
    events: int = 0
    frames: int = 0
    seconds: float = 0.0  # wall time spent on the file


@dataclass
class _Analysed:
    frame: SampledFrame
    detections: list[Detection] | None  # None: skipped by the motion gate
    all_detections: list[Detection] = field(default_factory=list)  # incl. blur-only classes


class Stopped(Exception):
    """The stop event was set while waiting; unwinds to the file loop without recording anything."""


def read_ahead_limit(batch_size: int, gated: bool) -> ReadAheadLimit:
    """The decoder's lead over the detector (see READ_AHEAD_BATCHES); always at least one batch."""
    batches = READ_AHEAD_BATCHES * batch_size
    if not gated:
        return ReadAheadLimit(READ_AHEAD_BYTES, batch_size, batches, FRAMES_HELD_ELSEWHERE)
    lowest, highest = READ_AHEAD_GATED_FRAMES
    return ReadAheadLimit(READ_AHEAD_BYTES, max(lowest, batch_size), max(highest, batches), FRAMES_HELD_ELSEWHERE)


def with_images(frames: Iterable[SampledFrame]) -> Iterator[SampledFrame]:
    """Frames with their BGR image converted (on the read-ahead thread, when every frame is detected)."""
    for frame in frames:
        _ = frame.image
        yield frame


def retry_until_done(services: Services, what: str, kind: str, action: Callable[[], T]) -> T:
    """Run a write to the node's disk until it succeeds: a full disk pauses the worker, loses nothing."""
    attempt = 0
    while True:
        try:
            return action()
        except OSError as exc:
            services.metrics.errors.labels(kind=kind).inc()
            delay = retry_delay(attempt)
            log.error(
                f"{what} failed, retrying",
                extra={"fields": {"kind": kind, "error": str(exc), "attempt": attempt + 1, "retryIn": delay}},
            )
            attempt += 1
            services.beat()
            if services.stop.wait(delay):
                raise Stopped() from None


def retry_delay(attempt: int) -> float:
    """How long a write to the node's disk waits before its next try (the worker's one back-off)."""
    return backoff_delay(attempt, *RETRY_BACKOFF, _JITTER)


class FilePipeline:
    """Processes one file; `run()` returns what happened."""

    def __init__(self, services: Services, file: VideoFile) -> None:
        self.services = services
        self.file = file
        config = services.config
        self.fps = config.sampling.fps
        self.blur = frozenset(config.events.blur_classes)
        self.interest = Interest(frozenset(config.model.classes), config.model.confidence)
        self.grouper = EventGrouper(file.file_id, config.events.min_frames, config.events.cooldown_seconds)
        self.gate = MotionGate(config.sampling.motion_threshold) if config.sampling.motion_gating else None
        events = config.events
        self.stationary = (StationaryTracker(events.stationary_seconds, events.stationary_recheck_seconds)
                           if events.stationary_seconds else None)
        self.events = 0
        self.frames = 0
        self._last_progress = time.monotonic()
        self._started = time.monotonic()
        self._checkpoint_index = 0
        self._source: SourceFile | None = None

    def run(self) -> FileResult:
        """Decode, analyse and emit the whole file (from its checkpoint); what went wrong becomes the outcome."""
        if self.file.size == 0:
            return FileResult(EMPTY, "zero-byte file")
        try:
            finished = self._read(self._resume_index())
        except FileNotFoundError:
            return FileResult(VANISHED, "file disappeared before it was opened")
        except PermissionError as exc:
            return FileResult(UNREADABLE, f"permission denied: {exc.strerror}")
        except IsADirectoryError:
            return FileResult(UNREADABLE, "not a regular file (directory)")
        except DecodeError as exc:
            if exc.outcome != TRUNCATED:
                return FileResult(exc.outcome, str(exc), self.events, self.frames)
            # Keep what was found before the damage: close the open events like an end of file.
            self._emit(self.grouper.finish())
            return FileResult(TRUNCATED, str(exc), self.events, self.frames)
        if not finished:
            return FileResult(None, "stopped", self.events, self.frames)
        self._emit(self.grouper.finish())
        return FileResult(DONE, "", self.events, self.frames)

    def _resume_index(self) -> int:
        """The first sample to analyse: the checkpoint's, at a batch boundary (0 without one)."""
        progress = self.services.ledger.get(self.file.file_id)
        # A checkpoint only holds for the same or a grown file (cameras append); a shorter one was replaced.
        start = progress.start_index(self.fps) if progress and progress.size <= self.file.size else 0
        return start - start % self.services.detector.batch_size

    def _read(self, start: int) -> bool:
        """Analyse the file from sample `start`; False if stopped."""
        with VideoReader(self.file.path) as reader:
            self._opened(reader.info, start)
            # From a checkpoint, decode one sample earlier: it is only the motion gate's reference.
            first = max(0, start - 1) if self.gate else start
            with closing(self._read_ahead(reader, first)) as samples:
                return self._analyse(self._prime_gate(samples, start) if first < start else samples)

    def _opened(self, info: VideoInfo, start: int) -> None:
        self._source = SourceFile(
            self.file.name, self.file.file_id, self.file.size, self.file.mtime_ns,
            info.duration, info.width, info.height,
        )
        self._checkpoint_index = start
        log.info(
            "file started",
            extra={"fields": {"file": self.file.name, "fileId": self.file.file_id, "codec": info.codec,
                              "width": info.width, "height": info.height, "duration": info.duration,
                              "resumeAt": start / self.fps}},
        )

    def _read_ahead(self, reader: VideoReader, first: int) -> ReadAhead[SampledFrame]:
        """The sampled frames from sample `first`, each decode timed, decoded ahead on a thread."""
        metrics = self.services.metrics
        decoded = timed(reader.samples(self.fps, first, metrics.frames_decoded), self._observe_decode)
        if self.gate is None:
            decoded = with_images(decoded)
        limit = read_ahead_limit(self.services.detector.batch_size, gated=self.gate is not None)
        return ReadAhead(decoded, limit, lambda frame: frame.nbytes)

    def _observe_decode(self, seconds: float) -> None:
        self.services.metrics.decode_seconds.observe(seconds)
        self.services.metrics.stage_seconds.labels(stage="decode").observe(seconds)

    def _prime_gate(self, samples: Iterator[SampledFrame], start: int) -> Iterator[SampledFrame]:
        """Feed the samples before `start` to the motion gate only (its reference frame), then yield the rest."""
        assert self.gate is not None
        for frame in samples:
            if frame.index < start:
                self.gate.moved(frame.luma)
                continue
            yield frame

    def _analyse(self, samples: Iterable[SampledFrame]) -> bool:
        """Run every batch; False if stopped (the last checkpoint stands)."""
        size = self.services.detector.batch_size
        for batch in aligned_batches(samples, size):
            for item in self._detect(batch):
                with self.services.metrics.stage("group"):
                    closed = self.grouper.observe(item.frame.time, self._moving(item), item)
                self._emit(closed)
            self.frames += len(batch)
            next_index = batch[-1].index + 1
            self._after_batch(next_index, size)
            if self.services.stop.is_set():
                if self._idle and next_index % size == 0:
                    self._checkpoint(next_index)
                return False
        return True

    @property
    def _idle(self) -> bool:
        """No event open or pending, no stationary object tracked: a resume from here decides the same."""
        return self.grouper.idle and (self.stationary is None or self.stationary.idle)

    def _moving(self, item: _Analysed) -> list[Detection] | None:
        """The detections that go to event grouping: those of stationary objects are held back."""
        if item.detections is None or self.stationary is None:
            return item.detections
        moving, settled = self.stationary.split(item.frame.time, item.detections)
        for cls in settled:
            self.grouper.mark_stationary(cls)
        if self.gate is not None:
            self.gate.ignore(self.stationary.boxes())
        return moving

    def _detect(self, batch: list[SampledFrame]) -> list[_Analysed]:
        """Motion gate, then one forward pass over the frames that need it."""
        wanted = self._needs_detection(batch)
        images = [f.image for f, w in zip(batch, wanted, strict=True) if w]
        found = iter(self._forward(images))
        skipped = len(batch) - len(images)
        if skipped:
            self.services.metrics.frames_skipped_motion.inc(skipped)
        out = []
        for frame, want in zip(batch, wanted, strict=True):
            if not want:
                out.append(_Analysed(frame, None))
                continue
            detections = next(found)
            out.append(_Analysed(frame, self.interest.keep(detections), detections))
        return out

    def _needs_detection(self, batch: list[SampledFrame]) -> list[bool]:
        """Per frame: something moved, an event is open, or a stationary object is due for a recheck."""
        active = not self.grouper.idle
        wanted = []
        for frame in batch:
            with self.services.metrics.stage("motion"):
                moved = self.gate.moved(frame.luma) if self.gate else True
            due = self.stationary is not None and self.stationary.recheck_due(frame.time)
            wanted.append(moved or active or due)
        return wanted

    def _forward(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """One forward pass of the detector over `images` (none: no pass)."""
        if not images:
            return []
        metrics = self.services.metrics
        with metrics.stage("detect", frames=len(images)) as timing:
            results = self.services.detector.detect(images)
        metrics.inference_seconds.observe(timing.seconds)
        metrics.frames_analysed.inc(len(images))
        return results

    def _emit(self, events: list[Event]) -> None:
        metrics = self.services.metrics
        for event in events:
            with metrics.stage("snapshot"):
                key, document, jpeg = self._render(event, self.services.config.events.snapshot_quality)
            with metrics.stage("outbox"):
                if self._put(event, key, document, jpeg):
                    self._announce(key, json.loads(document))
            metrics.events.labels(**{"class": event.cls}).inc()
            self.events += 1
            log.info(
                "event",
                extra={"fields": {"file": self.file.name, "eventId": event.event_id, "class": event.cls,
                                  "start": event.start, "end": event.end, "frames": event.frames,
                                  "peak": round(event.peak_confidence, 3), "key": key}},
            )

    def _render(self, event: Event, quality: int) -> tuple[str, bytes, bytes]:
        config = self.services.config
        best: _Analysed = event.best_frame
        jpeg, redaction = render_snapshot(
            best.frame.image,
            shown=best.detections or [],
            redacted=[d for d in best.all_detections if d.cls in self.blur],
            blur_classes=sorted(self.blur),
            style=config.events.snapshot,
            quality=quality,
        )
        key = key_base(sink_prefix(config), config.job, config.node, self.file.file_id, event.event_id)
        assert self._source is not None  # set when the file was opened, before any event
        document = event_document(
            event, self._source, self.services.model, config.job, config.node, key, config.events.snapshot, redaction
        )
        return key, encode_document(document), jpeg

    def _announce(self, key: str, document: dict) -> None:
        """An event is in the outbox: add it to its hour's index record (before any checkpoint past it), and
        queue its webhook message."""
        index = self.services.index
        if index is not None:
            retry_until_done(self.services, "event index record", KIND_STATE_WRITE,
                             lambda: index.record(document, f"{key}.json"))
        if self.services.notifier is not None:
            self.services.notifier.event(document, f"{key}.json")

    def _put(self, event: Event, key: str, document: bytes, jpeg: bytes) -> bool:
        """Hand the event to the outbox, waiting (and beating) while it is full; never drops it on a full disk.

        True once it is in the outbox; False for an event too large to store (counted and logged).
        """
        services = self.services
        attempt = 0
        while True:
            try:
                if services.outbox.put(key, document, jpeg, timeout=OUTBOX_WAIT_SECONDS):
                    return True
                if services.stop.is_set():
                    raise Stopped()
            except OutboxEntryTooLargeError:
                if len(jpeg) and attempt == 0:
                    _, document, jpeg = self._render(event, FALLBACK_JPEG_QUALITY)
                    attempt += 1
                    continue
                services.metrics.errors.labels(kind=KIND_EVENT_TOO_LARGE).inc()
                log.error("event larger than the outbox bound, not stored", extra={"fields": {"key": key}})
                return False
            except OutboxError as exc:  # disk full or write error: counted by the outbox; wait and retry
                delay = retry_delay(attempt)
                attempt += 1
                log.error("outbox write failed, retrying", extra={"fields": {"key": key, "error": str(exc)}})
                if services.stop.wait(delay):
                    raise Stopped() from None
            services.beat()

    def _after_batch(self, next_index: int, size: int) -> None:
        self.services.beat()
        video_time = next_index / self.fps
        if (
            self._idle
            and next_index % size == 0
            and video_time - self._checkpoint_index / self.fps >= CHECKPOINT_VIDEO_SECONDS
        ):
            self._checkpoint(next_index)
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_LOG_SECONDS:
            self._last_progress = now
            self._log_progress(video_time, now)

    def _log_progress(self, video_time: float, now: float) -> None:
        duration = self._source.duration if self._source else None
        log.info(
            "file progress",
            extra={"fields": {
                "file": self.file.name,
                "videoSeconds": round(video_time, 2),
                "durationSeconds": duration,
                "percent": round(100 * video_time / duration, 1) if duration else None,
                "sampledFrames": self.frames,
                "events": self.events,
                "fps": round(self.frames / max(1e-9, now - self._started), 2),
            }},
        )

    def _checkpoint(self, next_index: int) -> None:
        file = self.file
        flush_index(self.services)  # the index objects of the events before the checkpoint are queued first
        retry_until_done(
            self.services, "ledger checkpoint", KIND_STATE_WRITE,
            lambda: self.services.ledger.checkpoint(file.file_id, file.rel, file.size, next_index, self.fps),
        )
        self._checkpoint_index = next_index


def flush_index(services: Services) -> None:
    """Queue the index objects of the hours whose events changed, waiting (and beating) while the outbox is full."""
    index = services.index
    if index is None:
        return
    while True:
        try:
            if retry_until_done(services, "event index record", KIND_STATE_WRITE,
                                lambda: index.flush(OUTBOX_WAIT_SECONDS)):
                return
        except OutboxError as exc:  # disk full or write error: counted by the outbox; wait and retry
            log.error("index object not queued, retrying", extra={"fields": {"error": str(exc)}})
        services.beat()
        if services.stop.wait(RETRY_BACKOFF[0]):
            raise Stopped()


def sink_prefix(config: WorkerConfig) -> str:
    """The key prefix of the sink (empty for a folder)."""
    return getattr(config.sink, "prefix", "")


def process_file(services: Services, file: VideoFile) -> FileResult:
    """Run one file; a failure of the pipeline itself becomes the outcome `failed`, never a crash."""
    started = time.monotonic()
    try:
        result = FilePipeline(services, file).run()
        if result.outcome is not None:
            flush_index(services)  # before the file is recorded as finished
        result.seconds = time.monotonic() - started
    except Stopped:
        return FileResult(None, "stopped")
    except Exception as exc:  # a bug or a detector failure must not take the worker down with it
        services.metrics.errors.labels(kind=KIND_PIPELINE).inc()
        log.exception("file failed", extra={"fields": {"file": file.name, "error": str(exc)}})
        result = FileResult(FAILED, f"{type(exc).__name__}: {exc}")
    return result
