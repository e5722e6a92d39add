"""/metrics, /healthz (liveness: the heartbeat is recent) and /readyz (model loaded), on one port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge_inference_api.telemetry import LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# A frame batch or a blocked outbox write never takes this long: the loop beats while it waits.
LIVENESS_WINDOW_SECONDS = 120.0


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


def serve(port: int, registry: CollectorRegistry, health: HealthState, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the server on a daemon thread; `shutdown()` the returned server to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == METRICS_PATH:
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
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

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
