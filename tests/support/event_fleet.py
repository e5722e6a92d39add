"""A synthetic fleet's events: real event documents (the worker's own `event_document`) at known times.

Sites are InferenceJobs (`site-000` ...) in one namespace, each with some nodes; every node records
one-minute files around the clock and sees a few events in some of them. Deterministic for a seed,
so a test or the index benchmark knows exactly which events a query must return.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
from edge_inference_api.models import JobRef, SnapshotStyle
from edge_inference_worker.event_document import ModelInfo, SourceFile, encode_document, event_document, key_base
from edge_inference_worker.events import Event, event_id
from edge_inference_worker.files import file_id
from edge_inference_worker.review.index import EventSummary, encode_index, group_by_index_key, summary_from_document
from edge_inference_worker.snapshot import Redaction

CLASSES = ("person", "car", "dog", "bicycle")
MODEL = ModelInfo("synthetic-yolov5n", "0" * 64)
NAMESPACE = "fleet"


@dataclass(frozen=True)
class FleetEvent:
    """One synthetic event: its key base, its document bytes and its summary."""

    key: str
    document: bytes
    summary: EventSummary


def site_name(index: int) -> str:
    return f"site-{index:03d}"


def node_name(site: int, node: int) -> str:
    return f"{site_name(site)}-node-{node:02d}"


def fleet_events(
    total: int, sites: int, nodes_per_site: int, start: datetime, days: float, prefix: str = "events", seed: int = 1
) -> Iterator[FleetEvent]:
    """`total` events spread at random over `days` from `start`, over `sites * nodes_per_site` nodes."""
    rng = random.Random(seed)
    span = days * 86400.0
    for number in range(total):
        site, node = rng.randrange(sites), rng.randrange(nodes_per_site)
        instant = start + timedelta(seconds=rng.uniform(0, span))
        yield one_event(
            prefix, site_name(site), node_name(site, node), instant, CLASSES[rng.randrange(len(CLASSES))],
            peak=round(rng.uniform(0.3, 0.99), 4), serial=number,
        )


def one_event(
    prefix: str, job: str, node: str, instant: datetime, cls: str, peak: float, serial: int = 0,
    namespace: str = NAMESPACE,
) -> FleetEvent:
    """One event that starts at `instant` (wall time), 10 s into a one-minute file of its node."""
    file_start = instant - timedelta(seconds=10)
    rel = f"cam/{file_start.strftime('%Y-%m-%dT%H-%M-%S')}-{serial}.mp4"
    fid = file_id(rel)
    duration = 60.0
    mtime = file_start + timedelta(seconds=duration)
    source = SourceFile(rel, fid, 1_000_000, int(mtime.timestamp() * 1e9), duration, 640, 360)
    event = Event(event_id(fid, cls, 10.0), fid, cls, 10.0, 14.0, 5, peak, round(peak * 0.9, 4), 12.0,
                  (100.0, 80.0, 180.0, 260.0), None)
    job_ref = JobRef(namespace=namespace, name=job)
    key = key_base(prefix, job_ref, node, fid, event.event_id)
    document = event_document(event, source, MODEL, job_ref, node, key, SnapshotStyle.ANNOTATED, Redaction((), 0))
    return FleetEvent(key, encode_document(document), summary_from_document(document, f"{key}.json"))


def index_objects(prefix: str, events: list[FleetEvent]) -> dict[str, bytes]:
    """The index objects for these events (what the workers write), by key."""
    groups = group_by_index_key(prefix, (event.summary for event in events))
    return {
        key: encode_index(hour, group[0].namespace, group[0].job, group[0].node, group)
        for key, (hour, group) in groups.items()
    }


def snapshot_jpeg(label: str, width: int = 320, height: int = 180) -> bytes:
    """A small real JPEG with the label written on it."""
    image = np.full((height, width, 3), 60, dtype=np.uint8)
    cv2.putText(image, label, (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def utc(text: str) -> datetime:
    """'2026-11-26T22:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
