"""Object entries (the event index's objects): one object at its own key, in turn with the events."""

import json

import prometheus_client
import pytest
from edge_inference_worker.outbox import (
    ENTRY_EVENT,
    ENTRY_OBJECT,
    CorruptEntryError,
    Outbox,
    decode_entry,
    encode_entry,
)
from edge_inference_worker.sinks import sink_from_config
from real_s3.producer import sample_event
from support.waiting import wait_until


def test_an_object_entry_round_trips():
    data = encode_entry("events/_index/v1/2026-11-26/22/ns/job/node.json", b'{"a":1}', b"", 12.5, ENTRY_OBJECT,
                        "application/json")
    entry = decode_entry(data)
    assert (entry.kind, entry.key_base, entry.metadata_json, entry.snapshot_jpeg, entry.content_type) == (
        ENTRY_OBJECT, "events/_index/v1/2026-11-26/22/ns/job/node.json", b'{"a":1}', b"", "application/json"
    )


def test_an_event_entry_is_byte_for_byte_what_it_was():
    """Entries written before object entries existed still decode, and new event entries look the same."""
    data = encode_entry("k", b"{}", b"\xff\xd8\xff\xd9", 1.0)
    assert b'"kind"' not in data
    assert decode_entry(data).kind == ENTRY_EVENT


def test_an_unknown_kind_is_refused_as_corrupt():
    data = encode_entry("k", b"{}", b"", 1.0, "webhook-v9", "application/json")
    with pytest.raises(CorruptEntryError, match="unknown entry kind 'webhook-v9'"):
        decode_entry(data)


INDEX_KEY = "events/_index/v1/2026-11-26/22/default/crash-job/node-a.json"


class RecordingSink:
    """The real S3 sink, noting the order in which objects were confirmed."""

    def __init__(self, sink):
        self.sink, self.confirmed = sink, []

    def put_object(self, key, data, content_type):
        self.sink.put_object(key, data, content_type)
        self.confirmed.append(key)


def test_objects_reach_the_sink_at_their_key_after_the_events_before_them(s3_server, tmp_path):
    sink = RecordingSink(sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key))
    outbox = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    s3_server.stop()  # everything waits on disk, then drains in order
    events = [sample_event(i) for i in range(3)]
    for event in events:
        assert outbox.put(*event)
    index = json.dumps({"events": [e[0] for e in events]}).encode()
    assert outbox.put_object(INDEX_KEY, index, "application/json")
    assert outbox.put(*sample_event(3))
    assert outbox.depth() == 5
    outbox.start()
    s3_server.start()
    wait_until(lambda: outbox.depth() == 0, 60, "the outbox to drain")
    outbox.close(flush_timeout=5)
    assert s3_server.get(INDEX_KEY) == index
    assert sink.confirmed.index(INDEX_KEY) == 6  # after the three events' six objects, before the fourth event
    assert len(sink.confirmed) == len(s3_server.list_keys()) == 2 * 4 + 1
    assert s3_server.client().stat_object(s3_server.bucket, INDEX_KEY).content_type == "application/json"


def test_an_object_with_a_bad_key_is_refused_before_it_is_stored(s3_server, tmp_path):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    with pytest.raises(ValueError, match="'..'"):
        outbox.put_object("events/../x.json", b"{}", "application/json")
    assert outbox.depth() == 0
    outbox.close(flush_timeout=0)


def test_object_entries_survive_a_restart_and_are_not_counted_as_events(s3_server, tmp_path):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    assert outbox.put(*sample_event(0))
    assert outbox.put_object(INDEX_KEY, b"{}", "application/json")
    outbox.close(flush_timeout=0)
    reopened = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    assert (reopened.depth(), reopened.events_waiting()) == (2, 1)
    assert sorted(p.suffix for p in (tmp_path / "outbox" / "entries").iterdir()) == [".evt", ".obj"]
    reopened.start()
    wait_until(lambda: reopened.depth() == 0, 60, "the outbox to drain")
    reopened.close(flush_timeout=5)
    assert s3_server.get(INDEX_KEY) == b"{}"
