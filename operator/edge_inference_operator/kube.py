"""The thin Kubernetes I/O layer: read observed children and pods, converge children, write status.

Transport and authentication come from the official `kubernetes` client (in-cluster service account
or kubeconfig, client certificates, exec plugins, token refresh), but requests and answers stay plain
dicts: the builders produce plain manifests, and typed models would only be converted back and forth.
The client is synchronous, so every call runs in a thread of the client's own pool (REQUESTS_IN_FLIGHT).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf
import kubernetes
from edge_inference_api.models import API_GROUP, API_VERSION, KIND, PLURAL, QUANTITY, quantity_value

from edge_inference_operator import wire
from edge_inference_operator.names import ANNOTATION_SPEC_HASH, MANAGER, job_selector

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 5
# Children written at once: a fleet-wide Batch job makes thousands of Jobs, and each create mostly waits
# for the API server: 24 at once made 1,330 Jobs 2.6x as fast as 6 (docs/benchmarks.md, "Operator at fleet scale").
WRITES_IN_FLIGHT = 24
# Requests the client sends at once (children written, plus a status or a GET beside them); each one
# holds a thread and a pooled connection while it waits for the API server.
REQUESTS_IN_FLIGHT = WRITES_IN_FLIGHT + 4
USER_AGENT = "edge-inference-operator/0.1.0"

CHILD_COLLECTIONS = {
    ("apps/v1", "DaemonSet"): "/apis/apps/v1/namespaces/{namespace}/daemonsets",
    ("batch/v1", "Job"): "/apis/batch/v1/namespaces/{namespace}/jobs",
}


INVALID = 422  # the API server refuses the object itself: retrying cannot help
NOT_FOUND = 404


class KubeError(Exception):
    """A Kubernetes API answer other than 2xx; `message` is the server's own (from its Status)."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.message = status_message(body)


def namespace_terminating(error: KubeError) -> bool:
    """The API server's refusal to create anything in a namespace that is being deleted: not an error
    of ours, the job is about to go with its namespace."""
    return error.status == 403 and "because it is being terminated" in error.message


def status_message(body: str) -> str:
    """The `message` of a metav1.Status answer, or the body itself when it is not one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:1000]
    return str(answer.get("message") or body)[:1000] if isinstance(answer, dict) else body[:1000]


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_kind(method: str, path: str, query: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The Kubernetes verb and resource ("plural" or "plural/subresource") of a request, as the API
    server's authorizer names them: GET of a collection is list (watch with watch=true), DELETE of one
    is deletecollection."""
    parts = [part for part in path.split("/") if part]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]  # a namespaced resource: drop namespaces/<namespace>
    resource = "/".join([rest[0], *rest[2:3]]) if rest else ""
    named = len(rest) > 1
    if method == "GET":
        watch = any(key == "watch" and value in ("true", "1") for key, value in query)
        verb = "get" if named else "watch" if watch else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return verb, resource


def counting_session(info: kopf.ConnectionInfo, count: Callable[[str, str], None]) -> kopf.AiohttpSession:
    """kopf's HTTP session (its InferenceJob watch, annotation patches and Events) as kopf makes it from `info`,
    with every request counted by `count` as the operator's own are: kopf takes a session of the operator's
    (`kopf.AiohttpSession`), and aiohttp reports each request it starts. Call it with the event loop running."""

    async def counted(_: aiohttp.ClientSession, __: Any, request: aiohttp.TraceRequestStartParams) -> None:
        count(*request_kind(request.method, request.url.path, list(request.url.query.items())))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(counted)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[tracing],
    )
    return kopf.AiohttpSession(server=info.server, priority=info.priority, default_namespace=info.default_namespace,
                               expiration=info.expiration, aiohttp_session=session)  # fmt: skip


def _accept(codec: wire.Codec | None) -> str:
    """Protobuf first where the collection has a codec (JSON still accepted: the server picks)."""
    return f"{wire.PROTOBUF}, {JSON}" if codec is not None else JSON


def _is_protobuf(content_type: str | None) -> bool:
    return (content_type or "").startswith(wire.PROTOBUF)


