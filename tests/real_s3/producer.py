"""Deterministic sample events, and a producer process for the crash test (run as a script).

    python tests/real_s3/producer.py OUTBOX_DIR ENDPOINT BUCKET FIRST COUNT ACK_FILE SNAPSHOT_BYTES

puts events FIRST.. into an outbox whose uploader drains to the S3 server at ENDPOINT (keys in
the environment), appending each index to ACK_FILE once `put` returned True. It prints
`recovered partial=N corrupt=M depth=D` first, so the test can check the recovery counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

PREFIX = "events/default/crash-job/node-a"


def sample_event(index: int, snapshot_bytes: int = 4096) -> tuple[str, bytes, bytes]:
    """(key_base, metadata JSON, JPEG-like bytes) of event `index`: the same every time it is made."""
    key_base = f"{PREFIX}/file-{index // 50:04d}/event-{index:06d}"
    metadata = json.dumps({"event": index, "key": key_base}, sort_keys=True).encode()
    seed = hashlib.sha256(str(index).encode()).digest()
    snapshot = b"\xff\xd8" + (seed * (snapshot_bytes // len(seed) + 1))[: max(0, snapshot_bytes - 4)] + b"\xff\xd9"
    return key_base, metadata, snapshot


def main(argv: list[str]) -> None:
    import prometheus_client
    from edge_inference_worker.outbox import Outbox
    from edge_inference_worker.sinks import MinioSink

    outbox_dir, endpoint, bucket, first, count, ack_file, snapshot_bytes = argv
    sink = MinioSink(
        endpoint,
        bucket,
        access_key=os.environ["EDGE_INFERENCE_S3_ACCESS_KEY"],
        secret_key=os.environ["EDGE_INFERENCE_S3_SECRET_KEY"],
        secure=False,
        region="us-east-1",
    )
    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(Path(outbox_dir), sink, 1 << 30, registry, backoff=(0.02, 0.2))

    def errors(kind: str) -> int:
        return int(registry.get_sample_value("edge_inference_errors_total", {"kind": kind}) or 0)

    print(
        f"recovered partial={errors('outbox_partial')} corrupt={errors('outbox_corrupt')} depth={outbox.depth()}",
        flush=True,
    )
    outbox.start()
    with open(ack_file, "a") as acks:
        for index in range(int(first), int(first) + int(count)):
            if not outbox.put(*sample_event(index, int(snapshot_bytes))):
                raise SystemExit(f"put {index} refused")
            acks.write(f"{index}\n")
            acks.flush()
    outbox.close(flush_timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
