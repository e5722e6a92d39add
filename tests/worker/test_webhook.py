"""Webhook notifications from a real worker run to a local receiver that refuses, goes down and comes back.

Every event of the wanted class is delivered, signed, after its document is in S3; a receiver
that keeps refusing never holds up the uploads; what it did not take is delivered by the next run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support.s3server import free_ports
from support.waiting import wait_until
from support.worker_harness import detect_args, run_worker

HMAC_KEY = "test-hmac-key-0123456789"


class Receiver:
    """A webhook receiver on a fixed port: `answer` is the HTTP status it gives; `start`/`stop` for outages."""

    def __init__(self, port: int, answer: int = 200) -> None:
        self.port, self.answer = port, answer
        self.received: list[tuple[dict, bytes]] = []  # (headers, body) of every request, accepted or not
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted_ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.received] if self.answer == 200 else []


def person_documents(s3, prefix: str) -> dict[str, dict]:
    documents = {key: json.loads(s3.get(key)) for key in s3.list_keys(f"{prefix}/ns/") if key.endswith(".json")}
    return {key: doc for key, doc in documents.items() if doc["class"] == "person"}


def test_every_event_is_delivered_through_refusals_outages_and_a_restart(
    short_clip, worker_env, s3_server_module, directory_run, tmp_path: Path
):
    s3, prefix, state = s3_server_module, "notified", tmp_path / "state"
    receiver = Receiver(free_ports(1)[0], answer=500)
    receiver.start()
    env = {**worker_env, **s3.credentials_env(), "EDGE_INFERENCE_WEBHOOK_HMAC_KEY": HMAC_KEY,
           "EDGE_INFERENCE_WEBHOOK_DRAIN_SECONDS": "1"}
    args = detect_args(short_clip.path.parent.parent, f"s3://{s3.bucket}/{prefix}", state, "--s3-endpoint", s3.url,
                       "--webhook-url", f"http://127.0.0.1:{receiver.port}/hook", "--webhook-classes", "person")
    try:
        # 1. The receiver refuses everything (HTTP 500): the events are all uploaded regardless, and the
        #    Batch run ends once its short grace for the webhook is over; the messages wait on the node.
        first = run_worker(args, env)
        assert first.returncode == 0, first.stderr[-3000:]
        persons = person_documents(s3, prefix)
        local = [doc for doc in directory_run_documents(directory_run) if doc["class"] == "person"]
        assert persons and sorted(d["id"] for d in persons.values()) == sorted(d["id"] for d in local)
        assert receiver.received, "the worker never tried the receiver"
        waiting = list((state / "webhook-outbox" / "entries").iterdir())
        assert len(waiting) == len(persons)  # nothing lost, nothing delivered

        # 2. A new run of the same job on the same node, with the receiver down (connection refused): it
        #    waits; the receiver comes back and takes every message.
        receiver.stop()
        receiver.received.clear()
        env["EDGE_INFERENCE_WEBHOOK_DRAIN_SECONDS"] = "120"
        log = tmp_path / "second.log"
        with log.open("w") as output:
            second = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "webhook_unreachable" in log.read_text() or second.poll() is not None, 60,
                       "the worker to find the receiver down")
            assert second.poll() is None, log.read_text()[-3000:]
            receiver.answer = 200
            receiver.start()
            second.wait(timeout=120)
        finally:
            second.kill()
        stderr = log.read_text()
        assert second.returncode == 0, stderr[-3000:]
    finally:
        receiver.stop()

    delivered = {}
    for headers, body in receiver.received:
        assert headers["X-Edge-Inference-Signature"] == "sha256=" + hmac.new(
            HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
        message = json.loads(body)
        assert headers["X-Edge-Inference-Event"] == message["id"]
        delivered.setdefault(message["id"], message)
    assert sorted(delivered) == sorted(doc["id"] for doc in persons.values())  # every one, at least once
    for key, doc in persons.items():
        message = delivered[doc["id"]]
        assert message["document"] == key and message["snapshot"] == doc["snapshot"]["key"]
        assert message["bucket"] == s3.bucket and message["class"] == "person" and message["node"] == "node-a"
        assert s3.get(message["snapshot"])  # the links of the message lead to stored objects
    assert list((state / "webhook-outbox" / "entries").iterdir()) == []


def directory_run_documents(directory_run) -> list[dict]:
    base = directory_run[0] / "events"
    return [json.loads(p.read_text()) for p in base.rglob("*.json") if "_index" not in p.relative_to(base).parts]

