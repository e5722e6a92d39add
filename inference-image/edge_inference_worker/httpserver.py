"""/metrics, /progress (the operator's compact view of the metrics), /healthz (liveness: the heartbeat
is recent) and /readyz (model loaded), on one port."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_inference_api.telemetry import (
    LIVENESS_PATH,
    METRICS_PATH,
    PROGRESS_PATH,
    READINESS_PATH,
    progress_from_samples,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# A frame batch or a blocked outbox write never takes this long: the loop beats while it waits.
LIVENESS_WINDOW_SECONDS = 120.0
# The operator keeps its connection open between scrapes (one per worker, asked every half Stale grace);
# a connection idle longer than this is closed, and the operator simply connects again.
IDLE_CONNECTION_SECONDS = 300.0


class HealthState:
    """What the probes read: the last heartbeat and whether the model is loaded."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last_beat = clock()
        self.ready = False

    def beat(self) -> None:
        self.last_beat = self._clock()

    def alive(self) -> bool:
        return self._clock() - self.last_beat < LIVENESS_WINDOW_SECONDS


# What socketserver hands its hooks: a TCP server's connected socket (a datagram server's pair never comes here).
Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    """A threading server whose `shutdown()` also ends its kept-alive connections: a stopped worker stops answering."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[Request] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Request, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Request, client_address: Any) -> None:
        """A client dropping a kept-alive connection is no error worth a traceback in the worker's log."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def shutdown(self) -> None:
        super().shutdown()
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            if not isinstance(connection, socket.socket):
                continue
            try:
                connection.shutdown(socket.SHUT_RDWR)  # its handler reads end-of-stream and returns
            except OSError:
                pass  # already closed by its client


def progress_json(registry: CollectorRegistry) -> bytes | None:
    """The worker's ProgressReport as JSON (None before the worker's metrics exist)."""
    samples = (sample for family in registry.collect() for sample in family.samples)
    report = progress_from_samples(samples)
    return None if report is None else report.model_dump_json(by_alias=True).encode()


def serve(port: int, registry: CollectorRegistry, health: HealthState, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the server on a daemon thread; `shutdown()` the returned server to stop it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the operator asks every worker of the fleet again and again
        timeout = IDLE_CONNECTION_SECONDS

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == METRICS_PATH:
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == PROGRESS_PATH:
                progress = progress_json(registry)
                self._reply(200 if progress else 503, progress or b"no progress yet\n", "application/json")
            elif path == LIVENESS_PATH:
                ok = health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == READINESS_PATH:
                self._reply(200 if health.ready else 503, b"ready\n" if health.ready else b"loading\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Probes every few seconds would drown the JSON log."""

    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
