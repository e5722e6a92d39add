"""An event that S3 rejects for good goes to the dead-letter folder after a few tries; later ones flow.

Against the real S3 server: a key longer than S3 allows (what an older worker, or a configuration
fixed since, left in the outbox) is answered `KeyTooLongError`, a definite no for that event only.
"""

from __future__ import annotations

import logging
import time

import prometheus_client
import pytest
from edge_inference_worker.outbox import MAX_REJECTIONS, Outbox, encode_entry
from edge_inference_worker.sinks import check_key_fits, sink_from_config
from support.waiting import wait_until

TOO_LONG = "events/ns/job/node/" + "f" * 1100 + "/0123456789abcdef0123"


def _queue_as_an_older_worker_did(directory, key: str) -> None:
    """An entry committed before keys were checked: the outbox's own file format, written directly."""
    entries = directory / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    (entries / f"{0:016d}-{int(time.time() * 1000):013d}.evt").write_bytes(
        encode_entry(key, b'{"old": true}', b"jpeg", time.time())
    )


def test_a_rejected_event_is_dead_lettered_and_later_events_flow(s3_server, tmp_path, caplog):
    directory = tmp_path / "outbox"
    _queue_as_an_older_worker_did(directory, TOO_LONG)
    registry = prometheus_client.CollectorRegistry()
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(directory, sink, 10 * 2**20, registry, backoff=(0.05, 0.2))
    caplog.set_level(logging.INFO, logger="edge_inference_worker.outbox")
    outbox.start()
    try:
        assert outbox.put("events/ns/job/node/file/later", b'{"later": true}', b"jpeg")
        wait_until(lambda: "events/ns/job/node/file/later.json" in s3_server.list_keys(), 30, "the later event")
        assert outbox.wait_empty(30)
    finally:
        outbox.close(5)
    dead = sorted((directory / "dead-letter").iterdir())
    assert [p.suffix for p in dead] == [".evt", ".txt"]  # the entry, and why, kept on disk
    assert "KeyTooLongError" in dead[1].read_text()
    assert registry.get_sample_value("edge_inference_outbox_dead_letters_total") == 1
    lines = [r for r in caplog.records if "dead-letter" in r.getMessage()]
    assert len(lines) == 1 and "KeyTooLongError" in lines[0].getMessage()
    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "s3_error"}) == MAX_REJECTIONS

    # A restart neither uploads nor loses what was dead-lettered.
    again = Outbox(directory, sink, 10 * 2**20, prometheus_client.CollectorRegistry())
    try:
        assert again.depth() == 0
    finally:
        again.close(0)
    assert len(list((directory / "dead-letter").iterdir())) == 2


def test_keys_longer_than_s3_allows_are_refused_before_they_are_queued(tmp_path):
    with pytest.raises(ValueError, match="1024"):
        check_key_fits(TOO_LONG + ".json")
    outbox = Outbox(tmp_path / "outbox", sink_from_config_dir(tmp_path), 2**20, prometheus_client.CollectorRegistry())
    try:
        with pytest.raises(ValueError, match="1024"):
            outbox.put(TOO_LONG, b"{}", b"")
        assert outbox.depth() == 0
    finally:
        outbox.close(0)


def sink_from_config_dir(tmp_path):
    from edge_inference_api.models import DirectorySink

    return sink_from_config(DirectorySink(path=str(tmp_path / "events")), None, None)
