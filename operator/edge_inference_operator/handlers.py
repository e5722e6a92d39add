"""kopf wiring only: which events call the (level-based) reconciler. Bodies live in reconcile.py.

`register_handlers` puts the handlers into a registry given by the caller, so that the console
script and the tests (several operator instances per process, short timer intervals) share them.
What the handlers share (the reconciler, kopf's indices, the resync task) lives in one
`OperatorRuntime`, made at startup and closed at cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from aiohttp import web
from edge_inference_api.models import API_GROUP, KIND, LABEL_CAMERA_STORAGE, PLURAL

from edge_inference_operator import kube as k
from edge_inference_operator.metrics import OperatorMetrics, serve_metrics
from edge_inference_operator.names import LABEL_JOB, MANAGED, MANAGED_SELECTOR, MANAGER, label_value
from edge_inference_operator.observed import job_outcome
from edge_inference_operator.placement import NodeInfo
from edge_inference_operator.reconcile import Reconciler, utcnow
from edge_inference_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Indices:
    """kopf's live in-memory indices that a reconcile reads."""

    camera_nodes: kopf.Index[str, NodeInfo]
    worker_pods: kopf.Index[tuple[str, str], dict[str, Any]]

    def nodes(self) -> dict[str, NodeInfo]:
        """Every camera node, by name."""
        return {name: info for name, store in self.camera_nodes.items() for info in store}

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The worker pods of one job."""
        return list(self.worker_pods.get((namespace, label_value(name)), []))


def needs_reconcile(event_type: str | None, child: Mapping[str, Any]) -> bool:
    """Whether a child's event is acted on now rather than at the next resync.

    A child deleted by hand, or a Batch Job that finished, is; other changes (e.g. a DaemonSet's
    status counters) wait for the timer.
    """
    if event_type == "DELETED":
        return True
    return event_type == "MODIFIED" and child.get("kind") == "Job" and job_outcome(child) is not None


def owning_job(child: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The InferenceJob ownerReference of a child, if it has one."""
    references = child.get("metadata", {}).get("ownerReferences") or []
    return next((o for o in references if o.get("kind") == KIND), None)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's own settings for this operator."""
    settings.peering.standalone = True  # one replica; see the chart's Deployment
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # The operator posts its own Events (one per condition transition); kopf only its failures.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = MANAGER
    # Only our workers and camera nodes stream to us, filtered by the API server.
    settings.watching.label_selectors["v1", "pods"] = MANAGED_SELECTOR
    settings.watching.label_selectors["apps", "daemonsets"] = MANAGED_SELECTOR
    settings.watching.label_selectors["batch", "jobs"] = MANAGED_SELECTOR
    settings.watching.label_selectors["v1", "nodes"] = LABEL_CAMERA_STORAGE


def pod_summary(body: kopf.Body) -> dict[str, Any]:
    """Only what status and scraping read of a worker pod: a fleet's worth of full bodies would be memory
    for nothing."""
    return {
        "metadata": {key: body.metadata.get(key) for key in ("name", "labels", "creationTimestamp")},
        "spec": {
            "nodeName": body.spec.get("nodeName"),
            "containers": [
                {"name": container.get("name"), "ports": container.get("ports")}
                for container in body.spec.get("containers", [])
            ],
        },
        "status": dict(body.status),
    }


