"""The event JSON document (schema in docs/events.md) and the object keys. Pure.

Keys are `<prefix>/<namespace>/<job>/<node>/<file-id>/<event-id>.{jpg,json}`; every part is
deterministic, and so is the document (no processing timestamps), so re-processing a file after
a crash writes the same objects again: an overwrite, never a duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from edge_inference_api.models import JobRef, SnapshotStyle

from .events import Event
from .snapshot import Redaction

SCHEMA_VERSION = 1
WALL_CLOCK_SOURCE = "file-mtime"


@dataclass(frozen=True)
class SourceFile:
    """The video an event came from."""

    rel: str
    file_id: str
    size: int
    mtime_ns: int
    duration: float | None  # seconds, when the container says
    width: int
    height: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str


def key_base(prefix: str, job: JobRef, node: str, file_id: str, event_id: str) -> str:
    """Object key without the `.jpg`/`.json` extension; an empty prefix is left out."""
    parts = [prefix.strip("/"), job.namespace, job.name, node, file_id, event_id]
    return "/".join(part for part in parts if part)


def wall_clock(source: SourceFile, video_time: float) -> str | None:
    """Wall time of a video instant: the file's mtime is taken as the end of the recording.

    Cameras close a segment when it ends, so mtime - duration + t is the moment t was filmed
    (to within the camera's flush delay). Unknown duration: None.
    """
    if source.duration is None:
        return None
    seconds = source.mtime_ns / 1e9 - source.duration + video_time
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_document(
    event: Event,
    source: SourceFile,
    model: ModelInfo,
    job: JobRef,
    node: str,
    key: str,
    style: SnapshotStyle,
    redaction: Redaction,
) -> dict:
    """The event as the JSON object documented in docs/events.md (schemaVersion 1)."""
    x1, y1, x2, y2 = event.best_box
    return {
        "schemaVersion": SCHEMA_VERSION,
        "id": event.event_id,
        "class": event.cls,
        "source": {
            "path": source.rel,
            "fileId": source.file_id,
            "sizeBytes": source.size,
            "durationSeconds": source.duration,
            "width": source.width,
            "height": source.height,
        },
        "videoTime": {"start": round(event.start, 3), "end": round(event.end, 3)},
        "wallTime": {
            "start": wall_clock(source, event.start),
            "end": wall_clock(source, event.end),
            "source": WALL_CLOCK_SOURCE,
        },
        "confidence": {"peak": round(event.peak_confidence, 4), "mean": round(event.mean_confidence, 4)},
        "frames": event.frames,
        "stationary": event.stationary,
        "bestFrame": {"videoTime": round(event.best_time, 3), "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}},
        "model": {"name": model.name, "sha256": model.sha256},
        "job": {"namespace": job.namespace, "name": job.name},
        "node": node,
        "snapshot": {
            "key": f"{key}.jpg",
            "style": style.value,
            "redaction": {
                "applied": redaction.regions > 0,
                "classes": list(redaction.classes),
                "regions": redaction.regions,
                "method": redaction.method,
            },
        },
    }


def encode_document(document: dict) -> bytes:
    """Stable bytes: sorted keys, so the same event is byte-for-byte the same object."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
