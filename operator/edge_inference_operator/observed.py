"""What the operator reads from the cluster and its workers: pod and Job state, scrape results.

Facts only (is this pod ready, has this Job finished, which node is it pinned to); which condition
and reason they lead to is policy, in status.py.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edge_inference_api.models import MAX_NODE_MESSAGE

from edge_inference_operator.names import WORKER_CONTAINER

RUNNING = "Running"
PENDING = "Pending"
STALE = "Stale"
FAILED = "Failed"
SUCCEEDED = "Succeeded"

# Waiting reasons after which a worker container will not start by itself.
_STUCK = {"CreateContainerConfigError", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName"}


@dataclasses.dataclass(frozen=True)
class WorkerProgress:
    """One worker's figures, as read from its /metrics."""

    files_done: int = 0
    frames_analysed: int = 0
    events_uploaded: int = 0
    events_waiting: int = 0
    heartbeat: float | None = None  # unix seconds of the worker's last loop
    batch_complete: bool = False
    outbox_full: bool = False
    outbox_oldest_age: float = 0.0


@dataclasses.dataclass(frozen=True)
class NodeReport:
    """What scraping knows about one node's worker."""

    progress: WorkerProgress | None = None  # the latest figures that could be read
    last_seen: datetime.datetime | None = None  # last successful scrape
    failing_since: datetime.datetime | None = None  # first failed scrape of the current failing streak


@dataclasses.dataclass(frozen=True)
class NodeState:
    """The state of one node's worker, and why when it failed."""

    state: str
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class BatchChild:
    """What a Batch node's Job says: its outcome (if finished) and when it was made."""

    outcome: NodeState | None
    created: datetime.datetime | None


def pod_node(pod: Mapping[str, Any]) -> str | None:
    """The node a pod is bound to (None while unscheduled)."""
    return pod.get("spec", {}).get("nodeName")


def newest_pod_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The newest bound pod of each node (a replaced pod may linger while its successor starts)."""
    by_node: dict[str, Mapping[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or ""):
        node = pod_node(pod)
        if node is not None:
            by_node[node] = pod
    return by_node


def _waiting_states(pod: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    status = pod.get("status", {})
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting:
                yield waiting


def missing_secret(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The kubelet's message when a pod cannot start because a referenced Secret (or key) is missing.

    The operator never reads Secrets: kubelet reports this as CreateContainerConfigError.
    """
    for pod in pods:
        for waiting in _waiting_states(pod):
            message = waiting.get("message") or ""
            if waiting.get("reason") == "CreateContainerConfigError" and "secret" in message.lower():
                return message
    return None


def pod_failed(pod: Mapping[str, Any]) -> bool:
    """Whether a pod failed or is stuck in a state it will not leave by itself."""
    if pod.get("status", {}).get("phase") == "Failed":
        return True
    return any(w.get("reason") in _STUCK for w in _waiting_states(pod))


def _one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace runs become one space), cut to `limit` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def termination_message(pod: Mapping[str, Any], limit: int = MAX_NODE_MESSAGE) -> str | None:
    """The worker container's termination message: why it last exited, in its own words (None if it left none).

    The current state's, else the previous run's (`lastState`: a restarted or crash-looping
    container); one line of at most `limit` characters.
    """
    for container in pod.get("status", {}).get("containerStatuses") or []:
        if container.get("name") != WORKER_CONTAINER:
            continue
        for key in ("state", "lastState"):
            message = ((container.get(key) or {}).get("terminated") or {}).get("message") or ""
            if message.strip():
                return _one_line(message, limit)
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether a pod runs and passes its readiness probe."""
    status = pod.get("status", {})
    ready = any(cond.get("type") == "Ready" and cond.get("status") == "True" for cond in status.get("conditions") or [])
    return status.get("phase") == "Running" and ready


def job_outcome(job: Mapping[str, Any]) -> NodeState | None:
    """A batch/v1 Job's outcome once it has finished (succeeded or failed), else None."""
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return NodeState(SUCCEEDED)
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return NodeState(FAILED, cond.get("reason") or "JobFailed")
    return None


def parse_time(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp of the API server (None stays None)."""
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pinned_node(child: Mapping[str, Any]) -> str | None:
    """The node a Batch Job is pinned to (its matchFields term)."""
    terms = (
        child.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    )
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return None


def batch_children(children: Sequence[Mapping[str, Any]]) -> dict[str, BatchChild]:
    """The Batch Jobs by the node they are pinned to."""
    found = {}
    for child in children:
        node = pinned_node(child)
        if node is not None:
            created = parse_time(child.get("metadata", {}).get("creationTimestamp"))
            found[node] = BatchChild(job_outcome(child), created)
    return found
