"""Fixtures of the operator tests: sample jobs, settings, and the real control plane with the chart installed."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import kopf
import kubernetes
import kubernetes_validate
import pytest
from edge_inference_api import telemetry
from edge_inference_api.models import API_GROUP, LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE, PLURAL, InferenceJobSpec
from edge_inference_operator.builders import ParsedJob
from edge_inference_operator.handlers import register_handlers
from edge_inference_operator.metrics import OperatorMetrics
from edge_inference_operator.settings import OperatorSettings
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from support import waiting
from support.controlplane import ControlPlane, fake_node, node_ready
from support.helm import operator_user
from support.jobs import job_body


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


class FakeWorkerEndpoint:
    """A worker-style /metrics endpoint: the telemetry names in a real prometheus_client HTTP server."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0) -> None:
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
        self.server, self.thread = start_http_server(port, addr=address, registry=r)
        self.port = self.server.server_port
        self.url = f"http://{address}:{self.port}{telemetry.METRICS_PATH}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def worker_metrics():
    """Start worker-style metrics endpoints (127.0.0.1 and a free port unless told; a kwok pod's IP is
    a loopback address, so a test can serve a pod's metrics port on it); all stop afterwards."""
    started: list[FakeWorkerEndpoint] = []

    def start(address: str = "127.0.0.1", port: int = 0) -> FakeWorkerEndpoint:
        started.append(FakeWorkerEndpoint(address, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


# ------------------------------------------------------------------------------------------------
# The operator in-process against the real control plane (tests/support/controlplane.py), as the
# chart's ServiceAccount: the API server's RBAC authorizer decides what it may do.

# What a predicate may raise while the cluster is still getting there.
NOT_YET = (kubernetes.client.ApiException, OSError, KeyError, IndexError, TypeError, StopIteration)
VALIDATED_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
OPERATOR_USER = operator_user()


def raw(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """An official-client call's answer as the plain JSON the server sent."""
    return json.loads(call(*args, _preload_content=False, **kwargs).data)


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """support.waiting.wait_for, where an API error or a part of an object not there yet counts as not yet."""
    return await waiting.wait_for(predicate, timeout, what, expected=NOT_YET)


class Cluster:
    """The control plane driven as an admin with the official client and kubectl, in namespace default."""

    wait = staticmethod(wait_for)

    def __init__(self, api: ControlPlane) -> None:
        self.api = api
        self.client = api.api_client()
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)
        self.batch = kubernetes.client.BatchV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.nodes: list[str] = []

    def add_node(
        self,
        name: str,
        accelerator: str | None = "cpu",
        taints: list[dict[str, str]] | None = None,
        capacity: dict[str, str] | None = None,
        kwok: bool = True,
        ready: bool = False,
        wait: bool = True,
        **labels: str,
    ) -> None:
        """A node (kwok plays its kubelet unless `kwok` is false, see fake_node for `ready`); with an
        accelerator, a camera node of that kind.

        With `wait`, returns once it is Ready and the node lifecycle controller has lifted the
        not-ready taint that every new node starts with.
        """
        all_labels = dict(labels)
        if accelerator is not None:
            all_labels |= {LABEL_CAMERA_STORAGE: "true", LABEL_ACCELERATOR: accelerator}
        self.core.create_node(fake_node(name, all_labels, taints, capacity, kwok=kwok, ready=ready))
        self.nodes.append(name)
        if wait and kwok:
            self.api.wait(lambda: self.node_settled(name), f"node {name} Ready without the not-ready taint")

    def node_settled(self, name: str) -> bool:
        node = raw(self.core.read_node, name)
        taints = {t["key"] for t in node["spec"].get("taints", [])}
        return node_ready(node) and "node.kubernetes.io/not-ready" not in taints

    def label_node(self, name: str, labels: dict[str, str | None]) -> None:
        self.core.patch_node(name, {"metadata": {"labels": labels}})

    def apply(self, manifest: dict[str, Any]) -> None:
        result = self.api.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        assert result.returncode == 0, result.stderr

    def job(self, name: str = "lobby", namespace: str = "default") -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, PLURAL, name)

    def status(self, name: str = "lobby") -> dict[str, Any]:
        return self.job(name).get("status") or {}

    def condition(self, type_: str, name: str = "lobby") -> tuple[str, str] | None:
        found = next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)
        return (found["status"], found["reason"]) if found else None

    def daemonsets(self, namespace: str = "default") -> list[dict[str, Any]]:
        return raw(self.apps.list_namespaced_daemon_set, namespace)["items"]

    def batch_jobs(self, namespace: str = "default") -> list[dict[str, Any]]:
        return raw(self.batch.list_namespaced_job, namespace)["items"]

    def pods(self, namespace: str = "default") -> list[dict[str, Any]]:
        return raw(self.core.list_namespaced_pod, namespace)["items"]

    def events(self, namespace: str = "default") -> list[dict[str, Any]]:
        return raw(self.core.list_namespaced_event, namespace)["items"]

    def set_pod_status(self, name: str, namespace: str = "default", **status: Any) -> None:
        self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    def created_by_operator(self) -> list[dict[str, Any]]:
        items = []
        for kind, listing in (("DaemonSet", self.apps.list_daemon_set_for_all_namespaces),
                              ("Job", self.batch.list_job_for_all_namespaces)):  # fmt: skip
            for item in raw(listing)["items"]:
                items.append({"apiVersion": "apps/v1" if kind == "DaemonSet" else "batch/v1", "kind": kind, **item})
        for event in raw(self.core.list_event_for_all_namespaces)["items"]:
            if event.get("involvedObject", {}).get("kind") == "InferenceJob":  # posted by the operator (kopf)
                items.append({"apiVersion": "v1", "kind": "Event", **event})
        return items

    def clean(self) -> None:
        """Leave the cluster as the next test expects it: no jobs, children, pods, Events or test nodes."""
        for job in raw(self.custom.list_namespaced_custom_object, API_GROUP, "v1alpha1", "default", PLURAL)["items"]:
            # A stopped operator cannot remove its finalizer; nothing else waits for it here.
            name = job["metadata"]["name"]
            patch = {"metadata": {"finalizers": None}}
            self.custom.patch_namespaced_custom_object(API_GROUP, "v1alpha1", "default", PLURAL, name, patch)
        for kind in (f"{PLURAL}.{API_GROUP}", "daemonsets", "jobs", "events", "secrets"):
            self.api.kubectl_ok("delete", kind, "--all", "-n", "default", "--wait=false")
        # Forced: a pod on a node without kwok has no kubelet to confirm its end.
        self.api.kubectl_ok("delete", "pods", "--all", "-n", "default", "--force", "--grace-period=0")
        if self.nodes:
            self.api.kubectl_ok("delete", "node", *self.nodes, "--wait=false")

        def gone() -> bool:
            left = self.daemonsets() + self.batch_jobs() + self.pods()
            nodes = {n["metadata"]["name"] for n in raw(self.core.list_node)["items"]}
            return not left and not nodes & set(self.nodes)

        self.api.wait(gone, "the test's objects and nodes to be gone")


