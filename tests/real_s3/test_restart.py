"""A restarted outbox resumes from its directory; damaged entries are discarded and counted."""

import prometheus_client
import pytest
from edge_inference_worker.outbox import Outbox, OutboxLockedError
from edge_inference_worker.sinks import FolderSink, sink_from_config
from real_s3.producer import sample_event
from support.waiting import wait_until


def test_restart_resumes_oldest_first_and_discards_damaged_entries(s3_server, tmp_path):
    directory = tmp_path / "outbox"
    first = Outbox(directory, FolderSink(tmp_path / "unused"), 1 << 26, prometheus_client.CollectorRegistry())
    for index in range(10):
        assert first.put(*sample_event(index))
    first.close(flush_timeout=0)  # never started: everything stays on disk
    entries = sorted((directory / "entries").iterdir())
    assert len(entries) == 10
    damaged = entries[3]
    damaged.write_bytes(damaged.read_bytes()[:-100])  # a torn entry (bad disk)
    (directory / "entries" / "stray-file.txt").write_text("not ours")
    (directory / "tmp" / "0000000000000010-x.part").write_bytes(b"EIOUTBOX1\n\x00")  # an interrupted put

    registry = prometheus_client.CollectorRegistry()
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    second = Outbox(directory, sink, 1 << 26, registry, backoff=(0.02, 0.1))
    assert second.depth() == 10  # the damaged one is found when its turn comes
    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "outbox_partial"}) == 1
    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "outbox_corrupt"}) == 1  # stray file
    assert second.put(*sample_event(10))  # numbering continues after the recovered entries
    second.start()
    try:
        wait_until(lambda: second.depth() == 0, 30, "the recovered outbox to drain")
    finally:
        second.close(flush_timeout=5)

    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "outbox_corrupt"}) == 2
    assert registry.get_sample_value("edge_inference_events_uploaded_total") == 10
    delivered = [i for i in range(11) if i != 3]
    assert s3_server.list_keys() == sorted(sample_event(i)[0] + s for i in delivered for s in (".jpg", ".json"))
    assert list((directory / "entries").iterdir()) == []


def test_uploads_go_oldest_first_jpeg_before_json(tmp_path):
    delivered = tmp_path / "delivered"
    outbox = Outbox(tmp_path / "outbox", FolderSink(delivered), 1 << 26, prometheus_client.CollectorRegistry())
    for index in range(20):
        assert outbox.put(*sample_event(index))
    outbox.start()
    wait_until(lambda: outbox.depth() == 0, 30, "the outbox to drain")
    outbox.close(flush_timeout=1)
    # Files were written in the expected order: their modification times never go backwards
    # (equal times are possible: the kernel's file clock is coarse).
    expected = [delivered / (sample_event(i)[0] + s) for i in range(20) for s in (".jpg", ".json")]
    times = [path.stat().st_mtime_ns for path in expected]
    assert times == sorted(times)
    assert times[0] < times[-1]
    assert len(list(delivered.rglob("*.*"))) == len(expected)


def test_two_outboxes_never_share_a_directory(tmp_path):
    first = Outbox(
        tmp_path / "outbox", FolderSink(tmp_path / "out"), 1 << 20, prometheus_client.CollectorRegistry()
    )
    with pytest.raises(OutboxLockedError, match="in use by another process"):
        Outbox(
            tmp_path / "outbox",
            FolderSink(tmp_path / "out"),
            1 << 20,
            prometheus_client.CollectorRegistry(),
            lock_timeout=0.2,
        )
    first.close(flush_timeout=0)
    second = Outbox(
        tmp_path / "outbox", FolderSink(tmp_path / "out"), 1 << 20, prometheus_client.CollectorRegistry()
    )
    second.close(flush_timeout=0)


def test_every_error_kind_is_exported_at_zero_from_the_start(tmp_path):
    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox", FolderSink(tmp_path / "out"), 1 << 20, registry)
    kinds = [
        "outbox_partial",
        "outbox_corrupt",
        "outbox_write",
        "outbox_upload",
        "disk_full",
        "s3_unreachable",
        "s3_error",
        "s3_garbage",
        "sink_write",
    ]
    assert [registry.get_sample_value("edge_inference_errors_total", {"kind": kind}) for kind in kinds] == [0] * 9
    assert registry.get_sample_value("edge_inference_outbox_full") == 0
    outbox.close(flush_timeout=0)
