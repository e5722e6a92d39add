"""Names of the worker's Prometheus metrics, and the compact progress report the operator reads.

The worker exposes its metrics on `WorkerConfig.metrics_port` (path /metrics, for Prometheus) and
the few figures the operator's status needs on the same port (path /progress, a ProgressReport in
JSON): pods need no write access to the Kubernetes API, and the operator reads a few hundred bytes
per node instead of parsing the whole exposition (docs/benchmarks.md, "Worker progress at fleet
scale").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

METRICS_PATH = "/metrics"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
PROGRESS_PATH = "/progress"

PREFIX = "edge_inference_"
# Counters (exposed by prometheus_client with a `_total` suffix).
FILES = PREFIX + "files"  # label outcome: done, failed, corrupt, unreadable, symlink_escape, non_video, ...
FRAMES_DECODED = PREFIX + "frames_decoded"
FRAMES_ANALYSED = PREFIX + "frames_analysed"
FRAMES_SKIPPED_MOTION = PREFIX + "frames_skipped_motion"
EVENTS = PREFIX + "events"  # label class: events opened by class
EVENTS_UPLOADED = PREFIX + "events_uploaded"
BYTES_SCANNED = PREFIX + "video_bytes_scanned"
BYTES_UPLOADED = PREFIX + "bytes_uploaded"
ERRORS = PREFIX + "errors"  # label kind
OUTBOX_DEAD_LETTERS = PREFIX + "outbox_dead_letters"  # events S3 rejected for good, kept in dead-letter/
# Gauges.
OUTBOX_DEPTH = PREFIX + "outbox_events"  # events waiting on the node's disk
OUTBOX_BYTES = PREFIX + "outbox_bytes"
OUTBOX_OLDEST_AGE = PREFIX + "outbox_oldest_age_seconds"
OUTBOX_FULL = PREFIX + "outbox_full"  # 1 while the outbox refuses new events
SINK_MISCONFIGURED = PREFIX + "sink_misconfigured"  # 1 while the sink's last answer was a definite no
HEARTBEAT = PREFIX + "heartbeat_timestamp_seconds"  # unix time of the worker's last loop
BATCH_COMPLETE = PREFIX + "batch_complete"  # 1 once a Batch worker has finished every file


class ProgressReport(BaseModel):
    """One worker's progress as the operator's status shows it: the body of GET /progress (camelCase JSON).

    Unknown keys are ignored, so a newer worker may add figures without breaking an older operator.
    """

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True)

    files_done: int = Field(0, ge=0, description="Video files finished (outcome done).")
    frames_analysed: int = Field(0, ge=0, description="Sampled frames run through the detector.")
    events_uploaded: int = Field(0, ge=0, description="Events S3 confirmed.")
    events_waiting: int = Field(0, ge=0, description="Events waiting in the node's outbox.")
    heartbeat: float | None = Field(None, description="Unix time of the worker's last loop.")
    batch_complete: bool = Field(False, description="A Batch worker has finished every file.")
    outbox_full: bool = Field(False, description="The outbox refuses new events.")
    outbox_oldest_age: float = Field(0.0, ge=0, description="Seconds the oldest waiting event has waited.")


class Sample(Protocol):
    """A Prometheus sample as prometheus_client yields it (name, labels, value)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def value(self) -> float: ...


def progress_from_samples(samples: Iterable[Sample]) -> ProgressReport | None:
    """The ProgressReport in a worker's Prometheus samples; None when they are not a worker's (no heartbeat, no frames).

    The one mapping from metric names to progress: the worker's /progress and the operator's
    reading of /metrics both use it.
    """
    values: dict[str, float] = {}
    files_done = 0.0
    for sample in samples:
        if sample.name == FILES + "_total":
            files_done += sample.value if sample.labels.get("outcome") == "done" else 0.0
        elif not sample.labels:
            values[sample.name] = sample.value
    if HEARTBEAT not in values and FRAMES_ANALYSED + "_total" not in values:
        return None
    return ProgressReport(
        files_done=int(files_done),
        frames_analysed=int(values.get(FRAMES_ANALYSED + "_total", 0)),
        events_uploaded=int(values.get(EVENTS_UPLOADED + "_total", 0)),
        events_waiting=int(values.get(OUTBOX_DEPTH, 0)),
        heartbeat=values.get(HEARTBEAT),
        batch_complete=values.get(BATCH_COMPLETE, 0) >= 1,
        outbox_full=values.get(OUTBOX_FULL, 0) >= 1,
        outbox_oldest_age=max(values.get(OUTBOX_OLDEST_AGE, 0.0), 0.0),
    )
