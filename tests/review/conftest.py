"""Fixtures of the events review tests: a real S3 server holding a small synthetic fleet's events."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from support.event_fleet import FleetEvent, fleet_events, index_objects, snapshot_jpeg, utc
from support.s3server import SeaweedS3Server, s3_server, s3_server_module  # noqa: F401 -- fixtures

PREFIX = "events"
FLEET_START = utc("2026-11-25T00:00")


@dataclass(frozen=True)
class Fleet:
    """The server, the events uploaded to it (documents, snapshots and index) and the snapshots' bytes."""

    s3: SeaweedS3Server
    events: list[FleetEvent]
    snapshots: dict[str, bytes]

    def env(self) -> dict[str, str]:
        """What the `events` commands need to reach the bucket."""
        return {**self.s3.credentials_env(), "EDGE_INFERENCE_S3_ENDPOINT": f"http://{self.s3.endpoint}"}

    @property
    def source(self) -> str:
        return f"s3://{self.s3.bucket}/{PREFIX}"


def upload_events(s3: SeaweedS3Server, events: list[FleetEvent], *, with_index: bool = True) -> dict[str, bytes]:
    """Put each event's JPEG then JSON (as the worker does), and the index objects; the JPEGs by event id."""
    client = s3.client()
    snapshots = {}
    for event in events:
        jpeg = snapshot_jpeg(f"{event.summary.cls} {event.summary.id[:6]}")
        snapshots[event.summary.id] = jpeg
        client.put_object(s3.bucket, f"{event.key}.jpg", io.BytesIO(jpeg), len(jpeg), content_type="image/jpeg")
        client.put_object(
            s3.bucket, f"{event.key}.json", io.BytesIO(event.document), len(event.document),
            content_type="application/json",
        )
    if with_index:
        for key, body in index_objects(PREFIX, events).items():
            client.put_object(s3.bucket, key, io.BytesIO(body), len(body), content_type="application/json")
    return snapshots


@pytest.fixture(scope="module")
def fleet(s3_server_module) -> Fleet:  # noqa: F811 -- the fixture imported above
    """240 events over 3 days on 3 sites of 2 nodes, with snapshots and index, in a real S3 bucket."""
    events = list(fleet_events(240, 3, 2, FLEET_START, 3, prefix=PREFIX, seed=3))
    return Fleet(s3_server_module, events, upload_events(s3_server_module, events))