class WatchStream:
    """One open WATCH: its events as they arrive, until the server ends it or `close()` is called.

    With a codec, the server may answer in protobuf (wire.py): its events are decoded to the same
    JSON-shaped dicts."""

    def __init__(self, response: Any, codec: wire.Codec | None = None) -> None:
        self._response = response
        self._codec = codec if _is_protobuf(response.headers.get("Content-Type")) else None

    def _chunks(self) -> Iterator[bytes]:
        return self._response.stream(64 * 1024, decode_content=True)

    def events(self) -> Iterator[dict[str, Any]]:
        """Each watch event (`type`, `object`), decoded; blocks while the server sends nothing."""
        if self._codec is not None:
            codec = self._codec
            yield from (wire.decode_event(codec, frame) for frame in wire.frames(self._chunks()))
            return
        pending = b""
        for chunk in self._chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def close(self) -> None:
        """End the watch; safe from another thread (a read blocked on the socket returns)."""
        sock = getattr(self._response.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)
        self._response.close()


class Kube:
    """Plain-dict requests to the Kubernetes API over the official client's authenticated transport.

    `count(verb, resource)` is called for every request sent (the operator's API request metric).
    """

    def __init__(
        self, api_client: kubernetes.client.ApiClient, count: Callable[[str, str], None] | None = None
    ) -> None:
        self._api = api_client
        self.count = count
        self._threads = ThreadPoolExecutor(REQUESTS_IN_FLIGHT, thread_name_prefix="kube")

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account when running in a pod, else the kubeconfig (KUBECONFIG)."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            # Read KUBECONFIG now: the client reads it once at import time.
            kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
            kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # A connection for every request in flight, and one for each watch (cache.py) beside them.
        configuration.connection_pool_maxsize = REQUESTS_IN_FLIGHT + 8
        client = kubernetes.client.ApiClient(configuration)
        client.user_agent = USER_AGENT  # tells the operator's requests apart in audit logs (and tests)
        return cls(client)

    def close(self) -> None:
        self._threads.shutdown(wait=False)
        self._api.close()

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float],
        accept: str = JSON,
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        url = serialized[1]
        if self.count is not None:
            self.count(*request_kind(method, path, query))
        return self._api.call_api(
            method, url, header_params=serialized[2], body=serialized[3], _request_timeout=timeout
        )

    def _call(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
        codec: wire.Codec | None = None,
    ) -> Any:
        response = self._send(method, path, query, body, content_type, 30, _accept(codec))
        data = response.read()
        if not 200 <= response.status < 300:
            raise KubeError(response.status, method, path, data.decode(errors="replace"))
        if codec is not None and _is_protobuf(response.getheader("Content-Type")):
            return wire.decode_list(codec, data)
        text = data.decode() if isinstance(data, bytes) else str(data or "")
        return json.loads(text) if text else {}

    def open_watch(
        self, path: str, query: Sequence[tuple[str, str]], read_timeout: float, codec: wire.Codec | None = None
    ) -> WatchStream:
        """Start a WATCH of collection `path` (blocking: call it from a thread); read it with `events()`.
        With `codec`, protobuf is asked for (see WatchStream)."""
        response = self._send("GET", path, [*query, ("watch", "true")], None, None, (30, read_timeout), _accept(codec))
        if not 200 <= response.status < 300:
            raise KubeError(response.status, "GET", path, response.read().decode(errors="replace"))
        return WatchStream(response.response, codec)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        codec: wire.Codec | None = None,
    ) -> Any:
        """The decoded answer. A LIST with `codec` asks for protobuf, and its items come JSON-shaped
        (wire.py: only the subset the codec keeps)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._call, method, path, query, body, content_type, codec)

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        answer = await self.request("GET", path, query=query)
        return list(answer.get("items") or [])

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise


def job_path(namespace: str, name: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}"


def collection_path(manifest: Mapping[str, Any], namespace: str) -> str:
    return CHILD_COLLECTIONS[(manifest["apiVersion"], manifest["kind"])].format(namespace=quote(namespace))


def _hash(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_SPEC_HASH)


_QUANTITY_MAPS = ("requests", "limits")


def _same_scalar(desired: Any, live: Any, in_quantities: bool) -> bool:
    if desired == live:
        return True
    # The API server writes quantities in canonical form ("0.5" comes back as "500m").
    quantities = in_quantities and isinstance(desired, str) and isinstance(live, str)
    return (
        quantities
        and bool(re.match(QUANTITY, desired))
        and bool(re.match(QUANTITY, live))
        and (quantity_value(desired) == quantity_value(live))
    )


def contains(live: Any, desired: Any, in_quantities: bool = False) -> bool:
    """Whether every field the operator sets is in `live` with the same value.

    Fields only the API server adds (defaults, its own labels) are ignored; lists must match item by item.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value, in_quantities or key in _QUANTITY_MAPS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(one, other) for one, other in zip(live, desired, strict=True))
        )
    return _same_scalar(desired, live, in_quantities)


