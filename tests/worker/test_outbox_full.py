"""A full outbox (S3 down, size bound reached) blocks the pipeline loudly instead of dropping events:
the worker stays alive and healthy, says so in metrics and logs, stops cleanly on SIGTERM without
advancing past the blocked event, and a later run delivers every event."""

from __future__ import annotations

import json
import signal
import subprocess

from support.net import http_get, loopback_url
from support.s3server import free_ports
from support.synthetic import make_video, short_scenario
from support.waiting import wait_until
from support.worker_harness import (
    assert_events_match_truth,
    detect_args,
    event_keys,
    log_lines,
    metric_value,
    run_worker,
)


def test_a_full_outbox_blocks_loses_nothing_and_resumes(worker_env, s3_server_module, tmp_path):
    s3 = s3_server_module
    videos, state, log = tmp_path / "videos", tmp_path / "state", tmp_path / "run.log"
    # 720p at JPEG quality 100: one snapshot is about 0.6 MB, so a 1 MB outbox holds one event.
    truth = make_video(videos / "yard.mp4", short_scenario(width=1280, height=720, fps=5), seed=7)
    env = {**worker_env, **s3.credentials_env()}
    (dead_port, metrics_port) = free_ports(2)
    out = f"s3://{s3.bucket}/full-outbox"
    common = ("--outbox-max-mb", "1", "--snapshot-quality", "100")
    args = detect_args(videos, out, state, *common, "--s3-endpoint", f"http://127.0.0.1:{dead_port}",
                       "--metrics-port", str(metrics_port))
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))  # noqa: SIM115
    try:
        wait_until(lambda: metric_value(metrics_port, "edge_inference_outbox_full") == 1, 120, "the outbox to fill")
        assert metric_value(metrics_port, "edge_inference_outbox_events") == 1
        assert metric_value(metrics_port, "edge_inference_errors_total", {"kind": "s3_unreachable"}) >= 1
        assert metric_value(metrics_port, "edge_inference_files_total", {"outcome": "done"}) is None  # blocked
        assert http_get(loopback_url(metrics_port, "/healthz"))[0] == 200  # waiting, not stalled
        assert any("OUTBOX FULL" in line["msg"] for line in log_lines(log.read_text()))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        process.kill()
        process.wait()
    # S3 is back (a working endpoint): the waiting event is uploaded and the rest found again.
    fixed = detect_args(videos, out, state, *common, "--s3-endpoint", s3.url)
    result = run_worker(fixed, env)
    assert result.returncode == 0, result.stderr[-3000:]
    keys = event_keys(s3.list_keys("full-outbox/"))
    documents = [json.loads(s3.get(k)) for k in keys if k.endswith(".json")]
    assert len(keys) == 2 * len(documents)
    assert_events_match_truth(documents, truth)
