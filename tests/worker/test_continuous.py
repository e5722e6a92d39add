"""Continuous mode: a file is started only once it stopped growing; a file added later is picked up;
SIGTERM stops the worker cleanly. Health and metrics are served while it runs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime

from support.net import http_get, loopback_url
from support.s3server import free_ports
from support.waiting import wait_until
from support.worker_harness import detect_args, event_documents, log_lines, metric_value

SETTLE = 2.0
CHUNKS = 5
CHUNK_GAP = 0.6  # shorter than SETTLE: the camera is still writing


def lines_of(log):
    return log_lines(log.read_text()) if log.exists() else []


def first(log, msg, **fields):
    return next(
        (line for line in lines_of(log) if line["msg"] == msg and all(line.get(k) == v for k, v in fields.items())),
        None,
    )


def test_watch_waits_for_complete_files_and_picks_up_new_ones(short_clip, worker_env, tmp_path):
    videos, out, state, log = tmp_path / "videos", tmp_path / "events", tmp_path / "state", tmp_path / "run.log"
    videos.mkdir()
    (port,) = free_ports(1)
    args = detect_args(
        videos, str(out), state, "--watch", "--settle-seconds", str(SETTLE), "--poll-seconds", "0.2",
        "--metrics-port", str(port),
    )
    process = subprocess.Popen(args, env=worker_env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))  # noqa: SIM115
    try:
        wait_until(lambda: http_get(loopback_url(port, "/readyz"))[0] == 200, 120, "readiness (model loaded)")
        assert http_get(loopback_url(port, "/healthz"))[0] == 200

        # A camera writing a segment: the file grows in chunks, each gap shorter than the settle time.
        data = short_clip.path.read_bytes()
        growing = videos / "cam1" / "seg-001.mp4"
        growing.parent.mkdir()
        with open(growing, "wb") as handle:
            for i in range(CHUNKS):
                if i:
                    time.sleep(CHUNK_GAP)  # the writer's pace, part of the scenario (not a wait for the worker)
                handle.write(data[i * len(data) // CHUNKS : (i + 1) * len(data) // CHUNKS])
                handle.flush()
                last_write = time.time()
        started = wait_until(lambda: first(log, "file started", file="cam1/seg-001.mp4"), 60, "the segment to start")
        started_at = datetime.fromisoformat(started["ts"].replace("Z", "+00:00")).timestamp()
        assert started_at >= last_write + SETTLE - 0.3, "started before the file had settled"
        done = wait_until(lambda: first(log, "file done", file="cam1/seg-001.mp4"), 120, "the segment to finish")
        assert done["events"] == 4

        # A later file, moved into place whole.
        staging = tmp_path / "staging.mp4"
        staging.write_bytes(data)
        staging.rename(videos / "cam1" / "seg-002.mp4")
        done = wait_until(lambda: first(log, "file done", file="cam1/seg-002.mp4"), 120, "the new segment")
        assert done["events"] == 4
        wait_until(lambda: len(event_documents(out)) == 8, 30, "eight events delivered")

        assert metric_value(port, "edge_inference_files_total", {"outcome": "done"}) == 2
        assert metric_value(port, "edge_inference_events_total", {"class": "person"}) == 4
        assert metric_value(port, "edge_inference_frames_analysed_total") > 0
        assert metric_value(port, "edge_inference_frames_skipped_motion_total") > 0
        assert metric_value(port, "edge_inference_video_bytes_scanned_total") == 2 * len(data)
        assert time.time() - metric_value(port, "edge_inference_heartbeat_timestamp_seconds") < 10
        assert metric_value(port, "edge_inference_batch_complete") == 0  # Continuous never completes
        # The operator's compact view of the same figures.
        status, body = http_get(loopback_url(port, "/progress"))
        progress = json.loads(body)
        assert status == 200 and progress["filesDone"] == 2 and progress["batchComplete"] is False
        assert progress["framesAnalysed"] == metric_value(port, "edge_inference_frames_analysed_total")

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    assert [line for line in lines_of(log) if line["level"] == "error"] == []