def drifted(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the live child differs from the desired one in what the operator decides (e.g. edited by hand).

    A Job's pod template is immutable (the API server refuses changes to it), so only the rest of its
    spec can drift; the spec-hash annotation says whether the template is the one wanted.
    """
    labels = live.get("metadata", {}).get("labels") or {}
    spec = desired["spec"]
    if desired.get("kind") == "Job":
        spec = {key: value for key, value in spec.items() if key != "template"}
    return not (contains(labels, desired["metadata"]["labels"]) and contains(live.get("spec"), spec))


_KEPT_METADATA = (
    "name", "namespace", "uid", "labels", "annotations", "ownerReferences", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp",
)  # fmt: skip


def kept_child(child: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a child (thousands on a big fleet): what converging and status read.

    Its metadata but managedFields; a DaemonSet's spec whole (its pod template can drift) and no status;
    a Batch Job's spec but the immutable template (except the node it is pinned to), and its conditions.
    """
    meta, spec = child.get("metadata", {}), child.get("spec") or {}
    kept = {"apiVersion": child.get("apiVersion"), "kind": child.get("kind"),
            "metadata": {key: meta[key] for key in _KEPT_METADATA if key in meta}}  # fmt: skip
    if child.get("kind") != "Job":
        return {**kept, "spec": spec}
    affinity = ((spec.get("template") or {}).get("spec") or {}).get("affinity")
    return {
        **kept,
        "spec": {**{k: v for k, v in spec.items() if k != "template"}, "template": {"spec": {"affinity": affinity}}},
        "status": {"conditions": (child.get("status") or {}).get("conditions") or []},
    }


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


@dataclasses.dataclass
class Convergence:
    """What converging a job's children did, and the children as they now are."""

    children: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    taken: list[str] = dataclasses.field(default_factory=list)  # our child's name, used by someone else's object
    unchanged: list[str] = dataclasses.field(default_factory=list)  # as wanted already


async def observed_children(kube: Kube, namespace: str, job_name: str, job_uid: str) -> list[dict[str, Any]]:
    """The job's DaemonSets and batch Jobs (labels select server-side; the owner uid is re-checked here)."""
    children = []
    selector = job_selector(job_name)
    for (api_version, kind), collection in CHILD_COLLECTIONS.items():
        for item in await kube.list(collection.format(namespace=quote(namespace)), selector):
            if owned_by(item, job_uid) and not item.get("metadata", {}).get("deletionTimestamp"):
                children.append({"apiVersion": api_version, "kind": kind, **item})
    return children


async def _delete(kube: Kube, obj: Mapping[str, Any], namespace: str) -> None:
    path = f"{collection_path(obj, namespace)}/{quote(obj['metadata']['name'])}"
    # Background propagation: the Job's or DaemonSet's pods go too (batch/v1 Jobs default to orphaning).
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    try:
        await kube.request("DELETE", path, body=body)
    except KubeError as error:
        if error.status != 404:
            raise


async def _replace_spec(
    kube: Kube, current: Mapping[str, Any], desired: Mapping[str, Any], namespace: str
) -> dict[str, Any]:
    """Make `current` carry the desired labels, hash and spec; the resourceVersion is a precondition."""
    path = f"{collection_path(desired, namespace)}/{quote(desired['metadata']['name'])}"
    annotations = {**(current.get("metadata", {}).get("annotations") or {}), **desired["metadata"]["annotations"]}
    labels = {**(current.get("metadata", {}).get("labels") or {}), **desired["metadata"]["labels"]}
    patch = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/labels", "value": labels},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
        {"op": "replace", "path": "/spec", "value": desired["spec"]},
    ]
    return await kube.request("PATCH", path, body=patch, content_type=JSON_PATCH)


async def _create(
    kube: Kube, desired: Mapping[str, Any], namespace: str, path: str
) -> tuple[bool, dict[str, Any] | None]:
    """(True, the child) once created; (False, the object as it now is) when the name was taken meanwhile."""
    try:
        return True, await kube.request("POST", collection_path(desired, namespace), body=desired)
    except KubeError as error:
        if error.status != 409:
            raise
        return False, await kube.get(path)  # someone (an earlier run of ours) was faster: re-read


