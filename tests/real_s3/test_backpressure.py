"""A full outbox blocks the producer and says so; it resumes when uploads free space; nothing is dropped."""

import logging
import threading

import prometheus_client
import pytest
from edge_inference_worker.outbox import Outbox, OutboxEntryTooLargeError, encode_entry
from edge_inference_worker.sinks import sink_from_config
from real_s3.producer import sample_event
from support.waiting import wait_until

# Entry sizes vary by a few bytes with the timestamp in the header: leave some slack.
ENTRY_BYTES = len(encode_entry(*sample_event(0), 1_800_000_000.123456)) + 32
FITS = 5


def gauge(registry, name):
    return registry.get_sample_value(name)


def test_full_outbox_blocks_says_so_and_resumes(s3_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge_inference_worker.outbox")
    registry = prometheus_client.CollectorRegistry()
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(tmp_path / "outbox", sink, FITS * ENTRY_BYTES, registry, backoff=(0.05, 0.2))
    s3_server.stop()  # S3 is away: nothing drains
    outbox.start()
    try:
        assert all(outbox.put(*sample_event(i)) for i in range(FITS))
        assert gauge(registry, "edge_inference_outbox_full") == 0

        # Full: a put with a timeout gives up (the caller keeps the event), and says so once.
        assert outbox.put(*sample_event(FITS), timeout=0.2) is False
        assert gauge(registry, "edge_inference_outbox_full") == 1
        assert outbox.put(*sample_event(FITS), timeout=0.1) is False
        full_logs = [r for r in caplog.records if "OUTBOX FULL" in r.getMessage()]
        assert len(full_logs) == 1 and full_logs[0].levelno == logging.ERROR

        # A put without a timeout blocks until there is room.
        results: list[bool] = []
        blocked = threading.Thread(target=lambda: results.append(outbox.put(*sample_event(FITS))))
        blocked.start()
        blocked.join(timeout=0.3)
        assert blocked.is_alive() and results == []
        assert outbox.depth() == FITS
        assert outbox.wait_empty(0.1) is False  # nothing is delivered while S3 is away

        s3_server.start()
        blocked.join(timeout=60)
        assert results == [True]
        wait_until(lambda: gauge(registry, "edge_inference_outbox_full") == 0, 10, "the full gauge to clear")
        assert all(outbox.put(*sample_event(i)) for i in range(FITS + 1, 3 * FITS))
        assert outbox.wait_empty(60) and outbox.depth() == 0
    finally:
        outbox.close(flush_timeout=5)

    # Every full episode that was announced was also announced over.
    episodes = [
        r.getMessage() for r in caplog.records if "OUTBOX FULL" in r.getMessage() or "room again" in r.getMessage()
    ]
    assert episodes[0].startswith("OUTBOX FULL") and "room again" in episodes[-1]
    assert sum("OUTBOX FULL" in m for m in episodes) == sum("room again" in m for m in episodes)
    expected = sorted(k + suffix for k in (sample_event(i)[0] for i in range(3 * FITS)) for suffix in (".jpg", ".json"))
    assert s3_server.list_keys() == expected
    assert registry.get_sample_value("edge_inference_events_uploaded_total") == 3 * FITS


def test_close_releases_a_blocked_put_without_writing(tmp_path):
    registry = prometheus_client.CollectorRegistry()
    sink = sink_from_config(_unreachable_sink_config(), "a", "b")
    outbox = Outbox(tmp_path / "outbox", sink, ENTRY_BYTES, registry)
    assert outbox.put(*sample_event(0))
    results: list[bool] = []
    blocked = threading.Thread(target=lambda: results.append(outbox.put(*sample_event(1))))
    blocked.start()
    wait_until(lambda: registry.get_sample_value("edge_inference_outbox_full") == 1, 10, "the outbox to be full")
    outbox.close(flush_timeout=0.1)
    blocked.join(timeout=10)
    assert results == [False]
    assert outbox.depth() == 1  # what was accepted stays on disk for the next start
    assert len(list((tmp_path / "outbox" / "entries").iterdir())) == 1


def test_an_event_bigger_than_the_whole_outbox_is_refused_at_once(tmp_path):
    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox", sink_from_config(_unreachable_sink_config(), "a", "b"), 1000, registry)
    with pytest.raises(OutboxEntryTooLargeError, match="more than the outbox bound of 1000"):
        outbox.put("events/x", b"{}", b"\xff" * 2000)
    assert outbox.depth() == 0


def _unreachable_sink_config():
    from edge_inference_api.models import S3Sink
    from support.s3server import free_ports

    return S3Sink(endpoint=f"127.0.0.1:{free_ports(1)[0]}", bucket="events", secure=False)
