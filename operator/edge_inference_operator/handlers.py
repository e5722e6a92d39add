"""kopf wiring only: which events call the (level-based) reconciler. Bodies live in reconcile.py.

`register_handlers` puts the handlers into a registry given by the caller, so that the console
script and the tests (several operator instances per process, short timer intervals) share them.
What the handlers share (the reconciler, the watched cluster state of cache.py, the resync task)
lives in one `OperatorRuntime`, made at startup and closed at cleanup. kopf itself watches only
InferenceJobs (their create, update, resume and delete handlers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from aiohttp import web
from edge_inference_api.models import API_GROUP, KIND, PLURAL, Mode

from edge_inference_operator import kube as kube_api
from edge_inference_operator.cache import ClusterCache
from edge_inference_operator.metrics import OperatorMetrics, serve_metrics
from edge_inference_operator.names import MANAGER
from edge_inference_operator.observed import job_outcome
from edge_inference_operator.reconcile import Observed, Reconciler, utcnow
from edge_inference_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


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


class OperatorRuntime:
    """What the handlers of one operator instance share, from startup to cleanup."""

    def __init__(
        self, settings: OperatorSettings, kube_factory: Callable[[], kube_api.Kube], metrics: OperatorMetrics
    ) -> None:
        self.settings = settings
        self.kube_factory = kube_factory
        self.metrics = metrics
        self._reconciler: Reconciler | None = None
        self._cache: ClusterCache | None = None
        self._metrics_server: web.AppRunner | None = None
        self._resync: asyncio.Task[None] | None = None
        self._child_tasks: set[asyncio.Task[None]] = set()

    @property
    def reconciler(self) -> Reconciler:
        """The reconciler (made at startup; kopf calls no resource handler before that)."""
        assert self._reconciler is not None, "the operator has not started"
        return self._reconciler

    @property
    def cache(self) -> ClusterCache:
        """The watched cluster state (listed at startup, before any reconcile)."""
        assert self._cache is not None, "the operator has not started"
        return self._cache

    async def start(self) -> None:
        """List and watch the cluster, make the reconciler, serve metrics and start the periodic resync."""
        kube = self.kube_factory()
        kube.count = self.metrics.api_request
        self._cache = ClusterCache(kube, self.on_child_event, self.on_job_deleted)
        started = time.monotonic()
        await self._cache.start()
        logger.info("listed the cluster in %.1f s", time.monotonic() - started)
        self._reconciler = Reconciler(self.settings, kube, self.metrics, utcnow, self._cache.terminating)
        if self.settings.metrics_port:
            self._metrics_server = await serve_metrics(self.metrics, self.settings.metrics_port)
        self._resync = asyncio.create_task(self.resync_forever())

    async def stop(self) -> None:
        """Stop the resync, the watches, the metrics server and the reconciler's connections."""
        for task in [*self._child_tasks, *([self._resync] if self._resync else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._resync = None
        if self._cache is not None:
            await self._cache.stop()
            self._cache = None
        if self._metrics_server is not None:
            await self._metrics_server.cleanup()
            self._metrics_server = None
        if self._reconciler is not None:
            await self._reconciler.close()
            self._reconciler = None

    async def converge(self, body: Mapping[str, Any]) -> None:
        """Reconcile one job with the nodes, pods and children as the watches hold them now."""
        meta = body["metadata"]
        # A job being deleted, or in a namespace being deleted, goes with its children: nothing to make
        # (in a Terminating namespace the API server refuses every create with a 403); nor for one already
        # deleted (a resync's older body).
        if (
            meta.get("deletionTimestamp")
            or self.reconciler.terminating(meta["namespace"])
            or self.cache.deleted(meta["uid"])
        ):
            return
        namespace, name, cache = meta["namespace"], meta["name"], self.cache

        def observe() -> Observed:
            children = cache.children(namespace, name, meta["uid"])
            spec = body.get("spec") or {}
            # Batch tells a target node that is gone from one that only lost a label: it sees every node.
            selector = None if spec.get("mode") == Mode.BATCH.value else spec.get("nodeSelector")
            return Observed(cache.nodes(selector), cache.pods.of_job(namespace, name), children)

        await self.reconciler.reconcile(body, observe)
        if self.cache.deleted(meta["uid"]):
            # Deleted while this reconcile ran on an older body: what it claimed (its input folder) goes again.
            self.reconciler.forget(namespace, name)

    def on_job_deleted(self, namespace: str, name: str) -> None:
        """An InferenceJob is gone: its children go by garbage collection; only in-memory state is left here."""
        if self._reconciler is not None:
            self._reconciler.forget(namespace, name)

    async def resync_forever(self) -> None:
        """The periodic level-based resync of every job, one loop for all of them.

        Not a per-object kopf timer: kopf guards timers with a finalizer on every job, and a job
        must stay deletable while the operator is down (children go by garbage collection).
        """
        while True:
            await asyncio.sleep(self.settings.reconcile_seconds)
            await self.resync()

    async def resync(self) -> None:
        """Converge every job once; one job's failure does not stop the others."""
        for body in list(self.cache.inference_jobs.items.values()):
            try:
                await self.converge(body)
            except Exception:  # noqa: BLE001 - counted by the reconciler; retried next tick
                meta = body.get("metadata", {})
                logger.exception("resync of %s/%s failed", meta.get("namespace"), meta.get("name"))

    def on_child_event(self, event_type: str, child: dict[str, Any]) -> None:
        """A watch event of a child: reconcile its job now when it calls for it (see needs_reconcile)."""
        if self._reconciler is None or not needs_reconcile(event_type, child):
            return
        task = asyncio.create_task(self.child_changed(child))
        self._child_tasks.add(task)
        task.add_done_callback(self._child_tasks.discard)

    async def child_changed(self, child: Mapping[str, Any]) -> None:
        """Reconcile the job that owns `child`, unless it is reconciling now or gone."""
        owner = owning_job(child)
        namespace = child["metadata"]["namespace"]
        if owner is None or self.reconciler.busy(namespace, owner["name"]):
            return
        job = self.cache.job(namespace, owner["name"])
        if job is None or job.get("metadata", {}).get("uid") != owner.get("uid"):
            return
        try:
            await self.converge(job)
        except Exception:  # noqa: BLE001 - counted by the reconciler; the resync tries again
            logger.exception("reconcile of %s/%s after a child's event failed", namespace, owner["name"])


def register_handlers(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    kube_factory: Callable[[], kube_api.Kube] = kube_api.Kube.from_environment,
    metrics: OperatorMetrics | None = None,
) -> OperatorRuntime:
    """Register every handler of the operator into `registry`; returns the runtime they share."""
    runtime = OperatorRuntime(settings, kube_factory, metrics or OperatorMetrics())
    _register_lifecycle(registry, runtime)
    _register_events(registry, runtime)
    return runtime


def _register_lifecycle(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # In a pod: the service account; elsewhere (tests, `make demo`): KUBECONFIG. kopf's requests are
        # counted with the operator's own (edge_inference_operator_api_requests_total).
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        return kube_api.counting_session(info, runtime.metrics.api_request) if info is not None else None

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        await runtime.start()

    @kopf.on.cleanup(registry=registry)
    async def shut_down(**_: Any) -> None:
        await runtime.stop()


def _register_events(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.resume(API_GROUP, PLURAL, id="converge-on-resume", registry=registry)
    @kopf.on.create(API_GROUP, PLURAL, id="converge-on-create", registry=registry)
    @kopf.on.update(API_GROUP, PLURAL, id="converge-on-update", registry=registry)
    async def on_change(body: kopf.Body, **_: Any) -> None:
        await runtime.converge(body)
