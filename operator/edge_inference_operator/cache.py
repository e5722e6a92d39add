"""The operator's view of the cluster, kept current by its own watches: one paginated LIST per
resource at start-up (and after a watch expires), then a WATCH; never a LIST per reconcile.

This replaces kopf's indexes, whose start-up grew quadratically with the objects indexed (every
indexed object woke every worker waiting for the indexes to be ready: see docs/benchmarks.md,
"Operator at fleet scale"). Each watch reads its stream in a thread of its own (decoding it), and
hands each event to the event loop, where the stores change; a reconcile reads them without I/O.
Objects are kept in bounded form where the whole body is not needed (a worker pod's summary, a
node's labels and taints), and are indexed by the InferenceJob they belong to. Pods and nodes, the
collections that grow with the fleet, are read in protobuf (wire.py), the rest in JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge_inference_api.models import API_GROUP, API_VERSION, LABEL_CAMERA_STORAGE, PLURAL

from edge_inference_operator import kube as kube_api
from edge_inference_operator import wire
from edge_inference_operator.names import LABEL_JOB, MANAGED_SELECTOR, label_value
from edge_inference_operator.placement import NodeInfo

logger = logging.getLogger(__name__)

# Objects per LIST page: each page is decoded whole before its objects are kept in bounded form, and what
# a page's decoding takes stays taken (fragmented): at a restart over 5,000 nodes, pages of 500 peaked
# about 100 MiB higher than pages of 100 (docs/benchmarks.md, "Operator at fleet scale").
PAGE = 100
WATCH_SECONDS = 300  # the API server ends each watch after this long; it is resumed where it ended
GONE = 410  # the resource version a watch resumes from was compacted away: list again
RETRY_SECONDS = 1.0
DELETED_KEPT = 10_000  # uids of deleted InferenceJobs remembered (a reconcile of an older body checks them)

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Changed = Callable[[str, dict[str, Any]], None]  # (event type, object) after the store changed


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata", {})
    return meta.get("namespace") or "", meta["name"]


def job_of(obj: Mapping[str, Any]) -> Key:
    """(namespace, job label value) of a child or worker pod: whose it is."""
    meta = obj.get("metadata", {})
    return meta.get("namespace") or "", (meta.get("labels") or {}).get(LABEL_JOB, "")


def shared_strings(value: Any) -> Any:
    """`value` with every string of it interned: each watch event is decoded on its own, so thousands of
    kept objects would otherwise each hold their own copy of the same keys, labels and image names
    (docs/benchmarks.md, "Operator at fleet scale": about half of a kept pod or DaemonSet)."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(key): shared_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shared_strings(item) for item in value]
    return value


def _present(mapping: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    """The `keys` of `mapping` that are set and not empty (as JSON leaves them out, and wire.py too)."""
    return {key: mapping[key] for key in keys if mapping and mapping.get(key)}


def _state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """Which of waiting/running/terminated a container is in, with the reason and message."""
    return {kind: _present(detail, "reason", "message") for kind, detail in (state or {}).items()}


def _container_states(statuses: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"name": s.get("name"), "state": _state(s.get("state")), "lastState": _state(s.get("lastState"))}
            for s in statuses or []]  # fmt: skip


