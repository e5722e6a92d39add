"""Which events match a query, found through the index or by a full listing. Both give one answer.

A query with a time range reads the index (docs/events.md, "The event index"): one listing per
hour of the range, narrowed to the site when one is given, and one small object per node that
saw something in that hour. Without a time range, or on a bucket that has no index yet, the
query lists the event documents under the narrowest prefix the query allows and reads each one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from .index import (
    INDEX_FOLDER,
    EventSummary,
    IndexFormatError,
    decode_index,
    encode_index,
    group_by_index_key,
    hour_folder,
    hours_between,
    join_key,
    parse_time,
    summary_from_document,
)
from .store import EventStore

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class EventQuery:
    """Filters over events; `None` or empty means any."""

    namespace: str | None = None
    job: str | None = None
    node: str | None = None
    classes: frozenset[str] = field(default_factory=frozenset)
    since: datetime | None = None  # events that start at or after this instant
    until: datetime | None = None  # ... and before this one
    min_confidence: float = 0.0

    @property
    def has_time_range(self) -> bool:
        """True when both ends are known, the only case the index can answer."""
        return self.since is not None and self.until is not None

    def matches(self, event: EventSummary) -> bool:
        """Whether one event passes every filter."""
        return (
            self.matches_place(event.namespace, event.job, event.node)
            and (not self.classes or event.cls in self.classes)
            and event.peak >= self.min_confidence
            and self._matches_time(event.start)
        )

    def matches_place(self, namespace: str, job: str, node: str) -> bool:
        """Whether a namespace, job and node pass the place filters."""
        wanted = ((self.namespace, namespace), (self.job, job), (self.node, node))
        return all(want is None or want == value for want, value in wanted)

    def _matches_time(self, start: str | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if start is None:
            return False
        instant = parse_time(start)
        return (self.since is None or instant >= self.since) and (self.until is None or instant < self.until)


class QueryError(Exception):
    """A query that cannot be answered as asked; the message is the one line the user sees."""


def find_events(store: EventStore, query: EventQuery, *, use_index: bool | None = None) -> list[EventSummary]:
    """The matching events, sorted by start, node and id.

    `use_index`: None picks the index when the query has a time range and the bucket has an
    index; True insists on it; False always lists the event documents.
    """
    if use_index is None:
        use_index = query.has_time_range and has_index(store)
    if use_index:
        if not query.has_time_range:
            raise QueryError("the index answers queries with a time range only (--since and --until, or --night)")
        events = list(indexed_events(store, query))
    else:
        events = list(scanned_events(store, query))
    return sorted(events, key=lambda event: (event.start or "", event.node, event.id))


def has_index(store: EventStore) -> bool:
    """Whether any index object exists (one listing that stops at the first key)."""
    return next(iter(store.keys(join_key(store.prefix, INDEX_FOLDER) + "/")), None) is not None


def indexed_events(store: EventStore, query: EventQuery) -> Iterator[EventSummary]:
    """Matching events read from the index: one listing per hour of the range, one object per node-hour."""
    assert query.since is not None and query.until is not None
    for hour in hours_between(query.since, query.until):
        folder = hour_folder(store.prefix, hour)
        for key in store.keys(folder + _site_folder(query)):
            place = key[len(folder) :].removesuffix(".json").split("/")
            if len(place) != 3 or not query.matches_place(*place):
                continue
            yield from (event for event in decode_index(store.get(key), key) if query.matches(event))


def scanned_events(store: EventStore, query: EventQuery) -> Iterator[EventSummary]:
    """Matching events found by listing every event document under the query's place and reading it."""
    index_root = join_key(store.prefix, INDEX_FOLDER) + "/"
    for key in store.keys(scan_prefix(store.prefix, query)):
        if key.endswith(".json") and not key.startswith(index_root):
            event = summary_from_document(_json(store.get(key), key), key)
            if query.matches(event):
                yield event


def scan_prefix(prefix: str, query: EventQuery) -> str:
    """The narrowest listing prefix for a query: `<prefix>/<namespace>/<job>/<node>/` as far as given."""
    parts = [prefix]
    for part in (query.namespace, query.job, query.node):
        if part is None:
            break
        parts.append(part)
    joined = join_key(*parts)
    return joined + "/" if joined else ""


def rebuild_index(store: EventStore, query: EventQuery) -> int:
    """Write the index objects for every event under the query's place (a backfill); returns their count.

    Only namespace, job and node may narrow it: an index object must list all of its node-hour.
    """
    if query.classes or query.since or query.until or query.min_confidence:
        raise QueryError("reindex takes only --namespace, --job and --node (an index object holds a whole hour)")
    groups = group_by_index_key(store.prefix, scanned_events(store, query))
    for key, (hour, events) in sorted(groups.items()):
        first = events[0]
        store.put(key, encode_index(hour, first.namespace, first.job, first.node, events), JSON_CONTENT_TYPE)
    return len(groups)


def read_document(store: EventStore, event: EventSummary) -> dict:
    """The full JSON document of one event."""
    return _json(store.get(event.document_key), event.document_key)


def _site_folder(query: EventQuery) -> str:
    """`<namespace>/<job>/` below an index hour, as far as the query names them."""
    if query.namespace is None:
        return ""
    return f"{query.namespace}/" if query.job is None else f"{query.namespace}/{query.job}/"


def _json(data: bytes, key: str) -> dict:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{key}: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise IndexFormatError(f"{key}: not a JSON object")
    return document

