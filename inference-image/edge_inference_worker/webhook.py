"""Webhook notifications: a signed JSON message per event, posted once the event is confirmed in S3.

The messages go through an outbox of their own (`<stateDir>/webhook-outbox`, the same durable
`Outbox`), whose "sink" first checks that the event's JSON document is in the bucket (so the
keys and links in the message work) and then POSTs the message. So delivery is at least once, in
order, retried with the outbox's back-off through outages and worker restarts, and a receiver that
keeps refusing never holds up the events' own uploads (a different queue). A message the receiver
refuses for good (a 4xx other than 408/429) is moved to that outbox's dead-letter folder after a
few tries, so later messages still flow. Receivers deduplicate by event id (the
`X-Edge-Inference-Event` header, and `id` in the body): a message may arrive more than once.

Signature: `X-Edge-Inference-Signature: sha256=<hex HMAC-SHA256 of the raw body with the key>`.
The body is deterministic for an event (it holds no send time), so a retry is byte-identical.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from pathlib import Path

import urllib3

from .outbox import Outbox, OutboxError
from .sinks import REJECTED, TRANSIENT, FolderSink, MinioSink, Sink, SinkError

log = logging.getLogger(__name__)

MESSAGE_TYPE = "edgeinference.io/event"
MESSAGE_SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Edge-Inference-Signature"
EVENT_HEADER = "X-Edge-Inference-Event"
JSON_CONTENT_TYPE = "application/json"

KIND_NOT_CONFIRMED = "webhook_waits_for_s3"  # the event is not in the bucket yet
KIND_UNREACHABLE = "webhook_unreachable"  # no answer from the receiver
KIND_REFUSED = "webhook_refused"  # the receiver answered, but not 2xx
# Answers that say "later", not "never".
_RETRY_STATUSES = frozenset({408, 425, 429})


def sign(key: bytes, body: bytes) -> str:
    """The signature header's value for a body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def webhook_message(document: dict, document_key: str, bucket: str | None) -> bytes:
    """The message about one event (deterministic bytes): who, what, when, and where it is stored."""
    body = {
        "type": MESSAGE_TYPE,
        "schemaVersion": MESSAGE_SCHEMA_VERSION,
        "id": document["id"],
        "class": document["class"],
        "namespace": document["job"]["namespace"],
        "job": document["job"]["name"],
        "node": document["node"],
        "wallTime": document["wallTime"],
        "confidence": document["confidence"],
        "source": document["source"]["path"],
        "bucket": bucket,
        "document": document_key,
        "snapshot": document["snapshot"]["key"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class WebhookSink:
    """The webhook outbox's sink: confirm the event is stored, then POST the signed message."""

    def __init__(self, url: str, key: bytes, confirm: Callable[[str], bool], timeout: float = 10.0) -> None:
        self.url = url
        self.key = key
        self.confirm = confirm
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(total=0, redirect=0),  # the outbox owns retries (back-off, metrics, logs)
        )

    def __repr__(self) -> str:
        return f"WebhookSink({self.url})"

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Deliver the message about the event whose document is `key`; `SinkError` unless the receiver said 2xx."""
        if not self.confirm(key):
            raise SinkError(KIND_NOT_CONFIRMED, f"{key}: not confirmed in the bucket yet; the message waits")
        event_id = Path(key).stem
        headers = {"Content-Type": content_type, SIGNATURE_HEADER: sign(self.key, data), EVENT_HEADER: event_id}
        try:
            response = self.http.request("POST", self.url, body=data, headers=headers)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise SinkError(KIND_UNREACHABLE, f"webhook {self.url} unreachable: {type(error).__name__}") from error
        if 200 <= response.status < 300:
            return
        verdict = REJECTED if 400 <= response.status < 500 and response.status not in _RETRY_STATUSES else TRANSIENT
        raise SinkError(KIND_REFUSED, f"webhook {self.url} answered HTTP {response.status} for event {event_id}",
                        verdict)


def stored_check(sink: Sink) -> Callable[[str], bool]:
    """Whether an object is in the sink: a HEAD on S3, a file test in a folder."""
    if isinstance(sink, MinioSink):
        return sink.exists
    assert isinstance(sink, FolderSink)
    return lambda key: (sink.root / key).is_file()


class Notifier:
    """Queues the message about each event of the wanted classes in the webhook outbox."""

    def __init__(self, outbox: Outbox, classes: list[str], bucket: str | None) -> None:
        self.outbox = outbox
        self.classes = frozenset(classes)
        self.bucket = bucket

    def event(self, document: dict, document_key: str) -> None:
        """Queue one event's message (never blocks detection: a full webhook outbox drops it, logged)."""
        if self.classes and document["class"] not in self.classes:
            return
        body = webhook_message(document, document_key, self.bucket)
        try:
            queued, reason = self.outbox.put_object(document_key, body, JSON_CONTENT_TYPE, timeout=0), "outbox full"
        except (OutboxError, ValueError) as error:  # the event itself is safe: it is in the events' outbox
            queued, reason = False, str(error)
        if not queued:
            log.error("webhook message not queued", extra={"fields": {"eventId": document["id"], "reason": reason}})
