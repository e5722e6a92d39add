"""kopf wiring only: which events call the (level-based) reconciler. Bodies live in reconcile.py.

`register_handlers` puts the handlers into a registry given by the caller, so that the console
script and the tests (several operator instances per process, short timer intervals) share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from edge_inference_api.models import API_GROUP, KIND, LABEL_CAMERA_STORAGE, PLURAL

from edge_inference_operator import kube as k
from edge_inference_operator.builders import LABEL_JOB, LABEL_MANAGED_BY, MANAGER, label_value
from edge_inference_operator.metrics import OperatorMetrics, serve_metrics
from edge_inference_operator.placement import NodeInfo
from edge_inference_operator.reconcile import Reconciler, utcnow
from edge_inference_operator.settings import OperatorSettings

WORKERS = {LABEL_MANAGED_BY: MANAGER}
WORKERS_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER}"
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Indices:
    """kopf's live in-memory indices that a reconcile reads."""

    camera_nodes: kopf.Index[str, NodeInfo]
    worker_pods: kopf.Index[tuple[str, str], dict[str, Any]]


def _nodes(index: kopf.Index[str, NodeInfo]) -> dict[str, NodeInfo]:
    return {name: info for name, store in index.items() for info in store}


def _pods(index: kopf.Index[tuple[str, str], dict[str, Any]], namespace: str, name: str) -> list[dict[str, Any]]:
    return list(index.get((namespace, label_value(name)), []))


