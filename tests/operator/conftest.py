"""Fixtures of the operator tests: sample jobs, settings, and the emulator (from support)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from edge_inference_operator.builders import ParsedJob
from edge_inference_operator.settings import OperatorSettings
from edge_inference_api import telemetry
from edge_inference_api.models import InferenceJobSpec
from support.kube_emulator import kube_api  # noqa: F401  (fixture)

BASE_SPEC: dict[str, Any] = {
    "input": {"hostPath": "/srv/video/lobby", "include": ["**/*.mp4"]},
    "output": {
        "endpoint": "minio.storage:9000",
        "bucket": "events",
        "prefix": "lobby",
        "secure": False,
        "credentialsSecretRef": {"name": "s3-credentials"},
    },
}


def job_body(name: str = "lobby", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """An InferenceJob manifest: BASE_SPEC with top-level spec keys replaced by `spec`."""
    return {
        "apiVersion": "edgeinference.io/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**copy.deepcopy(BASE_SPEC), **spec},
    }


def parsed_job(name: str = "lobby", namespace: str = "default", uid: str = "uid-1", **spec: Any) -> ParsedJob:
    body = job_body(name, namespace, **spec)
    return ParsedJob(namespace=namespace, name=name, uid=uid, spec=InferenceJobSpec.model_validate(body["spec"]))


@pytest.fixture
def make_body():
    """Factory of InferenceJob manifests (see job_body)."""
    return job_body


@pytest.fixture
def make_job():
    """Factory of ParsedJob (see parsed_job)."""
    return parsed_job


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(allowed_host_paths=("/srv/video",), metrics_port=0)


class WorkerMetrics:
    """A worker-style /metrics endpoint: the telemetry names in a real prometheus_client HTTP server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.files = Counter(telemetry.FILES, "files", ["outcome"], registry=r)
        self.frames = Counter(telemetry.FRAMES_ANALYSED, "frames", registry=r)
        self.uploaded = Counter(telemetry.EVENTS_UPLOADED, "uploaded", registry=r)
        self.outbox = Gauge(telemetry.OUTBOX_DEPTH, "outbox", registry=r)
        self.outbox_full = Gauge(telemetry.OUTBOX_FULL, "full", registry=r)
        self.oldest = Gauge(telemetry.OUTBOX_OLDEST_AGE, "oldest", registry=r)
        self.heartbeat = Gauge(telemetry.HEARTBEAT, "heartbeat", registry=r)
        self.batch_complete = Gauge(telemetry.BATCH_COMPLETE, "complete", registry=r)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=r)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}{telemetry.METRICS_PATH}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def worker_metrics():
    """Start worker-style metrics endpoints on 127.0.0.1 (as many as asked); all stop afterwards."""
    started: list[WorkerMetrics] = []

    def start() -> WorkerMetrics:
        started.append(WorkerMetrics())
        return started[-1]

    yield start
    for server in started:
        server.stop()
