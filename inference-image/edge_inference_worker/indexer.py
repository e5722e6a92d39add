"""The worker's side of the event index: this node's index objects, written through the outbox.

Each event the outbox accepted is added to its hour's record on the state disk
(`<stateDir>/index/<YYYY-MM-DDTHH>.json`: the hour's summaries and whether the bucket's copy is
behind). `flush()` puts the index object of every hour that is behind into the outbox, after the
events themselves, so the outbox uploads an index object only after the events it lists. The
record is written durably before the pipeline may take a checkpoint past the event, and `flush()`
runs before a checkpoint and before a file is marked finished; so after a crash an event is either
in its record already or found again from the checkpoint, and an hour left behind is flushed on the
next call. Object layout and format: `review.index` and docs/events.md, "The event index".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .durable import replace_durably
from .review.index import (
    EventSummary,
    encode_index,
    hour_of,
    index_key,
    parse_time,
    summary_as_dict,
    summary_from_document,
)

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
# Hour records older than this are deleted from the state disk: a file recorded so long ago that
# its hour is processed again would rewrite that hour's index object without the events of the
# other files of that hour; `edge-inference events reindex` repairs that (docs/events.md).
KEEP_HOURS = 31 * 24


class ObjectOutbox(Protocol):
    def put_object(self, key: str, body: bytes, content_type: str, timeout: float | None = None) -> bool: ...


class EventIndexWriter:
    """Keeps this node's hour records and hands their index objects to the outbox."""

    def __init__(self, folder: Path, prefix: str, outbox: ObjectOutbox, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.outbox = outbox
        self.clock = clock
        self.folder.mkdir(parents=True, exist_ok=True)

    def record(self, document: dict, document_key: str) -> None:
        """Add one event (its JSON document, already in the outbox) to its hour's record."""
        event = summary_from_document(document, document_key)
        hour = hour_of(event)
        if hour is None:  # no wall time: not indexed (docs/events.md)
            return
        path = self._path(hour.strftime("%Y-%m-%dT%H"))
        record = self._read(path)
        events = {entry["id"]: entry for entry in record["events"]}
        events[event.id] = summary_as_dict(event)
        self._write(path, {"events": list(events.values()), "behind": True})

    def flush(self, timeout: float | None = None) -> bool:
        """Put the index object of every hour that is behind into the outbox; False if one could not go yet."""
        complete = True
        for path in sorted(self.folder.glob("*.json")):
            record = self._read(path)
            if not record["behind"]:
                continue
            summaries = [_summary(entry) for entry in record["events"]]
            first = summaries[0]
            hour = parse_time(f"{path.stem}:00:00Z")
            body = encode_index(hour, first.namespace, first.job, first.node, summaries)
            key = index_key(self.prefix, hour, first.namespace, first.job, first.node)
            if not self.outbox.put_object(key, body, JSON_CONTENT_TYPE, timeout=timeout):
                complete = False
                continue
            self._write(path, {"events": record["events"], "behind": False})
        self._forget_old()
        return complete

    def _forget_old(self) -> None:
        cutoff = time.strftime("%Y-%m-%dT%H", time.gmtime(self.clock() - KEEP_HOURS * 3600))
        for path in self.folder.glob("*.json"):
            if path.stem < cutoff and not self._read(path)["behind"]:
                path.unlink(missing_ok=True)

    def _path(self, hour: str) -> Path:
        return self.folder / f"{hour}.json"

    def _read(self, path: Path) -> dict:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"events": [], "behind": False}
        except ValueError as exc:  # damaged on disk: start the hour afresh; `events reindex` repairs the bucket
            log.error("event index record unreadable, starting it afresh", extra={"fields": {
                "path": str(path), "error": str(exc)}})
            return {"events": [], "behind": False}

    def _write(self, path: Path, record: dict) -> None:
        data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        replace_durably(path, data, path.with_name(f".{path.name}.part"))


def _summary(entry: dict) -> EventSummary:
    fields = dict(entry)
    fields["cls"] = fields.pop("class")
    return EventSummary(**fields)