def _nothing_to_change(
    current: Mapping[str, Any], desired: Mapping[str, Any]
) -> tuple[str, dict[str, Any] | None] | None:
    """Why an existing child is left as it is (taken, terminating, unchanged), or None when it must change."""
    if not owned_by(current, desired["metadata"]["ownerReferences"][0]["uid"]):
        return "taken", dict(current)  # never take over an object someone else made
    if current.get("metadata", {}).get("deletionTimestamp"):
        return "terminating", None  # created again once it is gone
    if _hash(current) == _hash(desired) and not drifted(current, desired):
        return "unchanged", dict(current)
    return None


async def ensure_child(
    kube: Kube, desired: Mapping[str, Any], current: Mapping[str, Any] | None, namespace: str
) -> tuple[str, dict[str, Any] | None]:
    """Converge one child; returns (what was done, the child now). Conflicts re-read and retry.

    batch/v1 Job templates are immutable, so a changed Job is deleted and created again later.
    """
    name = desired["metadata"]["name"]
    path = f"{collection_path(desired, namespace)}/{quote(name)}"
    for _ in range(CONFLICT_RETRIES):
        if current is None:
            created, current = await _create(kube, desired, namespace, path)
            if created:
                return "created", current
            continue
        settled = _nothing_to_change(current, desired)
        if settled is not None:
            return settled
        if desired.get("kind") == "Job":
            await _delete(kube, current, namespace)
            return "deleted", None
        try:
            return "updated", await _replace_spec(kube, current, desired, namespace)
        except KubeError as error:
            if error.status != 409:  # a 422 (invalid) is the object's fault and is reported, never retried
                raise
            current = await kube.get(path)
    raise KubeError(409, "PATCH", path, f"still conflicting after {CONFLICT_RETRIES} attempts")


async def converge_children(
    kube: Kube,
    namespace: str,
    desired: Sequence[Mapping[str, Any]],
    existing: Sequence[Mapping[str, Any]],
    create_missing: bool = True,
) -> Convergence:
    """Create missing children, update changed ones, delete the job's `existing` children that should not exist.

    `existing`: the job's children as last seen (observed_children, or the operator's watches); a copy
    that is out of date costs a conflict and a re-read, never a wrong write.
    """
    result = Convergence()
    observed = {(o["kind"], o["metadata"]["name"]): o for o in existing}
    wanted = {(d["kind"], d["metadata"]["name"]): d for d in desired}
    for key, obj in observed.items():
        if key not in wanted:
            await _delete(kube, obj, namespace)
            result.deleted.append(f"{key[0]}/{key[1]}")
    in_flight = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def ensure(key: tuple[str, str], manifest: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
        async with in_flight:
            action, now = await ensure_child(kube, manifest, observed.get(key), namespace)
        if now is None or action == "taken":
            return action, now
        # Kept at once: thousands of whole answers (a Job with its template and managedFields) would
        # otherwise wait here until the last create ends.
        return action, kept_child({"apiVersion": manifest["apiVersion"], "kind": manifest["kind"], **now})

    todo = {key: manifest for key, manifest in wanted.items() if create_missing or key in observed}
    outcomes = await asyncio.gather(*(ensure(key, manifest) for key, manifest in todo.items()))
    for key, (action, now) in zip(todo, outcomes, strict=True):
        if action in ("created", "updated", "deleted", "taken", "unchanged"):
            getattr(result, action).append(f"{key[0]}/{key[1]}")
        if now is not None and action != "taken":
            result.children.append(now)
    return result


async def patch_status(kube: Kube, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Replace the job's status (merge patch of the whole status; nulls clear fields)."""
    await kube.request(
        "PATCH", job_path(namespace, name) + "/status", body={"status": status}, content_type=MERGE_PATCH
    )


MAX_EVENT_MESSAGE = 1024  # what kubectl describe shows in full; the API server allows more


async def post_event(kube: Kube, job: Mapping[str, Any], type_: str, reason: str, message: str, timestamp: str) -> None:
    """A core/v1 Event about the job, posted by the operator itself (from any task, timer or handler)."""
    meta = job["metadata"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_EVENT_MESSAGE],
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": MANAGER,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }
    await kube.request("POST", f"/api/v1/namespaces/{quote(meta['namespace'])}/events", body=event)
