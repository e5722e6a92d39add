"""Event JSON and object keys (pure)."""

import json

from edge_inference_api.models import JobRef, SnapshotStyle
from edge_inference_worker.event_document import (
    SCHEMA_VERSION,
    ModelInfo,
    SourceFile,
    encode_document,
    event_document,
    key_base,
    wall_clock,
)
from edge_inference_worker.events import Event
from edge_inference_worker.snapshot import Redaction

JOB = JobRef(namespace="shop", name="doors")
SOURCE = SourceFile("cam1/2026-11-26T10-00.mp4", "abc123", 1000, int(1_764_151_260 * 1e9), 60.0, 640, 360)
EVENT = Event("ev1", "abc123", "person", 12.5, 20.0, 14, 0.91, 0.8, 15.0, (1.0, 2.0, 30.0, 80.0), None)


def test_key_layout():
    assert key_base("events/site-a", JOB, "node-1", "abc123", "ev1") == "events/site-a/shop/doors/node-1/abc123/ev1"
    assert key_base("", JOB, "node-1", "abc123", "ev1") == "shop/doors/node-1/abc123/ev1"
    assert key_base("/events/", JOB, "n", "f", "e") == "events/shop/doors/n/f/e"


def test_wall_clock_counts_back_from_the_mtime():
    # mtime 10:01:00 UTC is the end of a 60 s recording: video time 12.5 s is 10:00:12.5.
    assert wall_clock(SOURCE, 12.5) == "2025-11-26T10:00:12.500Z"
    unknown = SourceFile("x.mp4", "f", 1, 0, None, 1, 1)
    assert wall_clock(unknown, 1.0) is None


def test_document_has_every_documented_field():
    redaction = Redaction(classes=("person",), regions=2)
    doc = event_document(EVENT, SOURCE, ModelInfo("m", "f" * 64), JOB, "node-1", "p/k", SnapshotStyle.RAW, redaction)
    assert doc["schemaVersion"] == SCHEMA_VERSION == 1
    assert doc["id"] == "ev1" and doc["class"] == "person" and doc["node"] == "node-1"
    assert doc["source"]["path"] == "cam1/2026-11-26T10-00.mp4" and doc["source"]["fileId"] == "abc123"
    assert doc["videoTime"] == {"start": 12.5, "end": 20.0}
    assert doc["wallTime"]["start"] == "2025-11-26T10:00:12.500Z" and doc["wallTime"]["source"] == "file-mtime"
    assert doc["confidence"] == {"peak": 0.91, "mean": 0.8} and doc["frames"] == 14
    assert doc["bestFrame"] == {"videoTime": 15.0, "box": {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 80.0}}
    assert doc["model"] == {"name": "m", "sha256": "f" * 64}
    assert doc["job"] == {"namespace": "shop", "name": "doors"}
    assert doc["snapshot"]["key"] == "p/k.jpg" and doc["snapshot"]["style"] == "raw"
    assert doc["snapshot"]["redaction"] == {
        "applied": True, "classes": ["person"], "regions": 2, "method": "pixelate+gaussian"
    }


def test_encoding_is_stable_bytes():
    redaction = Redaction(classes=(), regions=0)
    args = (EVENT, SOURCE, ModelInfo("m", "0" * 64), JOB, "n", "k", SnapshotStyle.ANNOTATED, redaction)
    first, second = encode_document(event_document(*args)), encode_document(event_document(*args))
    assert first == second
    assert json.loads(first)["snapshot"]["redaction"]["applied"] is False
