"""Pure computation of an InferenceJob's status from what the operator observed (clock passed in).

The policy: which state each node is in, which conditions and reasons follow, and which
transitions become Events. What was read from the cluster and the workers is in observed.py.

Status stays bounded for fleets of thousands of nodes: counts and totals cover every node, but
`nodeProgress` lists at most MAX_NODE_PROGRESS nodes, those needing attention first (failed,
stale, outbox backlog), then the slowest; `nodeProgressOmitted` says how many were left out.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from edge_inference_api import conditions
from edge_inference_api.models import (
    MAX_NODE_PROGRESS,
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

from edge_inference_operator.observed import (
    FAILED,
    PENDING,
    RUNNING,
    STALE,
    SUCCEEDED,
    BatchChild,
    NodeReport,
    NodeState,
    WorkerProgress,
    batch_children,
    missing_secret,
    newest_pod_by_node,
    parse_time,
    pod_failed,
    pod_ready,
    termination_message,
)

_ATTENTION_ORDER = {FAILED: 0, STALE: 1}

# Every condition has a message, so that every Event made from one says something.
NOTHING_WRONG = "no worker has failed, gone stale or built an outbox backlog"
# Ready=False on the way up (pods starting, a rollout): a normal create or update, not a Warning.
ON_THE_WAY = {conditions.WAITING_FOR_NODES, conditions.SOME_NODES_NOT_READY}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a silent worker is stale, an outbox a backlog, and an unstarted Batch node failed."""

    stale_after: datetime.timedelta = datetime.timedelta(seconds=60)
    backlog_age_seconds: float = 600.0
    batch_start_deadline: datetime.timedelta = datetime.timedelta(minutes=10)


@dataclasses.dataclass(frozen=True)
class ConditionUpdate:
    """One condition to set: its type, status, CamelCase reason and message."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class _NodeView:
    node: str
    state: str
    reason: str | None
    message: str | None  # a failed node's worker's termination message
    progress: WorkerProgress | None
    heartbeat: str | None
    backlog: bool


NODE_GONE = "NodeGone"
SHARED_NAMED = 5  # the other jobs a SharedInput message names (each with up to 10 nodes)
START_DEADLINE_EXCEEDED = "StartDeadlineExceeded"


def _rfc3339_unix(seconds: float) -> str:
    return conditions.rfc3339(datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC))


def _node_state(
    pod: Mapping[str, Any] | None, report: NodeReport | None, now: datetime.datetime, t: Thresholds
) -> NodeState:
    if pod is None:
        return NodeState(PENDING)
    if pod.get("status", {}).get("phase") == "Succeeded":
        return NodeState(SUCCEEDED)
    if pod_failed(pod):
        return NodeState(FAILED, "WorkerFailed")
    if not pod_ready(pod):
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


def _heartbeat(report: NodeReport | None) -> str | None:
    """The worker's own last heartbeat, else when it was last scraped."""
    if report is None:
        return None
    if report.progress is not None and report.progress.heartbeat:
        return _rfc3339_unix(report.progress.heartbeat)
    return conditions.rfc3339(report.last_seen) if report.last_seen is not None else None


def _backlog(progress: WorkerProgress | None, t: Thresholds) -> bool:
    """Whether a worker's outbox is full, or has held events longer than the threshold."""
    if progress is None:
        return False
    old = progress.events_waiting > 0 and progress.outbox_oldest_age >= t.backlog_age_seconds
    return progress.outbox_full or old


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
        pod = pods_by_node.get(node)
        state = _node_state(pod, report, now, t)
        if batch is not None:
            state = _batch_node_state(node, state, batch.get(node), live_nodes, now, t)
        message = termination_message(pod) if pod is not None and state.state == FAILED else None
        heartbeat, backlog = _heartbeat(report), _backlog(progress, t)
        views.append(_NodeView(node, state.state, state.reason, message, progress, heartbeat, backlog))
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
        message=view.message,
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


def _counts(views: Sequence[_NodeView]) -> NodeCounts:
    return NodeCounts(
        desired=len(views),
        ready=sum(v.state == RUNNING for v in views),
        succeeded=sum(v.state == SUCCEEDED for v in views),
        failed=sum(v.state == FAILED for v in views),
    )


