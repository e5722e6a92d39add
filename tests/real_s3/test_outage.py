"""S3 goes down mid-run while events keep coming, then comes back: every event arrives once."""

import logging
import threading
import time

import prometheus_client
from edge_inference_worker.outbox import Outbox
from edge_inference_worker.sinks import sink_from_config
from real_s3.producer import sample_event
from support.waiting import wait_until

EVENTS = 300
VIDEO_SECONDS_PER_EVENT = 2.0  # an event every 2 s of video: 300 events are 10 minutes of video


class VideoClock:
    """Wall time that the test advances as events are produced (minutes of video in a second)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def sample(registry, name, **labels) -> float:
    return registry.get_sample_value(name, labels or None) or 0.0


def test_outage_mid_run_loses_nothing_and_duplicates_nothing(s3_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge_inference_worker.outbox")
    registry = prometheus_client.CollectorRegistry()
    clock = VideoClock()
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(tmp_path / "outbox", sink, 64 << 20, registry, clock=clock, backoff=(0.05, 0.5))
    outbox.start()
    uploaded = lambda: sample(registry, "edge_inference_events_uploaded_total")  # noqa: E731
    unreachable = lambda: sample(registry, "edge_inference_errors_total", kind="s3_unreachable")  # noqa: E731

    produced = threading.Event()
    put_results: list[bool] = []

    def produce() -> None:
        for index in range(EVENTS):
            clock.now += VIDEO_SECONDS_PER_EVENT
            put_results.append(outbox.put(*sample_event(index)))
            if index == 100:  # let the uploader fall behind the outage before producing the rest
                wait_until(lambda: not s3_server.running, 30, "the outage to begin")
        produced.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: uploaded() >= 40, 30, "uploads before the outage")
        s3_server.stop()
        outage_began = time.monotonic()
        wait_until(produced.is_set, 60, "all events to be put during the outage")
        wait_until(lambda: unreachable() >= 3, 30, "several failed attempts")

        # During the outage: events pile up on disk, the oldest one ages with the video clock.
        stuck = uploaded()
        assert stuck < EVENTS
        assert outbox.depth() == EVENTS - stuck
        assert sample(registry, "edge_inference_outbox_events") == EVENTS - stuck
        assert sample(registry, "edge_inference_outbox_bytes") > 0
        assert outbox.oldest_age_seconds() >= (EVENTS - stuck - 1) * VIDEO_SECONDS_PER_EVENT
        assert sample(registry, "edge_inference_outbox_oldest_age_seconds") == outbox.oldest_age_seconds()

        s3_server.start()
        back = time.monotonic()
        wait_until(lambda: outbox.depth() == 0, 60, "the outbox to drain after the outage")
        drained = time.monotonic()
    finally:
        producer.join(timeout=30)
        outbox.close(flush_timeout=5)

    assert put_results == [True] * EVENTS
    assert uploaded() == EVENTS  # each event confirmed once: none uploaded twice in this run
    assert sample(registry, "edge_inference_outbox_events") == 0
    assert sample(registry, "edge_inference_outbox_bytes") == 0
    assert sample(registry, "edge_inference_outbox_oldest_age_seconds") == 0
    expected = {}
    for index in range(EVENTS):
        key_base, metadata, snapshot = sample_event(index)
        expected[key_base + ".json"] = metadata
        expected[key_base + ".jpg"] = snapshot
    keys = s3_server.list_keys()
    assert len(keys) == len(set(keys)) == 2 * EVENTS
    assert set(keys) == set(expected)
    for key, content in expected.items():
        assert s3_server.get(key) == content, key
    assert not list((tmp_path / "outbox" / "entries").iterdir())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("upload failed (s3_unreachable)" in m for m in messages) == 1  # loud once, not per retry
    assert any("S3 confirmed uploads again" in m for m in messages)
    print(
        f"outage {back - outage_began:.2f} s with {EVENTS - stuck:.0f} events waiting; "
        f"drained {EVENTS - stuck:.0f} events in {drained - back:.2f} s after S3 came back"
    )