def register_handlers(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    kube_factory: Callable[[], k.Kube] = k.Kube.from_environment,
    metrics: OperatorMetrics | None = None,
) -> None:
    """Register every handler of the operator into `registry`."""
    operator_metrics = metrics or OperatorMetrics()
    runtime: dict[str, Any] = {}

    def reconciler() -> Reconciler:
        return runtime["reconciler"]

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: the service account; elsewhere (tests, `make demo`): KUBECONFIG.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    operator_settings = settings  # `settings` is kopf's own inside the startup handler

    @kopf.on.startup(registry=registry)
    async def configure(
        settings: kopf.OperatorSettings,
        inference_jobs: kopf.Index,
        camera_nodes: kopf.Index,
        worker_pods: kopf.Index,
        namespace_phases: kopf.Index,
        **_: Any,
    ) -> None:
        settings.peering.standalone = True  # one replica; see the chart's Deployment
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=API_GROUP, key="last-handled-configuration"
        )
        # The operator posts its own Events (one per condition transition); kopf only its failures.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = MANAGER
        # Only our workers and camera nodes stream to us, filtered by the API server.
        settings.watching.label_selectors["v1", "pods"] = WORKERS_SELECTOR
        settings.watching.label_selectors["apps", "daemonsets"] = WORKERS_SELECTOR
        settings.watching.label_selectors["batch", "jobs"] = WORKERS_SELECTOR
        settings.watching.label_selectors["v1", "nodes"] = LABEL_CAMERA_STORAGE
        def terminating(namespace: str) -> bool:
            return "Terminating" in namespace_phases.get(namespace, [])

        runtime["reconciler"] = Reconciler(operator_settings, kube_factory(), operator_metrics, utcnow, terminating)
        if operator_settings.metrics_port:
            runtime["metrics_server"] = await serve_metrics(operator_metrics, operator_settings.metrics_port)
        # The indices are live: every reconcile sees the nodes and pods as they are now.
        runtime["indices"] = Indices(camera_nodes, worker_pods)
        runtime["resync"] = asyncio.create_task(resync_forever(inference_jobs))

    @kopf.on.cleanup(registry=registry)
    async def shut_down(**_: Any) -> None:
        if "resync" in runtime:
            task = runtime.pop("resync")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "metrics_server" in runtime:
            await runtime.pop("metrics_server").cleanup()
        if "reconciler" in runtime:
            await runtime.pop("reconciler").close()

    @kopf.index(API_GROUP, PLURAL, id="inference_jobs", registry=registry)
    def inference_jobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (namespace, name): {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}
        }

    @kopf.index("v1", "namespaces", id="namespace_phases", registry=registry)
    def namespace_phases(name: str, status: Mapping[str, Any], **_: Any) -> dict[str, str]:
        return {name: status.get("phase") or "Active"}

    @kopf.index("v1", "nodes", labels={LABEL_CAMERA_STORAGE: kopf.PRESENT}, id="camera_nodes", registry=registry)
    def camera_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, NodeInfo]:
        return {name: NodeInfo.from_node(body)}

    @kopf.index("v1", "pods", labels=WORKERS, id="worker_pods", registry=registry)
    def worker_pods(
        namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        # Only what status and scraping read: a fleet's worth of full pod bodies would be memory for nothing.
        summary = {
            "metadata": {k: body.metadata.get(k) for k in ("name", "labels", "creationTimestamp")},
            "spec": {
                "nodeName": body.spec.get("nodeName"),
                "containers": [
                    {"name": c.get("name"), "ports": c.get("ports")} for c in body.spec.get("containers", [])
                ],
            },
            "status": dict(body.status),
        }
        return {(namespace, labels.get(LABEL_JOB, "")): summary}

    async def converge(body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        indices: Indices = runtime["indices"]
        # A job being deleted, or in a namespace being deleted, goes with its children: nothing to make
        # (in a Terminating namespace the API server refuses every create with a 403).
        if meta.get("deletionTimestamp") or reconciler().terminating(meta["namespace"]):
            return
        nodes, pods = _nodes(indices.camera_nodes), _pods(indices.worker_pods, meta["namespace"], meta["name"])
        await reconciler().reconcile(body, nodes, pods)

    @kopf.on.resume(API_GROUP, PLURAL, id="converge-on-resume", registry=registry)
    @kopf.on.create(API_GROUP, PLURAL, id="converge-on-create", registry=registry)
    @kopf.on.update(API_GROUP, PLURAL, id="converge-on-update", registry=registry)
    async def on_change(body: kopf.Body, **_: Any) -> None:
        await converge(body)

    async def resync_forever(jobs: kopf.Index) -> None:
        """The periodic level-based resync of every job, one loop for all of them.

        Not a per-object kopf timer: kopf guards timers with a finalizer on every job, and a job
        must stay deletable while the operator is down (children go by garbage collection).
        """
        while True:
            await asyncio.sleep(operator_settings.reconcile_seconds)
            for store in list(jobs.values()):
                for body in list(store):
                    try:
                        await converge(body)
                    except Exception:  # noqa: BLE001 - counted by the reconciler; retried next tick
                        meta = body.get("metadata", {})
                        logger.exception("resync of %s/%s failed", meta.get("namespace"), meta.get("name"))

    @kopf.on.event(API_GROUP, PLURAL, registry=registry)
    def forget_job(type: str | None, namespace: str, name: str, **_: Any) -> None:
        # Children go by owner references (garbage collection); only in-memory state is left here.
        if type == "DELETED":
            reconciler().forget(namespace, name)

    @kopf.on.event("apps", "v1", "daemonsets", labels=WORKERS, registry=registry)
    @kopf.on.event("batch", "v1", "jobs", labels=WORKERS, registry=registry)
    async def child_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        # A child deleted by hand, or a Batch Job that finished, is acted on now, not at the next tick;
        # other changes (e.g. a DaemonSet's status counters) wait for the timer.
        finished = any(
            cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True"
            for cond in body.get("status", {}).get("conditions") or []
        )
        if not (type == "DELETED" or (type == "MODIFIED" and body.get("kind") == "Job" and finished)):
            return
        owner = next((o for o in body.metadata.get("ownerReferences", []) if o.get("kind") == KIND), None)
        if owner is None or reconciler().busy(body.metadata.namespace, owner["name"]):
            return
        job = await k.read_job(reconciler().kube, body.metadata.namespace, owner["name"])
        if job is None or job.get("metadata", {}).get("uid") != owner.get("uid"):
            return
        await converge(job)
