"""A full disk under the outbox: `put` fails cleanly with a specific error, counted; nothing half-written.

The disk is REAL: a 256 KiB tmpfs mounted in a private mount namespace (`unshare -Urm`, which
needs neither root nor cleanup: the mount disappears with the process).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from real_s3.producer import sample_event

CHILD = Path(__file__).with_name("diskfull_child.py")


def private_mounts_work() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-Urm", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not private_mounts_work(), reason="needs `unshare -Urm` (util-linux, user namespaces)")
def test_disk_full_refuses_cleanly_counts_and_recovers(tmp_path):
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    sink_dir = tmp_path / "delivered"
    run = subprocess.run(
        ["unshare", "-Urm", sys.executable, str(CHILD), str(mountpoint), str(sink_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])

    assert 3 <= report["accepted"] < 13  # 20 KB events on 256 KiB: it did fill up
    assert len(report["refusals"]) == 2
    assert all("outbox disk full" in message for message in report["refusals"])
    assert report["disk_full_errors"] == 2
    assert report["depth"] == report["accepted"]
    assert report["tmp_left"] == 0  # the failed writes left nothing behind
    assert report["entries_intact"]
    assert report["directory_sink_error"] == "disk_full"
    assert report["directory_sink_leftovers"] == []
    assert report["drained"] and report["put_after_drain"] and report["depth_at_end"] == 0
    delivered = report["accepted"] + 1
    for index in range(delivered):
        key_base, metadata, snapshot = sample_event(index, 20_000)
        assert (sink_dir / (key_base + ".json")).read_bytes() == metadata
        assert (sink_dir / (key_base + ".jpg")).read_bytes() == snapshot
    assert len(list(sink_dir.rglob("*.json"))) == delivered
    # The namespace's mount is gone with the process: nothing is left mounted here.
    assert list(mountpoint.iterdir()) == []


def test_enospc_reported_at_fsync_is_refused_cleanly(tmp_path, monkeypatch):
    """Filesystems with delayed allocation (and NFS) may report ENOSPC only at fsync, which a
    tmpfs never does; that path is injected here (the one simulated failure in this folder),
    and it also covers machines where the real tmpfs test above cannot run."""
    import errno
    import os

    import prometheus_client
    from edge_inference_worker.outbox import Outbox, OutboxDiskFullError
    from edge_inference_worker.sinks import FolderSink

    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox", FolderSink(tmp_path / "delivered"), 1 << 20, registry)
    assert outbox.put(*sample_event(0))
    real_fsync = os.fsync

    def full_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(OutboxDiskFullError, match="outbox disk full"):
        outbox.put(*sample_event(1))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert registry.get_sample_value("edge_inference_errors_total", {"kind": "disk_full"}) == 1
    assert outbox.depth() == 1
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    assert outbox.put(*sample_event(1))
