"""An S3 endpoint answering errors or garbage: each failure is counted by kind, retried, nothing lost.

The endpoint is a small HTTP proxy on loopback in front of the real SeaweedFS server: it answers
the next requests with scripted faults, then forwards everything untouched (the Host header too,
so the request signatures stay valid).
"""

import collections
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import prometheus_client
import pytest
from edge_inference_worker.outbox import Outbox
from edge_inference_worker.sinks import MinioSink, SinkError
from real_s3.producer import sample_event
from support.waiting import wait_until

S3_INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
S3_SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

# name -> (status, content type, body); None: drop the connection without an answer.
FAULTS = {
    "internal_error_500": (500, "application/xml", S3_INTERNAL_ERROR),
    "slow_down_503": (503, "application/xml", S3_SLOW_DOWN),
    "html_200_without_etag": (200, "text/html", b"<html><body>Welcome to nginx!</body></html>"),
    "html_502": (502, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "binary_500": (500, "application/octet-stream", bytes(range(256))),
    "connection_dropped": None,
}
EXPECTED_KIND = {
    "internal_error_500": "s3_error",
    "slow_down_503": "s3_error",
    "html_200_without_etag": "s3_garbage",
    "html_502": "s3_garbage",
    "binary_500": "s3_garbage",
    "connection_dropped": "s3_unreachable",
}


class FaultyProxy:
    """Answers queued faults first, then forwards requests to the real S3 server."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: collections.deque[str] = collections.deque()
        self.answered: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def handle_one(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.faults.popleft() if proxy.faults else None
                proxy.answered.append(fault or "forwarded")
                if fault is None:
                    self.forward(body)
                elif FAULTS[fault] is None:
                    self.close_connection = True
                else:
                    status, content_type, payload = FAULTS[fault]
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def forward(self, body: bytes) -> None:
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                    response = connection.getresponse()
                    payload = response.read()
                finally:
                    connection.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FaultyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3_server_module):
    with FaultyProxy(s3_server_module.endpoint) as faulty:
        yield faulty


def proxy_sink(proxy, s3_server) -> MinioSink:
    # The region is given so that every request is an upload (no bucket-location lookup).
    return MinioSink(
        proxy.endpoint,
        s3_server.bucket,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
        region="us-east-1",
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_bad_answer_is_a_sink_error_of_its_kind(proxy, s3_server_module, fault):
    proxy.faults.append(fault)
    with pytest.raises(SinkError) as raised:
        proxy_sink(proxy, s3_server_module).put_object(f"single/{fault}.json", b"{}", "application/json")
    assert raised.value.kind == EXPECTED_KIND[fault]
    assert s3_server_module.list_keys(f"single/{fault}") == []


def test_the_proxy_forwards_signed_requests_untouched(proxy, s3_server_module):
    proxy_sink(proxy, s3_server_module).put_object("forwarded/x.json", b"{}", "application/json")
    assert proxy.answered == ["forwarded"]
    assert s3_server_module.get("forwarded/x.json") == b"{}"


def test_errors_and_garbage_are_counted_retried_and_lose_nothing(proxy, s3_server_module, tmp_path):
    s3_server = s3_server_module
    script = [*FAULTS, *FAULTS]  # every kind of fault, twice, in a row
    proxy.faults.extend(script)
    registry = prometheus_client.CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox", proxy_sink(proxy, s3_server), 1 << 26, registry, backoff=(0.01, 0.05))
    events = [sample_event(i) for i in range(20)]
    for event in events:
        assert outbox.put(*event)
    outbox.start()
    try:
        wait_until(lambda: outbox.depth() == 0, 60, "the outbox to drain through the faults")
    finally:
        outbox.close(flush_timeout=5)

    assert proxy.answered[: len(script)] == script
    for kind in set(EXPECTED_KIND.values()):
        expected = sum(EXPECTED_KIND[fault] == kind for fault in script)
        assert registry.get_sample_value("edge_inference_errors_total", {"kind": kind}) == expected, kind
    assert registry.get_sample_value("edge_inference_events_uploaded_total") == len(events)
    assert s3_server.list_keys("events/") == sorted(k + s for k, _, _ in events for s in (".jpg", ".json"))
    for key_base, metadata, snapshot in events:
        assert s3_server.get(key_base + ".json") == metadata
        assert s3_server.get(key_base + ".jpg") == snapshot
