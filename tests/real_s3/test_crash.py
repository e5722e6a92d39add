"""SIGKILL a process while it is putting events, several times; restart: nothing acknowledged is lost."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import prometheus_client
from edge_inference_worker.outbox import Outbox
from edge_inference_worker.sinks import sink_from_config
from real_s3.producer import sample_event
from support.waiting import wait_until

PRODUCER = Path(__file__).with_name("producer.py")
SNAPSHOT_BYTES = 256 * 1024  # big entries: most of a put is spent writing, so kills land mid-write
MIN_KILLS = 3
MAX_KILLS = 12


def acknowledged(ack_file: Path) -> list[int]:
    # A kill can cut the last line; only whole lines are acknowledgements.
    text = ack_file.read_text() if ack_file.exists() else ""
    return [int(line) for line in text.split("\n")[:-1]]


def test_sigkill_mid_write_loses_no_acknowledged_event(s3_server, tmp_path):
    outbox_dir = tmp_path / "outbox"
    ack_file = tmp_path / "acks.txt"
    env = {**os.environ, **s3_server.credentials_env()}
    kills = 0
    partial_seen = 0
    next_index = 0
    while kills < MIN_KILLS or (partial_seen == 0 and kills < MAX_KILLS):
        before = len(acknowledged(ack_file))
        leftovers = len(list((outbox_dir / "tmp").iterdir())) if outbox_dir.exists() else 0
        child = subprocess.Popen(
            [
                sys.executable,
                str(PRODUCER),
                str(outbox_dir),
                s3_server.endpoint,
                s3_server.bucket,
                str(next_index),
                "100000",
                str(ack_file),
                str(SNAPSHOT_BYTES),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            # The restarted producer discarded exactly the partial writes the last kill left.
            assert child.stdout.readline().startswith(f"recovered partial={leftovers} corrupt=0")
            target = before + 15 + 7 * kills  # vary the moment of the kill
            wait_until(lambda t=target: len(acknowledged(ack_file)) >= t, 60, "acknowledged puts")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()
        kills += 1
        partial_seen += len(list((outbox_dir / "tmp").iterdir()))
        # Restart from the last acknowledged index + 1: an unacknowledged event may be put again
        # (same deterministic key), as the pipeline does for a frame batch it had not checkpointed.
        next_index = max(acknowledged(ack_file)) + 1

    assert partial_seen > 0, f"none of {kills} kills landed mid-write"
    leftovers = len(list((outbox_dir / "tmp").iterdir()))
    registry = prometheus_client.CollectorRegistry()
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    outbox = Outbox(outbox_dir, sink, 1 << 30, registry, backoff=(0.02, 0.2))
    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "outbox_partial"}) == leftovers
    assert not list((outbox_dir / "tmp").iterdir())
    outbox.start()
    try:
        wait_until(lambda: outbox.depth() == 0, 60, "the outbox to drain after the crashes")
    finally:
        outbox.close(flush_timeout=5)

    acked = set(acknowledged(ack_file))
    keys = s3_server.list_keys()
    assert len(keys) == len(set(keys))
    arrived = {int(key.rsplit("-", 1)[1].split(".")[0]) for key in keys}
    assert acked <= arrived, f"acknowledged but lost: {sorted(acked - arrived)[:10]}"
    assert arrived <= set(range(next_index + 1))  # nothing that was never put
    for index in sorted(arrived):
        key_base, metadata, snapshot = sample_event(index, SNAPSHOT_BYTES)
        # Both objects of every event, intact: a crash never leaves a JSON without its snapshot.
        assert s3_server.get(key_base + ".json") == metadata
        assert s3_server.get(key_base + ".jpg") == snapshot
    assert len(keys) == 2 * len(arrived)
    print(f"{kills} kills, {partial_seen} partial writes discarded, {len(acked)} acknowledged, {len(arrived)} arrived")
