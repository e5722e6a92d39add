"""The webhook sink against a real local receiver: confirmed first, signed, and each answer judged."""

from __future__ import annotations

import json

import pytest
from edge_inference_worker.sinks import REJECTED, TRANSIENT, SinkError
from edge_inference_worker.webhook import WebhookSink, sign, webhook_message
from support.event_fleet import one_event, utc
from support.s3server import free_ports

from .test_webhook import Receiver

DOCUMENT = json.loads(one_event("events", "lobby", "edge-1", utc("2026-11-26T22:15"), "person", 0.8).document)
KEY = DOCUMENT["snapshot"]["key"].removesuffix(".jpg") + ".json"


@pytest.fixture
def receiver():
    receiver = Receiver(free_ports(1)[0])
    receiver.start()
    yield receiver
    receiver.stop()


def test_the_message_is_deterministic_and_names_where_the_event_is():
    body = webhook_message(DOCUMENT, KEY, "edge-events")
    assert body == webhook_message(DOCUMENT, KEY, "edge-events")
    message = json.loads(body)
    assert message["id"] == DOCUMENT["id"] and message["document"] == KEY
    assert message["snapshot"] == DOCUMENT["snapshot"]["key"] and message["bucket"] == "edge-events"
    assert message["type"] == "edgeinference.io/event" and message["schemaVersion"] == 1


def test_a_delivered_message_is_signed_and_carries_the_event_id(receiver):
    body = webhook_message(DOCUMENT, KEY, "edge-events")
    sink = WebhookSink(f"http://127.0.0.1:{receiver.port}/", b"key", lambda key: True)
    sink.put_object(KEY, body, "application/json")
    ((headers, received),) = receiver.received
    assert received == body and headers["X-Edge-Inference-Signature"] == sign(b"key", body)
    assert headers["X-Edge-Inference-Event"] == DOCUMENT["id"] and headers["Content-Type"] == "application/json"


def test_nothing_is_posted_before_the_event_is_in_the_bucket(receiver):
    sink = WebhookSink(f"http://127.0.0.1:{receiver.port}/", b"key", lambda key: False)
    with pytest.raises(SinkError) as waiting:
        sink.put_object(KEY, b"{}", "application/json")
    assert waiting.value.kind == "webhook_waits_for_s3" and waiting.value.verdict == TRANSIENT
    assert receiver.received == []


@pytest.mark.parametrize("status, verdict", [(400, REJECTED), (404, REJECTED), (429, TRANSIENT), (503, TRANSIENT)])
def test_answers_are_judged(receiver, status, verdict):
    receiver.answer = status
    with pytest.raises(SinkError) as refused:
        WebhookSink(f"http://127.0.0.1:{receiver.port}/", b"k", lambda key: True).put_object(KEY, b"{}", "a/b")
    assert refused.value.kind == "webhook_refused" and refused.value.verdict == verdict
    assert f"HTTP {status}" in str(refused.value)


def test_a_receiver_that_is_down_is_unreachable():
    port = free_ports(1)[0]
    with pytest.raises(SinkError) as down:
        WebhookSink(f"http://127.0.0.1:{port}/", b"k", lambda key: True).put_object(KEY, b"{}", "a/b")
    assert down.value.kind == "webhook_unreachable" and down.value.verdict == TRANSIENT