def pod_summary(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Only what status and scraping read of a worker pod (observed.py, scrape.py): a fleet's worth of full
    bodies would be memory for nothing. The same from a JSON body and from wire.pod's subset of a
    protobuf one (tests/operator/test_wire.py)."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status") or {}
    ready = [_present(c, "type", "status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {
        "metadata": _present(meta, "name", "namespace", "labels", "creationTimestamp"),
        "spec": {
            **_present(spec, "nodeName"),
            "containers": [
                {"name": c.get("name"), "ports": [_present(p, "name", "containerPort") for p in c.get("ports") or []]}
                for c in spec.get("containers", [])
            ],
        },
        "status": {
            **_present(status, "phase", "podIP"),
            "conditions": ready,
            "containerStatuses": _container_states(status.get("containerStatuses")),
            "initContainerStatuses": _container_states(status.get("initContainerStatuses")),
        },
    }


def job_body(job: Mapping[str, Any]) -> dict[str, Any]:
    """An InferenceJob as a reconcile reads it (without the API server's managedFields)."""
    body = {key: dict(job.get(key) or {}) for key in ("metadata", "spec", "status")}
    body["metadata"].pop("managedFields", None)
    return body


@dataclasses.dataclass(frozen=True)
class Resource:
    """One watched collection: where, which objects, how each is kept, and whether it is grouped by job."""

    path: str
    selector: str | None
    keep: Callable[[Mapping[str, Any]], Any]
    by_job: bool = False
    api_version: str | None = None  # set on the kept objects (a list's items carry no apiVersion/kind)
    kind: str | None = None
    codec: wire.Codec | None = None  # read in protobuf (wire.py): `keep` then sees the codec's subset


def _as_child(api_version: str, kind: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    return lambda obj: kube_api.kept_child({**obj, "apiVersion": api_version, "kind": kind})


NODES = Resource("/api/v1/nodes", LABEL_CAMERA_STORAGE, NodeInfo.from_node, codec=wire.NODES)
PODS = Resource("/api/v1/pods", MANAGED_SELECTOR, pod_summary, by_job=True, codec=wire.PODS)
DAEMONSETS = Resource("/apis/apps/v1/daemonsets", MANAGED_SELECTOR, _as_child("apps/v1", "DaemonSet"), by_job=True)
JOBS = Resource("/apis/batch/v1/jobs", MANAGED_SELECTOR, _as_child("batch/v1", "Job"), by_job=True)
INFERENCE_JOBS = Resource(f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}", None, job_body)
NAMESPACES = Resource("/api/v1/namespaces", None, lambda ns: (ns.get("status") or {}).get("phase") or "Active")


class Store:
    """The kept objects of one resource, by key and (for children and pods) by the job they belong to."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.items: dict[Key, Any] = {}
        self._by_job: dict[Key, dict[Key, Any]] = {}
        self.version = 0  # changes with every change of the store

    def put(self, obj: Mapping[str, Any]) -> None:
        self.version += 1
        key = object_key(obj)
        self.remove(obj)
        kept = shared_strings(self.resource.keep(obj))
        self.items[key] = kept
        if self.resource.by_job:
            self._by_job.setdefault(job_of(obj), {})[key] = kept

    def remove(self, obj: Mapping[str, Any]) -> None:
        self.version += 1
        key = object_key(obj)
        old = self.items.pop(key, None)
        if old is None or not self.resource.by_job:
            return
        owner = job_of(old)
        group = self._by_job.get(owner, {})
        group.pop(key, None)
        if not group:
            self._by_job.pop(owner, None)

    def take_over(self, other: Store) -> None:
        """Hold what `other` holds (a complete LIST) instead of what this store held."""
        self.items, self._by_job = other.items, other._by_job
        self.version += 1

    def of_job(self, namespace: str, job_name: str) -> list[Any]:
        """The kept objects labelled with this job."""
        return list(self._by_job.get((namespace, label_value(job_name)), {}).values())


class Watch:
    """Keeps one Store current: LIST, then WATCH from that version, forever (LIST again on 410 Gone)."""

    def __init__(self, kube: kube_api.Kube, store: Store, threads: ThreadPoolExecutor, changed: Changed | None) -> None:
        self.kube, self.store, self._threads, self._changed = kube, store, threads, changed
        self.listed = asyncio.Event()
        self._stream: kube_api.WatchStream | None = None
        self._stopping = threading.Event()

    @property
    def _query(self) -> list[tuple[str, str]]:
        selector = self.store.resource.selector
        return [("labelSelector", selector)] if selector else []

    async def run(self) -> None:
        while True:
            try:
                version: str | None = await self._list()
                self.listed.set()
                while version is not None:  # None: the version expired
                    version = await asyncio.get_running_loop().run_in_executor(self._threads, self._watch, version)
            except Exception as error:  # noqa: BLE001 - a watch never dies: it lists again (the cause is logged)
                if self._stopping.is_set():
                    return
                logger.warning("watch of %s failed, listing again: %s", self.store.resource.path, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self) -> str:
        """LIST page by page, keeping each page's objects in bounded form before the next one comes."""
        resource = self.store.resource
        listed, token = Store(resource), None
        while True:
            page = [*self._query, ("limit", str(PAGE)), *([("continue", token)] if token else [])]
            answer = await self.kube.request("GET", resource.path, query=page, codec=resource.codec)
            for obj in answer.get("items") or []:
                listed.put(obj)
            token = answer.get("metadata", {}).get("continue")
            if not token:
                self.store.take_over(listed)
                return str(answer["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str | None:
        """Blocking (in a thread): follow the watch from `version`; the version to resume from, None when gone."""
        query = [*self._query, ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]  # fmt: skip
        resource = self.store.resource
        self._stream = self.kube.open_watch(resource.path, query, WATCH_SECONDS + 30, resource.codec)
        try:
            if self._stopping.is_set():  # stop() came while the watch opened: it could not close this one
                return version
            return self._follow(self._stream, version)
        finally:
            self._stream.close()

    def _follow(self, stream: kube_api.WatchStream, version: str) -> str | None:
        for event in stream.events():
            if self._stopping.is_set():
                return version
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                self._raise_unless_expired(obj)
                return None  # the version expired: list again
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if event.get("type") != "BOOKMARK":
                self._loop.call_soon_threadsafe(self._apply, event["type"], obj)
        return version

    def _raise_unless_expired(self, status: Mapping[str, Any]) -> None:
        """A watch's ERROR event: nothing when its version has expired (410 Gone); anything else raises."""
        if status.get("code") != GONE:
            raise kube_api.KubeError(int(status.get("code") or 500), "WATCH", self.store.resource.path, str(status))

    def _apply(self, event_type: str, obj: dict[str, Any]) -> None:
        if event_type == "DELETED":
            self.store.remove(obj)
        else:
            self.store.put(obj)
        if self._changed is not None:
            self._changed(event_type, self.store.resource.keep(obj))

    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        self._loop = loop
        return loop.create_task(self.run(), name=f"watch {self.store.resource.path}")

    def stop(self) -> None:
        self._stopping.set()
        if self._stream is not None:
            with contextlib.suppress(Exception):  # it may be ending by itself
                self._stream.close()


def _by_label(nodes: Mapping[Key, NodeInfo]) -> dict[tuple[str, str], set[str]]:
    """Node names by each (label, value) they carry."""
    index: dict[tuple[str, str], set[str]] = {}
    for (_, name), info in nodes.items():
        for pair in info.labels.items():
            index.setdefault(pair, set()).add(name)
    return index


class ClusterCache:
    """Every collection the operator reads, each kept by its own Watch.

    `child_changed(event type, child)` is called for each event of a DaemonSet or Job;
    `job_deleted(namespace, name)` when an InferenceJob is gone.
    """

    def __init__(
        self,
        kube: kube_api.Kube,
        child_changed: Changed | None = None,
        job_deleted: Callable[[str, str], None] | None = None,
    ) -> None:
        self.nodes_store, self.pods, self.daemonsets, self.jobs, self.inference_jobs, self.namespaces = (
            Store(resource) for resource in (NODES, PODS, DAEMONSETS, JOBS, INFERENCE_JOBS, NAMESPACES)
        )
        stores = (self.nodes_store, self.pods, self.daemonsets, self.jobs, self.inference_jobs, self.namespaces)
        self._threads = ThreadPoolExecutor(len(stores), thread_name_prefix="watch")
        self._job_deleted = job_deleted
        self._deleted_uids: dict[str, None] = {}  # the latest DELETED InferenceJobs, oldest first
        changed = {id(self.daemonsets): child_changed, id(self.jobs): child_changed,
                   id(self.inference_jobs): self._on_job_event}  # fmt: skip
        self._watches = [Watch(kube, store, self._threads, changed.get(id(store))) for store in stores]
        self._tasks: list[asyncio.Task[None]] = []
        self._node_index: tuple[int, dict[tuple[str, str], set[str]]] = (-1, {})

    async def start(self) -> None:
        """Start every watch; returns once each has listed its collection once."""
        loop = asyncio.get_running_loop()
        self._tasks = [watch.start(loop) for watch in self._watches]
        # A watch that cannot list yet (API server down, RBAC) logs why and tries again.
        await asyncio.gather(*(watch.listed.wait() for watch in self._watches))

    async def stop(self) -> None:
        for watch in self._watches:
            watch.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self._threads.shutdown, wait=True)

    def nodes(self, selector: Mapping[str, str] | None = None) -> dict[str, NodeInfo]:
        """The camera nodes with every label of `selector` (all without one), by name.

        A pre-filter for placement (which applies the same rule and the rest): a site job then looks
        at its site's nodes, not at the whole fleet's (docs/benchmarks.md, "Operator at fleet scale").
        """
        if self._node_index[0] != self.nodes_store.version:
            self._node_index = (self.nodes_store.version, _by_label(self.nodes_store.items))
        by_label = self._node_index[1]
        names: set[str] | None = None
        for pair in (selector or {}).items():
            names = by_label.get(pair, set()) if names is None else names & by_label.get(pair, set())
        every = self.nodes_store.items
        if names is None:
            return {name: info for (_, name), info in every.items()}
        return {name: every[("", name)] for name in names}

    def children(self, namespace: str, job_name: str, job_uid: str) -> list[dict[str, Any]]:
        """The job's DaemonSets and batch Jobs that are not being deleted (owner uid re-checked)."""
        found = [*self.daemonsets.of_job(namespace, job_name), *self.jobs.of_job(namespace, job_name)]
        return [
            c for c in found if kube_api.owned_by(c, job_uid) and not c.get("metadata", {}).get("deletionTimestamp")
        ]

    def terminating(self, namespace: str) -> bool:
        """Whether a namespace is being deleted."""
        return self.namespaces.items.get(("", namespace)) == "Terminating"

    def _on_job_event(self, event_type: str, job: dict[str, Any]) -> None:
        if event_type != "DELETED":
            return
        meta = job["metadata"]
        self._deleted_uids[meta.get("uid", "")] = None
        while len(self._deleted_uids) > DELETED_KEPT:
            del self._deleted_uids[next(iter(self._deleted_uids))]
        if self._job_deleted is not None:
            self._job_deleted(meta["namespace"], meta["name"])

    def deleted(self, uid: str) -> bool:
        """Whether the InferenceJob with this uid has been deleted (among the latest DELETED_KEPT)."""
        return uid in self._deleted_uids

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.inference_jobs.items.get((namespace, name))
