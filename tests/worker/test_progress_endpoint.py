"""The worker's /progress: its metrics' progress figures as compact JSON, on a kept-alive connection."""

from __future__ import annotations

import http.client
import json

import pytest
from edge_inference_api import telemetry
from edge_inference_worker.httpserver import HealthState, serve
from edge_inference_worker.metrics import WorkerMetrics
from edge_inference_worker.outbox import OutboxMetrics
from prometheus_client import CollectorRegistry


@pytest.fixture
def worker():
    """The worker's real registry (pipeline and outbox collectors) behind its real HTTP server."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    outbox = OutboxMetrics(registry, metrics.errors)
    server = serve(0, registry, HealthState(), host="127.0.0.1")
    yield metrics, outbox, server
    server.shutdown()
    server.server_close()


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, str, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type") or "", response.read()


def test_progress_is_the_metrics_figures_as_json_on_one_kept_alive_connection(worker) -> None:
    metrics, outbox, server = worker
    metrics.files.labels(outcome="done").inc(2)
    metrics.files.labels(outcome="corrupt").inc(5)  # not done
    metrics.frames_analysed.inc(300)
    outbox.depth.set(4)
    outbox.events_uploaded.inc(9)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    status, content_type, body = get(connection, telemetry.PROGRESS_PATH)
    first_socket = connection.sock
    metrics.frames_analysed.inc(50)
    metrics.batch_complete.set(1)
    _, _, again = get(connection, telemetry.PROGRESS_PATH)
    assert (status, content_type) == (200, "application/json")
    report = telemetry.ProgressReport.model_validate_json(body)
    assert (report.files_done, report.frames_analysed, report.events_uploaded, report.events_waiting) == (2, 300, 9, 4)
    assert report.heartbeat is not None and report.heartbeat > 1_700_000_000
    assert json.loads(again)["framesAnalysed"] == 350 and json.loads(again)["batchComplete"] is True
    assert connection.sock is first_socket  # the same TCP connection answered both
    assert len(body) < 300  # compact: the whole exposition is tens of kilobytes
    connection.close()


def test_a_stopped_server_ends_its_kept_alive_connections(worker) -> None:
    """A stopped worker stops answering, even on a connection the operator keeps open."""
    _, _, server = worker
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    assert get(connection, telemetry.PROGRESS_PATH)[0] == 200
    server.shutdown()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(connection, telemetry.PROGRESS_PATH)
    connection.close()