class OperatorRuntime:
    """What the handlers of one operator instance share, from startup to cleanup."""

    def __init__(
        self, settings: OperatorSettings, kube_factory: Callable[[], k.Kube], metrics: OperatorMetrics
    ) -> None:
        self.settings = settings
        self.kube_factory = kube_factory
        self.metrics = metrics
        self._reconciler: Reconciler | None = None
        self._indices: Indices | None = None
        self._metrics_server: web.AppRunner | None = None
        self._resync: asyncio.Task[None] | None = None

    @property
    def reconciler(self) -> Reconciler:
        """The reconciler (made at startup; kopf calls no resource handler before that)."""
        assert self._reconciler is not None, "the operator has not started"
        return self._reconciler

    async def start(self, indices: Indices, inference_jobs: kopf.Index, namespace_phases: kopf.Index) -> None:
        """Make the reconciler, serve metrics and start the periodic resync."""

        def terminating(namespace: str) -> bool:
            return "Terminating" in namespace_phases.get(namespace, [])

        self._reconciler = Reconciler(self.settings, self.kube_factory(), self.metrics, utcnow, terminating)
        if self.settings.metrics_port:
            self._metrics_server = await serve_metrics(self.metrics, self.settings.metrics_port)
        # The indices are live: every reconcile sees the nodes and pods as they are now.
        self._indices = indices
        self._resync = asyncio.create_task(self.resync_forever(inference_jobs))

    async def stop(self) -> None:
        """Stop the resync, the metrics server and the reconciler's connections."""
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
            self._resync = None
        if self._metrics_server is not None:
            await self._metrics_server.cleanup()
            self._metrics_server = None
        if self._reconciler is not None:
            await self._reconciler.close()
            self._reconciler = None

    async def converge(self, body: Mapping[str, Any]) -> None:
        """Reconcile one job with the nodes and pods as the indices hold them now."""
        meta = body["metadata"]
        # A job being deleted, or in a namespace being deleted, goes with its children: nothing to make
        # (in a Terminating namespace the API server refuses every create with a 403).
        if meta.get("deletionTimestamp") or self.reconciler.terminating(meta["namespace"]):
            return
        assert self._indices is not None
        pods = self._indices.pods(meta["namespace"], meta["name"])
        await self.reconciler.reconcile(body, self._indices.nodes(), pods)

    async def resync_forever(self, jobs: kopf.Index) -> None:
        """The periodic level-based resync of every job, one loop for all of them.

        Not a per-object kopf timer: kopf guards timers with a finalizer on every job, and a job
        must stay deletable while the operator is down (children go by garbage collection).
        """
        while True:
            await asyncio.sleep(self.settings.reconcile_seconds)
            await self.resync(jobs)

    async def resync(self, jobs: kopf.Index) -> None:
        """Converge every job once; one job's failure does not stop the others."""
        for store in list(jobs.values()):
            for body in list(store):
                try:
                    await self.converge(body)
                except Exception:  # noqa: BLE001 - counted by the reconciler; retried next tick
                    meta = body.get("metadata", {})
                    logger.exception("resync of %s/%s failed", meta.get("namespace"), meta.get("name"))

    async def child_changed(self, event_type: str | None, child: Mapping[str, Any]) -> None:
        """Reconcile the owning job now when a child's event calls for it (see needs_reconcile)."""
        if not needs_reconcile(event_type, child):
            return
        owner = owning_job(child)
        namespace = child["metadata"]["namespace"]
        if owner is None or self.reconciler.busy(namespace, owner["name"]):
            return
        job = await k.read_job(self.reconciler.kube, namespace, owner["name"])
        if job is None or job.get("metadata", {}).get("uid") != owner.get("uid"):
            return
        await self.converge(job)


def register_handlers(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    kube_factory: Callable[[], k.Kube] = k.Kube.from_environment,
    metrics: OperatorMetrics | None = None,
) -> OperatorRuntime:
    """Register every handler of the operator into `registry`; returns the runtime they share."""
    runtime = OperatorRuntime(settings, kube_factory, metrics or OperatorMetrics())
    _register_lifecycle(registry, runtime)
    _register_indices(registry)
    _register_events(registry, runtime)
    return runtime


def _register_lifecycle(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: the service account; elsewhere (tests, `make demo`): KUBECONFIG.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    # kopf passes indices by their names, which its handler protocols cannot list.
    @kopf.on.startup(registry=registry)  # type: ignore[arg-type]
    async def configure(
        settings: kopf.OperatorSettings,
        inference_jobs: kopf.Index,
        camera_nodes: kopf.Index,
        worker_pods: kopf.Index,
        namespace_phases: kopf.Index,
        **_: Any,
    ) -> None:
        configure_kopf(settings)
        await runtime.start(Indices(camera_nodes, worker_pods), inference_jobs, namespace_phases)

    @kopf.on.cleanup(registry=registry)
    async def shut_down(**_: Any) -> None:
        await runtime.stop()


def _register_indices(registry: kopf.OperatorRegistry) -> None:
    # Namespaced resources: kopf's protocols type `namespace` as optional for every resource.
    @kopf.index(API_GROUP, PLURAL, id="inference_jobs", registry=registry)  # type: ignore[arg-type]
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

    @kopf.index("v1", "pods", labels=MANAGED, id="worker_pods", registry=registry)  # type: ignore[arg-type]
    def worker_pods(
        namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace, labels.get(LABEL_JOB, "")): pod_summary(body)}


def _register_events(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.resume(API_GROUP, PLURAL, id="converge-on-resume", registry=registry)
    @kopf.on.create(API_GROUP, PLURAL, id="converge-on-create", registry=registry)
    @kopf.on.update(API_GROUP, PLURAL, id="converge-on-update", registry=registry)
    async def on_change(body: kopf.Body, **_: Any) -> None:
        await runtime.converge(body)

    @kopf.on.event(API_GROUP, PLURAL, registry=registry)  # type: ignore[arg-type]
    def forget_job(type: str | None, namespace: str, name: str, **_: Any) -> None:
        # Children go by owner references (garbage collection); only in-memory state is left here.
        if type == "DELETED":
            runtime.reconciler.forget(namespace, name)

    @kopf.on.event("apps", "v1", "daemonsets", labels=MANAGED, registry=registry)
    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=registry)
    async def child_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        await runtime.child_changed(type, body)
