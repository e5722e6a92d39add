"""An S3 endpoint answering garbage does not stop the worker: the files are analysed, the events
wait in the outbox (counted errors, a Batch run does not finish), and a later run with a working
S3 server delivers every one of them."""

from __future__ import annotations

import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.s3server import free_ports
from support.waiting import wait_until
from support.worker_harness import detect_args, event_documents, event_keys, metric_value, run_worker


class Garbage(BaseHTTPRequestHandler):
    """200 OK with an HTML page to every request: not S3, and no ETag."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<html><body>captive portal</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_garbage_answers_are_counted_and_nothing_is_lost(
    short_clip, directory_run, worker_env, garbage_server, s3_server_module, tmp_path
):
    s3 = s3_server_module
    state = tmp_path / "state"
    env = {**worker_env, **s3.credentials_env()}
    (port,) = free_ports(1)
    out = f"s3://{s3.bucket}/garbage-test"
    videos = short_clip.path.parent.parent
    args = detect_args(videos, out, state, "--s3-endpoint", garbage_server, "--metrics-port", str(port))
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: metric_value(port, "edge_inference_files_total", {"outcome": "done"}) == 1, 120,
                 "the file analysed while S3 answers garbage")
        wait_until(lambda: (metric_value(port, "edge_inference_errors_total", {"kind": "s3_garbage"}) or 0) >= 2, 30,
                 "counted garbage answers")
        assert metric_value(port, "edge_inference_outbox_events") == 4  # every event waits on disk
        assert metric_value(port, "edge_inference_events_uploaded_total") == 0
        assert metric_value(port, "edge_inference_batch_complete") == 0 and process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 143
    finally:
        process.kill()
        process.wait()
    # The same node later, S3 fixed: the ledger says the file is done, the outbox delivers.
    fixed = detect_args(videos, out, state, "--s3-endpoint", s3.url)
    result = run_worker(fixed, env)
    assert result.returncode == 0, result.stderr[-3000:]
    keys = event_keys(s3.list_keys("garbage-test/"))
    assert len([k for k in keys if k.endswith(".json")]) == 4 and len(keys) == 8
    local = directory_run[0] / "events"  # the same clip straight into a folder
    assert sorted(keys) == sorted(f"garbage-test/{k}.{ext}" for k in event_documents(local) for ext in ("jpg", "json"))