@pytest.fixture
async def cluster(control_plane: ControlPlane, operator_kubeconfig: Any, monkeypatch) -> Any:
    """The real control plane with the chart installed; the operator (KUBECONFIG) is the chart's ServiceAccount."""
    monkeypatch.setenv("KUBECONFIG", str(operator_kubeconfig))
    cluster = Cluster(control_plane)
    yield cluster
    await asyncio.to_thread(cluster.clean)


class OperatorProcess:
    """kopf running our handlers in this process, on its own event loop in a thread.

    Its own loop, because on shutdown kopf cancels every task of its loop that it did not find
    there at start-up (pytest-asyncio's fixture finalizers would be such tasks).
    """

    def __init__(self, settings: OperatorSettings) -> None:
        self.metrics = OperatorMetrics()
        self.registry = kopf.OperatorRegistry()
        register_handlers(self.registry, settings, metrics=self.metrics)
        self.kopf_settings = kopf.OperatorSettings()
        self.kopf_settings.watching.server_timeout = 30
        self.kopf_settings.watching.reconnect_backoff = 0.1
        self.kopf_settings.queueing.idle_timeout = 1
        self.kopf_settings.execution.default_backoff = 0.5  # a failed handler is retried soon in tests
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self.failure: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.kopf_settings,
                    clusterwide=True,
                    standalone=True,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                )
            )
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.failure = error
            self._ready.set()

    async def start(self) -> OperatorProcess:
        self._thread.start()
        assert await asyncio.to_thread(self._ready.wait, 30), "the operator did not get ready"
        assert self.failure is None, f"the operator failed to start: {self.failure!r}"
        return self

    async def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            await asyncio.to_thread(self._thread.join, 30)
            assert not self._thread.is_alive(), "the operator did not stop within 30 s"
        assert self.failure is None, f"the operator failed: {self.failure!r}"

    def reconciles(self, result: str = "ok") -> float:
        return self.metrics.reconciles.labels(result=result)._value.get()


def forbidden_requests(
    plane: ControlPlane, since: int, known: tuple[str, ...] = (), user: str = OPERATOR_USER
) -> list[str]:
    """The requests of `user` (the operator) the API server's authorizer refused (its audit events
    after index `since`), but for those during an API server restart and those `known`."""
    refused = [
        f"{e['verb']} {e['requestURI']}"
        for e in plane.audit_events(user)[since:]
        if e.get("responseStatus", {}).get("code") == 403 and not plane.during_a_restart(e)
    ]
    return sorted(set(refused) - set(known))


@pytest.fixture
async def start_operator(cluster: Cluster, request: pytest.FixtureRequest):
    """Start operators (a restart is a second start); stops them, then checks what they did.

    Every object they created must pass the real Kubernetes schema (strict), and the API server
    must have refused none of their requests (403 in its audit log), except those a test names
    with @pytest.mark.known_forbidden("VERB URI", ...): a known defect, until it is fixed.
    """
    marker = request.node.get_closest_marker("known_forbidden")
    known = marker.args if marker else ()
    started: list[OperatorProcess] = []
    audit_start = len(cluster.api.audit_events(OPERATOR_USER))

    async def start(settings: OperatorSettings | None = None) -> OperatorProcess:
        settings = settings or OperatorSettings(
            allowed_host_paths=("/srv/video",), metrics_port=0, reconcile_seconds=0.5, stale_after_seconds=1
        )
        started.append(await OperatorProcess(settings).start())
        return started[-1]

    yield start
    if not started:
        return
    for process in started:
        await process.stop()
    for obj in cluster.created_by_operator():
        if obj["kind"] != "Event" and not obj["metadata"].get("ownerReferences"):
            continue  # made by the test itself (standing in for a user)
        for version in VALIDATED_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    assert cluster.api.audit_events(OPERATOR_USER)[audit_start:], "the operator made no requests"
    forbidden = forbidden_requests(cluster.api, audit_start, known)
    assert not forbidden, f"the API server refused requests of the chart's ServiceAccount: {forbidden}"
