"""The disk-full scenario, run inside its own mount namespace on a tiny real tmpfs.

    unshare -Urm python tests/real_s3/diskfull_child.py MOUNTPOINT SINK_DIR

mounts a 256 KiB tmpfs at MOUNTPOINT (visible only to this process), fills the outbox on it until
the filesystem says ENOSPC, lets the uploader drain it into SINK_DIR (a normal folder), checks
that puts work again, and prints what happened as one JSON line for the test to check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for outbox.producer

TMPFS_BYTES = 256 * 1024
SNAPSHOT_BYTES = 20_000


def main(mountpoint: Path, sink_dir: Path) -> dict:
    import prometheus_client
    from edge_inference_worker.outbox import Outbox, OutboxDiskFullError, decode_entry
    from edge_inference_worker.sinks import FolderSink, SinkError
    from real_s3.producer import sample_event

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mountpoint)], check=True)
    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(mountpoint / "outbox", FolderSink(sink_dir), 64 << 20, registry, backoff=(0.01, 0.05))

    def disk_full_errors() -> float:
        return registry.get_sample_value("edge_inference_errors_total", {"kind": "disk_full"}) or 0

    accepted, refusals = 0, []
    while len(refusals) < 2:
        try:
            assert outbox.put(*sample_event(accepted, SNAPSHOT_BYTES))
            accepted += 1
        except OutboxDiskFullError as error:
            refusals.append(str(error))
    entries = sorted((mountpoint / "outbox" / "entries").iterdir())
    decoded = [decode_entry(path.read_bytes()).key_base for path in entries]
    report = {
        "accepted": accepted,
        "refusals": refusals,
        "disk_full_errors": disk_full_errors(),
        "depth": outbox.depth(),
        "tmp_left": len(list((mountpoint / "outbox" / "tmp").iterdir())),
        "entries_intact": decoded == [sample_event(i)[0] for i in range(accepted)],
    }
    try:
        FolderSink(mountpoint / "sink").put_object("big.jpg", b"\0" * TMPFS_BYTES, "image/jpeg")
    except SinkError as error:
        report["directory_sink_error"] = error.kind
        report["directory_sink_leftovers"] = [p.name for p in (mountpoint / "sink").iterdir()]
    outbox.start()
    deadline = time.monotonic() + 30
    while outbox.depth() and time.monotonic() < deadline:
        time.sleep(0.02)
    report["drained"] = outbox.depth() == 0
    report["put_after_drain"] = outbox.put(*sample_event(accepted, SNAPSHOT_BYTES))
    outbox.close(flush_timeout=10)
    report["depth_at_end"] = outbox.depth()
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
