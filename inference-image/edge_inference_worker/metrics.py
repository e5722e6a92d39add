"""The worker's Prometheus metrics, on a registry of its own (names shared with the operator in
`edge_inference_api.telemetry`; the outbox registers its own gauges on the same registry, and
counts its errors on the worker's errors counter)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge_inference_api import telemetry
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Stage timings are for people (dashboards, benchmarks); the operator does not read them.
STAGE_SECONDS = telemetry.PREFIX + "stage_seconds"
INFERENCE_SECONDS = telemetry.PREFIX + "inference_seconds"
DECODE_SECONDS = telemetry.PREFIX + "decode_seconds"
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class StageTiming:
    """The wall time of one `WorkerMetrics.stage` block."""

    seconds: float = 0.0


def errors_counter(registry: CollectorRegistry) -> Counter:
    """The errors-by-kind counter on `registry` (the `kind` label says which part failed and how)."""
    return Counter(telemetry.ERRORS, "Errors by kind.", ["kind"], registry=registry)


class WorkerMetrics:
    """Every metric the pipeline updates, and THE errors-by-kind counter of the worker (the outbox counts on it too)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.errors = errors_counter(registry)
        self.files = Counter(telemetry.FILES, "Video files by outcome.", ["outcome"], registry=registry)
        self.frames_decoded = Counter(telemetry.FRAMES_DECODED, "Frames decoded.", registry=registry)
        self.frames_analysed = Counter(
            telemetry.FRAMES_ANALYSED, "Sampled frames run through the detector.", registry=registry
        )
        self.frames_skipped_motion = Counter(
            telemetry.FRAMES_SKIPPED_MOTION, "Sampled frames skipped because nothing moved.", registry=registry
        )
        self.events = Counter(telemetry.EVENTS, "Events produced, by class.", ["class"], registry=registry)
        self.bytes_scanned = Counter(telemetry.BYTES_SCANNED, "Bytes of video files finished.", registry=registry)
        self.heartbeat = Gauge(telemetry.HEARTBEAT, "Unix time of the worker's last loop.", registry=registry)
        self.batch_complete = Gauge(
            telemetry.BATCH_COMPLETE, "1 once a Batch worker has finished every file.", registry=registry
        )
        self.inference_seconds = Histogram(
            INFERENCE_SECONDS, "Detector time per forward pass.", buckets=_FAST_BUCKETS, registry=registry
        )
        self.decode_seconds = Histogram(
            DECODE_SECONDS, "Decode time per sampled frame.", buckets=_FAST_BUCKETS, registry=registry
        )
        self.stage_seconds = Histogram(
            STAGE_SECONDS, "Time per sampled frame in each pipeline stage.", ["stage"], buckets=_FAST_BUCKETS,
            registry=registry,
        )
        self.beat()

    @contextmanager
    def stage(self, name: str, frames: int = 1) -> Iterator[StageTiming]:
        """Time the block into `stage_seconds{stage=name}`, per frame over `frames` (as ultralytics' Profile).

        The timing is observed only when the block completes; its `seconds` are there after the block.
        """
        timing = StageTiming()
        started = time.perf_counter()
        yield timing
        timing.seconds = time.perf_counter() - started
        self.stage_seconds.labels(stage=name).observe(timing.seconds / frames)

    def beat(self) -> None:
        """The worker is alive (liveness reads this)."""
        self.heartbeat.set(time.time())
