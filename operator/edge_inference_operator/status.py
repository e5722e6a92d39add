"""Pure computation of an InferenceJob's status from what the operator observed (clock passed in).

Status stays bounded for fleets of thousands of nodes: counts and totals cover every node, but
`nodeProgress` lists at most MAX_NODE_PROGRESS nodes, those needing attention first (failed,
stale, outbox backlog), then the slowest; `nodeProgressOmitted` says how many were left out.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from edge_inference_api import conditions as c
from edge_inference_api.models import (
    Condition,
    ConditionStatus,
    InferenceJobSpec,
    InferenceJobStatus,
    Mode,
    NodeCounts,
    NodeProgress,
    Phase,
    ProgressTotals,
)

MAX_NODE_PROGRESS = 50

RUNNING = "Running"
PENDING = "Pending"
STALE = "Stale"
FAILED = "Failed"
SUCCEEDED = "Succeeded"

_ATTENTION_ORDER = {FAILED: 0, STALE: 1}

# Every condition has a message, so that every Event made from one says something.
NOTHING_WRONG = "no worker has failed, gone stale or built an outbox backlog"
# Ready=False on the way up (pods starting, a rollout): a normal create or update, not a Warning.
ON_THE_WAY = {c.WAITING_FOR_NODES, c.SOME_NODES_NOT_READY}


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
class Thresholds:
    stale_after: datetime.timedelta = datetime.timedelta(seconds=60)
    backlog_age_seconds: float = 600.0
    batch_start_deadline: datetime.timedelta = datetime.timedelta(minutes=10)


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


@dataclasses.dataclass(frozen=True)
class _NodeView:
    node: str
    state: str
    reason: str | None
    progress: WorkerProgress | None
    heartbeat: str | None
    backlog: bool


def pod_node(pod: Mapping[str, Any]) -> str | None:
    return pod.get("spec", {}).get("nodeName")


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


def _pod_failed(pod: Mapping[str, Any]) -> bool:
    if pod.get("status", {}).get("phase") == "Failed":
        return True
    bad = {"CreateContainerConfigError", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName"}
    return any(w.get("reason") in bad for w in _waiting_states(pod))


def _pod_ready(pod: Mapping[str, Any]) -> bool:
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


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def batch_children(children: Iterable[Mapping[str, Any]]) -> dict[str, BatchChild]:
    """The Batch Jobs by the node they are pinned to."""
    found = {}
    for child in children:
        node = pinned_node(child)
        if node is not None:
            created = _parse_time(child.get("metadata", {}).get("creationTimestamp"))
            found[node] = BatchChild(job_outcome(child), created)
    return found


def _rfc3339_unix(seconds: float) -> str:
    return c.rfc3339(datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC))


NODE_GONE = "NodeGone"
START_DEADLINE_EXCEEDED = "StartDeadlineExceeded"


def _node_state(
    pod: Mapping[str, Any] | None, report: NodeReport | None, now: datetime.datetime, t: Thresholds
) -> NodeState:
    if pod is None:
        return NodeState(PENDING)
    if pod.get("status", {}).get("phase") == "Succeeded":
        return NodeState(SUCCEEDED)
    if _pod_failed(pod):
        return NodeState(FAILED, "WorkerFailed")
    if not _pod_ready(pod):
        return NodeState(PENDING)
    if report is not None and report.failing_since is not None and now - report.failing_since >= t.stale_after:
        return NodeState(STALE)
    return NodeState(RUNNING)


def _batch_node_state(
    node: str,
    observed: NodeState,
    child: BatchChild | None,
    live_nodes: Collection[str] | None,
    now: datetime.datetime,
    t: Thresholds,
) -> NodeState:
    """A Batch node ends: as its Job says, or Failed when its node is gone or its pod never started."""
    if child is not None and child.outcome is not None:
        return child.outcome
    # A worker still running on a node that only lost its labels goes on; a pod of a deleted node
    # is failed by the pod GC controller, or never bound again.
    if live_nodes is not None and node not in live_nodes and observed.state in (PENDING, FAILED):
        return NodeState(FAILED, NODE_GONE)
    if observed.state != PENDING:
        return observed
    if child is not None and child.created is not None and now - child.created >= t.batch_start_deadline:
        return NodeState(FAILED, START_DEADLINE_EXCEEDED)
    return observed


def _views(
    nodes: Sequence[str],
    pods_by_node: Mapping[str, Mapping[str, Any]],
    batch: Mapping[str, BatchChild] | None,
    live_nodes: Collection[str] | None,
    reports: Mapping[str, NodeReport],
    now: datetime.datetime,
    t: Thresholds,
) -> list[_NodeView]:
    views = []
    for node in nodes:
        report = reports.get(node)
        progress = report.progress if report else None
        heartbeat = None
        if progress is not None and progress.heartbeat:
            heartbeat = _rfc3339_unix(progress.heartbeat)
        elif report is not None and report.last_seen is not None:
            heartbeat = c.rfc3339(report.last_seen)
        backlog = progress is not None and (
            progress.outbox_full
            or (progress.events_waiting > 0 and progress.outbox_oldest_age >= t.backlog_age_seconds)
        )
        state = _node_state(pods_by_node.get(node), report, now, t)
        if batch is not None:
            state = _batch_node_state(node, state, batch.get(node), live_nodes, now, t)
        views.append(_NodeView(node, state.state, state.reason, progress, heartbeat, backlog))
    return views


def _priority(view: _NodeView) -> tuple[Any, ...]:
    progress = view.progress or WorkerProgress()
    attention = _ATTENTION_ORDER.get(view.state, 2 if view.backlog else 3)
    finished = view.state == SUCCEEDED
    return (attention, finished, progress.files_done, progress.frames_analysed, view.node)


def _progress_entry(view: _NodeView) -> NodeProgress:
    p = view.progress or WorkerProgress()
    return NodeProgress(
        node=view.node,
        state=view.state,
        reason=view.reason,
        files_done=p.files_done,
        frames_analysed=p.frames_analysed,
        events_uploaded=p.events_uploaded,
        events_waiting=p.events_waiting,
        last_heartbeat=view.heartbeat,
    )


def _totals(views: Sequence[_NodeView]) -> ProgressTotals:
    progresses = [v.progress for v in views if v.progress is not None]
    return ProgressTotals(
        files_done=sum(p.files_done for p in progresses),
        frames_analysed=sum(p.frames_analysed for p in progresses),
        events_uploaded=sum(p.events_uploaded for p in progresses),
        events_waiting=sum(p.events_waiting for p in progresses),
    )


def _failures(views: Sequence[_NodeView]) -> list[str]:
    """Failed nodes, each with its reason: `edge-1 (NodeGone)`."""
    return [f"{v.node} ({v.reason})" if v.reason else v.node for v in views if v.state == FAILED]


def _named(nodes: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def _apply(
    previous: InferenceJobStatus,
    generation: int | None,
    now: datetime.datetime,
    settings: Sequence[tuple[str, ConditionStatus, str, str]],
) -> list[Condition]:
    conditions = list(previous.conditions)
    for type_, status, reason, message in settings:
        conditions = c.set_condition(
            conditions, type=type_, status=status, reason=reason, message=message, generation=generation, now=now
        )
    return conditions


T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


def invalid_status(
    previous: InferenceJobStatus, generation: int | None, reason: str, message: str, now: datetime.datetime
) -> InferenceJobStatus:
    """Status of a job the operator refuses to schedule (nothing runs): Ready=False with `reason`."""
    conditions = _apply(
        previous,
        generation,
        now,
        [
            (c.READY, F, reason, message),
            (c.PROGRESSING, F, reason, "nothing is scheduled until the spec is fixed"),
            (c.DEGRADED, F, c.AS_EXPECTED, NOTHING_WRONG),
        ],
    )
    return InferenceJobStatus(
        phase=Phase.INVALID,
        observed_generation=generation,
        conditions=conditions,
        target_nodes=previous.target_nodes,
        ready_nodes="0/0",
    )


def compute_status(
    *,
    previous: InferenceJobStatus,
    spec: InferenceJobSpec,
    generation: int | None,
    desired_nodes: Sequence[str],
    children: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    reports: Mapping[str, NodeReport],
    now: datetime.datetime,
    thresholds: Thresholds = Thresholds(),
    node_progress_limit: int = MAX_NODE_PROGRESS,
    idle_accelerators: Sequence[str] = (),
    taken_names: Sequence[str] = (),
    live_nodes: Collection[str] | None = None,
    shared_with: Mapping[str, Sequence[str]] | None = None,
) -> InferenceJobStatus:
    """The status of a valid job.

    `desired_nodes`: Continuous, the nodes that match now; Batch, the target nodes recorded at start.
    `children`: the job's DaemonSets or batch Jobs; `pods`: its worker pods; `reports`: scrape results by node;
    `idle_accelerators`: accepted accelerator kinds that no node matches (named in the Ready message);
    `taken_names`: children ("Kind/name") that could not be made because another object has the name;
    `live_nodes`: Batch, the camera nodes that exist now (a target node not among them has gone);
    `shared_with`: other jobs ("namespace/name" -> nodes) reading the same host folder on our nodes.
    """
    batch = spec.mode == Mode.BATCH
    nodes = sorted(set(desired_nodes))
    pods_by_node: dict[str, Mapping[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or ""):
        node = pod_node(pod)
        if node is not None:
            pods_by_node[node] = pod  # the newest pod of a node wins
    per_node = batch_children(children) if batch else None
    views = _views(nodes, pods_by_node, per_node, live_nodes, reports, now, thresholds)
    counts = NodeCounts(
        desired=len(nodes),
        ready=sum(v.state == RUNNING for v in views),
        succeeded=sum(v.state == SUCCEEDED for v in views),
        failed=sum(v.state == FAILED for v in views),
    )
    failed = _failures(views)
    stale = [v.node for v in views if v.state == STALE]
    backlogged = [v.node for v in views if v.backlog]
    secret = missing_secret(pods_by_node.values())

    if batch:
        phase, ready, progressing = _batch_conditions(nodes, counts, failed)
    else:
        phase, ready, progressing = _continuous_conditions(nodes, counts, spec)
    if idle_accelerators and nodes:
        idle = ", ".join(idle_accelerators)
        ready = (*ready[:3], f"{ready[3]}; no matching node for accelerator(s): {idle}")
    if taken_names:
        message = (
            f"{', '.join(taken_names)} already exist(s) and belong(s) to something else; rename the job or remove them"
        )
        ready = (c.READY, F, c.CHILD_NAME_TAKEN, message)
        degraded = (c.DEGRADED, T, c.CHILD_NAME_TAKEN, message)
    elif secret is not None:
        ready = (c.READY, F, c.SECRET_NOT_FOUND, secret)
        degraded = (c.DEGRADED, T, c.SECRET_NOT_FOUND, secret)
    elif failed:
        degraded = (c.DEGRADED, T, c.NODES_FAILED, f"worker failed on {len(failed)} node(s): {_named(failed)}")
    elif stale:
        degraded = (c.DEGRADED, T, c.NODES_STALE, f"no metrics from {len(stale)} node(s): {_named(stale)}")
    elif backlogged:
        degraded = (
            c.DEGRADED,
            T,
            c.OUTBOX_BACKLOG,
            f"events waiting to upload on {len(backlogged)} node(s): {_named(backlogged)}",
        )
    elif shared_with:
        others = "; ".join(f"{job} on {_named(list(nodes))}" for job, nodes in sorted(shared_with.items()))
        message = f"other jobs read the same host folder on the same nodes ({others}): each file is processed twice"
        degraded = (c.DEGRADED, T, c.SHARED_INPUT, message)
    else:
        degraded = (c.DEGRADED, F, c.AS_EXPECTED, NOTHING_WRONG)

    ordered = sorted(views, key=_priority)
    shown = ordered[:node_progress_limit]
    totals = _totals(views)
    return InferenceJobStatus(
        phase=phase,
        observed_generation=generation,
        conditions=_apply(previous, generation, now, [ready, progressing, degraded]),
        nodes=counts,
        target_nodes=list(nodes) if batch else [],
        totals=totals,
        node_progress=[_progress_entry(v) for v in shown],
        node_progress_omitted=len(ordered) - len(shown),
        events=totals.events_uploaded,
        ready_nodes=f"{counts.succeeded if batch else counts.ready}/{counts.desired}",
    )


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


Setting = tuple[str, ConditionStatus, str, str]


def _continuous_conditions(
    nodes: Sequence[str], counts: NodeCounts, spec: InferenceJobSpec
) -> tuple[Phase, Setting, Setting]:
    if not nodes:
        types = ", ".join(a.type for a in spec.accelerators)
        message = f"no node is labelled for camera storage with accelerator in [{types}]" + (
            f" and {spec.node_selector}" if spec.node_selector else ""
        )
        return (
            Phase.PENDING,
            (c.READY, F, c.NO_MATCHING_NODES, message),
            (c.PROGRESSING, T, c.WAITING_FOR_NODES, "the workload starts on nodes as soon as they get the labels"),
        )
    summary = f"{counts.ready}/{counts.desired} nodes ready"
    if counts.ready == counts.desired:
        return Phase.RUNNING, (c.READY, T, c.ALL_NODES_READY, summary), (c.PROGRESSING, F, c.AS_EXPECTED, summary)
    phase = Phase.RUNNING if counts.ready else Phase.PENDING
    reason = c.SOME_NODES_NOT_READY if counts.ready else c.WAITING_FOR_NODES
    return phase, (c.READY, F, reason, summary), (c.PROGRESSING, T, c.WORKLOADS_CREATED, summary)


def _batch_conditions(
    nodes: Sequence[str], counts: NodeCounts, failed: Sequence[str]
) -> tuple[Phase, Setting, Setting]:
    if not nodes:
        message = "no matching node yet; the batch targets the nodes that match when it starts"
        return (
            Phase.PENDING,
            (c.READY, F, c.NO_MATCHING_NODES, message),
            (c.PROGRESSING, T, c.WAITING_FOR_NODES, message),
        )
    summary = f"{counts.succeeded}/{counts.desired} nodes succeeded, {counts.failed} failed"
    if counts.succeeded + counts.failed == counts.desired:  # every node has its outcome: the batch is over
        if failed:
            message = f"batch failed on {len(failed)} node(s): {_named(failed)}"
            return Phase.FAILED, (c.READY, F, c.BATCH_FAILED, message), (c.PROGRESSING, F, c.BATCH_FAILED, summary)
        return (
            Phase.SUCCEEDED,
            (c.READY, T, c.BATCH_SUCCEEDED, summary),
            (c.PROGRESSING, F, c.BATCH_SUCCEEDED, summary),
        )
    running = (c.PROGRESSING, T, c.BATCH_RUNNING, summary)
    if failed:  # the other nodes go on; the outcome is decided when all have finished
        message = f"batch failed on {len(failed)} node(s): {_named(failed)}; the other nodes go on"
        return Phase.RUNNING, (c.READY, F, c.BATCH_FAILED, message), running
    if counts.ready + counts.succeeded == 0:
        message = f"no worker has started yet on the {counts.desired} target node(s)"
        return Phase.PENDING, (c.READY, F, c.WAITING_FOR_NODES, message), running
    return Phase.RUNNING, (c.READY, T, c.BATCH_RUNNING, summary), running


@dataclasses.dataclass(frozen=True)
class Transition:
    """A condition whose status or reason changed; becomes a Kubernetes Event."""

    type: str
    status: str
    reason: str
    message: str
    warning: bool


def transitions(previous: InferenceJobStatus, current: InferenceJobStatus) -> list[Transition]:
    """Conditions that changed status or reason between two statuses (new conditions included)."""
    before = {cond.type: cond for cond in previous.conditions}
    changed = []
    for cond in current.conditions:
        old = before.get(cond.type)
        if old is not None and old.status == cond.status and old.reason == cond.reason:
            continue
        bad = (cond.type == c.DEGRADED and cond.status == T) or (
            cond.type == c.READY and cond.status == F and cond.reason not in ON_THE_WAY
        )
        changed.append(Transition(cond.type, cond.status.value, cond.reason, cond.message, bad))
    return changed
