"""The event index: one small JSON object per job, node and hour of wall time. Pure.

Event keys carry no time, so "last night at the lobby" would otherwise mean reading every event
document in the bucket. The index adds, beside the unchanged event keys, one object per
(namespace, job, node, UTC hour) that lists that hour's event summaries:

    <prefix>/_index/v1/<YYYY-MM-DD>/<HH>/<namespace>/<job>/<node>.json

The time comes first, so one listing of `<day>/<hour>/` finds every node that saw something in
that hour (fleet-wide), and `<day>/<hour>/<namespace>/<job>/` the nodes of one site. `_index`
can never be a namespace (Kubernetes names start with a letter or digit), so it never collides
with event keys. An event belongs to the hour of its `wallTime.start`; events without a wall
time (the container gave no duration) are not in the index. Every part is deterministic: the
same events give byte-for-byte the same index objects, so rewriting one is an idempotent overwrite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

INDEX_SCHEMA_VERSION = 1
INDEX_FOLDER = "_index/v1"
HOUR = timedelta(hours=1)


class IndexFormatError(ValueError):
    """An index object or event document this version cannot read."""


@dataclass(frozen=True)
class EventSummary:
    """What listing, reports and the browser need of one event, without reading its document."""

    id: str
    namespace: str
    job: str
    node: str
    cls: str
    start: str | None  # wallTime.start (RFC 3339, UTC, milliseconds), None when unknown
    end: str | None
    peak: float
    frames: int
    source: str  # the video file, relative to the input folder
    document_key: str  # the event's JSON object
    snapshot_key: str  # the event's JPEG object

    @property
    def site(self) -> str:
        """The site an event belongs to: its InferenceJob (one job per site)."""
        return f"{self.namespace}/{self.job}"


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as written in event documents ('...Z') into an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def summary_from_document(document: dict, document_key: str) -> EventSummary:
    """The summary of one event document (schemaVersion 1, docs/events.md)."""
    if document.get("schemaVersion") != 1:
        raise IndexFormatError(f"{document_key}: event schemaVersion {document.get('schemaVersion')!r} is not 1")
    try:
        return EventSummary(
            id=document["id"],
            namespace=document["job"]["namespace"],
            job=document["job"]["name"],
            node=document["node"],
            cls=document["class"],
            start=document["wallTime"]["start"],
            end=document["wallTime"]["end"],
            peak=float(document["confidence"]["peak"]),
            frames=int(document["frames"]),
            source=document["source"]["path"],
            document_key=document_key,
            snapshot_key=document["snapshot"]["key"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{document_key}: not an event document: missing or bad {exc}") from None


def hour_of(summary: EventSummary) -> datetime | None:
    """The UTC hour an event is indexed under (None: no wall time, not indexed)."""
    if summary.start is None:
        return None
    return parse_time(summary.start).replace(minute=0, second=0, microsecond=0)


def hour_folder(prefix: str, hour: datetime) -> str:
    """`<prefix>/_index/v1/<YYYY-MM-DD>/<HH>/`: every index object of one hour is under it."""
    return join_key(prefix, INDEX_FOLDER, hour.strftime("%Y-%m-%d/%H")) + "/"


def index_key(prefix: str, hour: datetime, namespace: str, job: str, node: str) -> str:
    """The key of one node's index object for one hour."""
    return f"{hour_folder(prefix, hour)}{namespace}/{job}/{node}.json"


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """The UTC hours that overlap [since, until)."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < until:
        hours.append(hour)
        hour += HOUR
    return hours


def encode_index(hour: datetime, namespace: str, job: str, node: str, events: Iterable[EventSummary]) -> bytes:
    """One index object: that hour's events of one node, sorted by start then id, deduplicated by id."""
    unique = {event.id: event for event in events}
    entries = [
        {
            "id": event.id,
            "class": event.cls,
            "start": event.start,
            "end": event.end,
            "peak": event.peak,
            "frames": event.frames,
            "source": event.source,
            "document": event.document_key,
            "snapshot": event.snapshot_key,
        }
        for event in sorted(unique.values(), key=lambda event: (event.start or "", event.id))
    ]
    body = {
        "schemaVersion": INDEX_SCHEMA_VERSION,
        "hour": hour.strftime("%Y-%m-%dT%H:00:00Z"),
        "namespace": namespace,
        "job": job,
        "node": node,
        "events": entries,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_index(data: bytes, key: str) -> list[EventSummary]:
    """The event summaries of one index object; `IndexFormatError` when it is not one we know."""
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{key}: not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("schemaVersion") != INDEX_SCHEMA_VERSION:
        raise IndexFormatError(f"{key}: not an index object of schemaVersion {INDEX_SCHEMA_VERSION}")
    try:
        where = {"namespace": body["namespace"], "job": body["job"], "node": body["node"]}
        return [
            EventSummary(
                id=entry["id"],
                cls=entry["class"],
                start=entry["start"],
                end=entry["end"],
                peak=float(entry["peak"]),
                frames=int(entry["frames"]),
                source=entry["source"],
                document_key=entry["document"],
                snapshot_key=entry["snapshot"],
                **where,
            )
            for entry in body["events"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{key}: index object missing or bad {exc}") from None


def group_by_index_key(prefix: str, events: Iterable[EventSummary]) -> dict[str, tuple[datetime, list[EventSummary]]]:
    """Events grouped by the index object they belong in (events without wall time are left out)."""
    groups: dict[str, tuple[datetime, list[EventSummary]]] = {}
    for event in events:
        hour = hour_of(event)
        if hour is not None:
            key = index_key(prefix, hour, event.namespace, event.job, event.node)
            groups.setdefault(key, (hour, []))[1].append(event)
    return groups


def summary_as_dict(summary: EventSummary) -> dict:
    """A summary as a plain JSON-ready dict (`class`, not the Python-safe `cls`)."""
    data = asdict(summary)
    data["class"] = data.pop("cls")
    return data


def join_key(*parts: str) -> str:
    """Key parts joined by '/', empty parts (an empty prefix) left out."""
    return "/".join(part.strip("/") for part in parts if part.strip("/"))