def _failure(view: _NodeView) -> str:
    """A failed node with its reason and its worker's message: `edge-1 (BackoffLimitExceeded: the event sink ...)`."""
    why = ": ".join(part for part in (view.reason, view.message) if part)
    return f"{view.node} ({why})" if why else view.node


def _failures(views: Sequence[_NodeView]) -> list[str]:
    """Failed nodes, each with its reason and its worker's message (each bounded: see MAX_NODE_MESSAGE)."""
    return [_failure(v) for v in views if v.state == FAILED]


def _named(nodes: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def _apply(
    previous: InferenceJobStatus,
    generation: int | None,
    now: datetime.datetime,
    updates: Sequence[ConditionUpdate],
) -> list[Condition]:
    applied = list(previous.conditions)
    for update in updates:
        applied = conditions.set_condition(
            applied,
            type=update.type,
            status=update.status,
            reason=update.reason,
            message=update.message,
            generation=generation,
            now=now,
        )
    return applied


def _true(type_: str, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type_, ConditionStatus.TRUE, reason, message)


def _false(type_: str, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type_, ConditionStatus.FALSE, reason, message)


def invalid_status(
    previous: InferenceJobStatus, generation: int | None, reason: str, message: str, now: datetime.datetime
) -> InferenceJobStatus:
    """Status of a job the operator refuses to schedule (nothing runs): Ready=False with `reason`."""
    updates = [
        _false(conditions.READY, reason, message),
        _false(conditions.PROGRESSING, reason, "nothing is scheduled until the spec is fixed"),
        _false(conditions.DEGRADED, conditions.AS_EXPECTED, NOTHING_WRONG),
    ]
    return InferenceJobStatus(
        phase=Phase.INVALID,
        observed_generation=generation,
        conditions=_apply(previous, generation, now, updates),
        target_nodes=previous.target_nodes,
        ready_nodes="0/0",
    )


@dataclasses.dataclass(frozen=True)
class _Problems:
    """What can make a job Degraded, most specific first (see _health)."""

    taken_names: Sequence[str]
    secret: str | None
    failed: Sequence[str]
    stale: Sequence[str]
    backlogged: Sequence[str]
    shared_with: Mapping[str, Sequence[str]]


def _health(problems: _Problems, ready: ConditionUpdate) -> tuple[ConditionUpdate, ConditionUpdate]:
    """Ready and Degraded given what is wrong: a taken name or a missing Secret also makes the job not Ready."""
    if problems.taken_names:
        taken = ", ".join(problems.taken_names)
        message = f"{taken} already exist(s) and belong(s) to something else; rename the job or remove them"
        return _false(conditions.READY, conditions.CHILD_NAME_TAKEN, message), _true(
            conditions.DEGRADED, conditions.CHILD_NAME_TAKEN, message
        )
    if problems.secret is not None:
        secret = problems.secret
        return _false(conditions.READY, conditions.SECRET_NOT_FOUND, secret), _true(
            conditions.DEGRADED, conditions.SECRET_NOT_FOUND, secret
        )
    return ready, _degraded(problems)


def _degraded(problems: _Problems) -> ConditionUpdate:
    failed, stale, backlogged = problems.failed, problems.stale, problems.backlogged
    if failed:
        return _true(
            conditions.DEGRADED, conditions.NODES_FAILED, f"worker failed on {len(failed)} node(s): {_named(failed)}"
        )
    if stale:
        return _true(
            conditions.DEGRADED, conditions.NODES_STALE, f"no metrics from {len(stale)} node(s): {_named(stale)}"
        )
    if backlogged:
        message = f"events waiting to upload on {len(backlogged)} node(s): {_named(backlogged)}"
        return _true(conditions.DEGRADED, conditions.OUTBOX_BACKLOG, message)
    if problems.shared_with:
        shared = sorted(problems.shared_with.items())
        # Bounded like every list in the status: a fleet-wide job shares nodes with every site job.
        others = "; ".join(f"{job} on {_named(list(nodes))}" for job, nodes in shared[:SHARED_NAMED])
        if len(shared) > SHARED_NAMED:
            others += f"; and {len(shared) - SHARED_NAMED} more jobs"
        message = f"other jobs read the same host folder on the same nodes ({others}): each file is processed twice"
        return _true(conditions.DEGRADED, conditions.SHARED_INPUT, message)
    return _false(conditions.DEGRADED, conditions.AS_EXPECTED, NOTHING_WRONG)


def _with_idle_accelerators(ready: ConditionUpdate, idle_accelerators: Sequence[str]) -> ConditionUpdate:
    """Ready's message also names the accepted accelerator kinds that no node matches."""
    idle = ", ".join(idle_accelerators)
    return dataclasses.replace(ready, message=f"{ready.message}; no matching node for accelerator(s): {idle}")


def _problems(
    views: Sequence[_NodeView],
    pods_by_node: Mapping[str, Mapping[str, Any]],
    taken_names: Sequence[str],
    shared_with: Mapping[str, Sequence[str]],
) -> _Problems:
    return _Problems(
        taken_names=taken_names,
        secret=missing_secret(pods_by_node.values()),
        failed=_failures(views),
        stale=[v.node for v in views if v.state == STALE],
        backlogged=[v.node for v in views if v.backlog],
        shared_with=shared_with,
    )


# size: the keyword-only signature (14 named inputs) and its docstring are half of it; the body is steps.
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
    pods_by_node = newest_pod_by_node(pods)
    per_node = batch_children(children) if batch else None
    views = _views(nodes, pods_by_node, per_node, live_nodes, reports, now, thresholds)
    counts = _counts(views)
    failed = _failures(views)
    if batch:
        phase, ready, progressing = _batch_conditions(nodes, counts, failed)
    else:
        phase, ready, progressing = _continuous_conditions(nodes, counts, spec)
    if idle_accelerators and nodes:
        ready = _with_idle_accelerators(ready, idle_accelerators)
    problems = _problems(views, pods_by_node, taken_names, shared_with or {})
    ready, degraded = _health(problems, ready)
    shown = sorted(views, key=_priority)[:node_progress_limit]
    totals = _totals(views)
    return InferenceJobStatus(
        phase=phase,
        observed_generation=generation,
        conditions=_apply(previous, generation, now, [ready, progressing, degraded]),
        nodes=counts,
        target_nodes=list(nodes) if batch else [],
        totals=totals,
        node_progress=[_progress_entry(v) for v in shown],
        node_progress_omitted=len(views) - len(shown),
        events=totals.events_uploaded,
        ready_nodes=f"{counts.succeeded if batch else counts.ready}/{counts.desired}",
    )


_Decision = tuple[Phase, ConditionUpdate, ConditionUpdate]  # phase, Ready, Progressing


def _continuous_conditions(nodes: Sequence[str], counts: NodeCounts, spec: InferenceJobSpec) -> _Decision:
    if not nodes:
        types = ", ".join(a.type for a in spec.accelerators)
        message = f"no node is labelled for camera storage with accelerator in [{types}]" + (
            f" and {spec.node_selector}" if spec.node_selector else ""
        )
        return (
            Phase.PENDING,
            _false(conditions.READY, conditions.NO_MATCHING_NODES, message),
            _true(
                conditions.PROGRESSING,
                conditions.WAITING_FOR_NODES,
                "the workload starts on nodes as soon as they get the labels",
            ),
        )
    summary = f"{counts.ready}/{counts.desired} nodes ready"
    if counts.ready == counts.desired:
        return (
            Phase.RUNNING,
            _true(conditions.READY, conditions.ALL_NODES_READY, summary),
            _false(conditions.PROGRESSING, conditions.AS_EXPECTED, summary),
        )
    phase = Phase.RUNNING if counts.ready else Phase.PENDING
    reason = conditions.SOME_NODES_NOT_READY if counts.ready else conditions.WAITING_FOR_NODES
    return (
        phase,
        _false(conditions.READY, reason, summary),
        _true(conditions.PROGRESSING, conditions.WORKLOADS_CREATED, summary),
    )


def _batch_conditions(nodes: Sequence[str], counts: NodeCounts, failed: Sequence[str]) -> _Decision:
    if not nodes:
        message = "no matching node yet; the batch targets the nodes that match when it starts"
        return (
            Phase.PENDING,
            _false(conditions.READY, conditions.NO_MATCHING_NODES, message),
            _true(conditions.PROGRESSING, conditions.WAITING_FOR_NODES, message),
        )
    summary = f"{counts.succeeded}/{counts.desired} nodes succeeded, {counts.failed} failed"
    if counts.succeeded + counts.failed == counts.desired:  # every node has its outcome: the batch is over
        return _batch_over(counts, failed, summary)
    running = _true(conditions.PROGRESSING, conditions.BATCH_RUNNING, summary)
    if failed:  # the other nodes go on; the outcome is decided when all have finished
        message = f"batch failed on {len(failed)} node(s): {_named(failed)}; the other nodes go on"
        return Phase.RUNNING, _false(conditions.READY, conditions.BATCH_FAILED, message), running
    if counts.ready + counts.succeeded == 0:
        message = f"no worker has started yet on the {counts.desired} target node(s)"
        return Phase.PENDING, _false(conditions.READY, conditions.WAITING_FOR_NODES, message), running
    return Phase.RUNNING, _true(conditions.READY, conditions.BATCH_RUNNING, summary), running


def _batch_over(counts: NodeCounts, failed: Sequence[str], summary: str) -> _Decision:
    if failed:
        message = f"batch failed on {len(failed)} node(s): {_named(failed)}"
        return (
            Phase.FAILED,
            _false(conditions.READY, conditions.BATCH_FAILED, message),
            _false(conditions.PROGRESSING, conditions.BATCH_FAILED, summary),
        )
    return (
        Phase.SUCCEEDED,
        _true(conditions.READY, conditions.BATCH_SUCCEEDED, summary),
        _false(conditions.PROGRESSING, conditions.BATCH_SUCCEEDED, summary),
    )


@dataclasses.dataclass(frozen=True)
class Transition:
    """A condition whose status or reason changed; becomes a Kubernetes Event."""

    type: str
    status: str
    reason: str
    message: str
    warning: bool


def _worse(cond: Condition) -> bool:
    """Whether a condition in this state is a Warning: Degraded, or not Ready for a reason other than starting."""
    if cond.type == conditions.DEGRADED:
        return cond.status == ConditionStatus.TRUE
    return cond.type == conditions.READY and cond.status == ConditionStatus.FALSE and cond.reason not in ON_THE_WAY


def transitions(previous: InferenceJobStatus, current: InferenceJobStatus) -> list[Transition]:
    """Conditions that changed status or reason between two statuses (new conditions included)."""
    before = {cond.type: cond for cond in previous.conditions}
    changed = []
    for cond in current.conditions:
        old = before.get(cond.type)
        if old is not None and old.status == cond.status and old.reason == cond.reason:
            continue
        changed.append(Transition(cond.type, cond.status.value, cond.reason, cond.message, _worse(cond)))
    return changed


# What moves at every scrape of a live worker: its counters and heartbeat (and the sums and order they make).
_PROGRESS_FIELDS = ("filesDone", "framesAnalysed", "eventsUploaded", "eventsWaiting", "lastHeartbeat")


def _without_progress(status: InferenceJobStatus) -> dict[str, Any]:
    """The status but its progress: phase, conditions, counts of nodes, and each listed node's state."""
    wire = status.model_dump(mode="json", by_alias=True, exclude={"totals", "events"})
    wire["nodeProgress"] = {
        entry["node"]: {key: value for key, value in entry.items() if key not in _PROGRESS_FIELDS}
        for entry in wire.get("nodeProgress") or []
    }  # by node: the slowest-first order follows the counters
    return wire


def _heartbeats(status: InferenceJobStatus) -> dict[str, datetime.datetime | None]:
    return {p.node: parse_time(p.last_heartbeat) for p in status.node_progress}


def _heartbeat_moved_on(old: datetime.datetime | None, new: datetime.datetime | None, by: datetime.timedelta) -> bool:
    if new is None or old is None:
        return new is not old
    return new - old >= by


def worth_writing(previous: InferenceJobStatus, current: InferenceJobStatus, progress_lag: datetime.timedelta) -> bool:
    """Whether `current` says something that the written `previous` does not, now.

    A change of state (phase, a condition, a node's state, the nodes listed) is written at once. Progress
    alone (counters and heartbeats, which move at every scrape of every live worker) is written once a
    listed heartbeat has moved on by `progress_lag`: writing each would PATCH every job at every scrape
    (docs/benchmarks.md, "Operator at fleet scale"). A worker that stops answering turns Stale at once;
    only the figures shown lag. Progress with no heartbeat listed to pace it is written at once.
    """
    if _without_progress(previous) != _without_progress(current):
        return True
    if previous == current:
        return False
    beats = _heartbeats(current)
    if not any(beats.values()):
        return True
    before = _heartbeats(previous)
    return any(_heartbeat_moved_on(before.get(node), new, progress_lag) for node, new in beats.items())
