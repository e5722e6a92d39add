"""`close`: flush what waits within the time given, then stop; what is left stays on disk."""

import time

import prometheus_client
from edge_inference_worker.outbox import Outbox
from edge_inference_worker.sinks import sink_from_config
from real_s3.producer import sample_event


def test_close_flushes_what_waits(s3_server, tmp_path):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    outbox.start()
    for index in range(50):
        assert outbox.put(*sample_event(index))
    outbox.close(flush_timeout=60)
    assert outbox.depth() == 0
    assert len(s3_server.list_keys()) == 100
    assert outbox.put(*sample_event(99)) is False  # closed: refused, nothing written
    assert list((tmp_path / "outbox" / "entries").iterdir()) == []


def test_close_gives_up_after_the_flush_timeout_and_keeps_the_events(s3_server, tmp_path):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    # A long backoff: close must interrupt the uploader's wait, not sit it out.
    outbox = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry(), backoff=(30.0, 60.0))
    s3_server.stop()
    outbox.start()
    for index in range(5):
        assert outbox.put(*sample_event(index))
    began = time.monotonic()
    outbox.close(flush_timeout=0.5)
    took = time.monotonic() - began
    assert 0.5 <= took < 10.0  # waited for the flush, then stopped rather than retrying on
    assert outbox.depth() == 5
    assert len(list((tmp_path / "outbox" / "entries").iterdir())) == 5

    s3_server.start()
    reopened = Outbox(tmp_path / "outbox", sink, 1 << 26, prometheus_client.CollectorRegistry())
    assert reopened.depth() == 5
    reopened.start()
    reopened.close(flush_timeout=60)
    assert reopened.depth() == 0
    assert s3_server.list_keys() == sorted(sample_event(i)[0] + s for i in range(5) for s in (".jpg", ".json"))
