"""The pure status computation: phases, conditions, counts and bounded per-node progress."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from edge_inference_api import conditions
from edge_inference_api.models import MAX_NODE_MESSAGE, MAX_NODE_PROGRESS, InferenceJobSpec, InferenceJobStatus
from edge_inference_operator.observed import NodeReport, WorkerProgress, termination_message
from edge_inference_operator.status import (
    Thresholds,
    compute_status,
    invalid_status,
    transitions,
    worth_writing,
)
from support.jobs import job_spec

T0 = datetime.datetime(2026, 11, 26, 6, 0, tzinfo=datetime.UTC)


def pod(node: str, phase: str = "Running", ready: bool = True, waiting: dict | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"name": "worker", "state": {"waiting": waiting}}]
    return {"metadata": {"name": f"w-{node}"}, "spec": {"nodeName": node}, "status": status}


def batch_job(node: str, outcome: str | None) -> dict[str, Any]:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    job_conditions = [{"type": outcome, "status": "True"}] if outcome else []
    return {
        "kind": "Job",
        "metadata": {"name": f"j-{node}"},
        "spec": {"template": {"spec": {"affinity": affinity}}},
        "status": {"conditions": job_conditions},
    }


def status_of(spec: InferenceJobSpec, previous: InferenceJobStatus | None = None, now=T0, **observed: Any):
    return compute_status(
        previous=previous or InferenceJobStatus(),
        spec=spec,
        generation=1,
        desired_nodes=observed.pop("desired_nodes", []),
        children=observed.pop("children", []),
        pods=observed.pop("pods", []),
        reports=observed.pop("reports", {}),
        now=now,
        **observed,
    )


def condition(status: InferenceJobStatus, type_: str) -> tuple[str, str]:
    found = conditions.find_condition(status.conditions, type_)
    assert found is not None
    return found.status.value, found.reason


CONTINUOUS_CASES = [
    # (desired, pods, phase, Ready, Degraded)
    ([], [], "Pending", ("False", conditions.NO_MATCHING_NODES), ("False", conditions.AS_EXPECTED)),
    (
        ["a", "b"],
        [pod("a"), pod("b")],
        "Running",
        ("True", conditions.ALL_NODES_READY),
        ("False", conditions.AS_EXPECTED),
    ),
    (["a", "b"], [pod("a")], "Running", ("False", conditions.SOME_NODES_NOT_READY), ("False", conditions.AS_EXPECTED)),
    (
        ["a"],
        [pod("a", ready=False)],
        "Pending",
        ("False", conditions.WAITING_FOR_NODES),
        ("False", conditions.AS_EXPECTED),
    ),
    (
        ["a"],
        [
            pod(
                "a",
                phase="Pending",
                ready=False,
                waiting={"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'},
            )
        ],
        "Pending",
        ("False", conditions.SECRET_NOT_FOUND),
        ("True", conditions.SECRET_NOT_FOUND),
    ),
    (
        ["a", "b"],
        [pod("a"), pod("b", ready=False, waiting={"reason": "CrashLoopBackOff"})],
        "Running",
        ("False", conditions.SOME_NODES_NOT_READY),
        ("True", conditions.NODES_FAILED),
    ),
]


@pytest.mark.parametrize(("desired", "pods", "phase", "ready", "degraded"), CONTINUOUS_CASES)
def test_continuous_phase_and_conditions(make_body, desired, pods, phase, ready, degraded) -> None:
    status = status_of(job_spec(), desired_nodes=desired, pods=pods)
    assert status.phase.value == phase
    assert condition(status, conditions.READY) == ready
    assert condition(status, conditions.DEGRADED) == degraded
    assert status.ready_nodes == f"{status.nodes.ready}/{len(desired)}"


def test_missing_secret_message_is_the_kubelets(make_body) -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-credentials" not found'}
    status = status_of(job_spec(), desired_nodes=["a"], pods=[pod("a", "Pending", False, waiting)])
    assert conditions.find_condition(status.conditions, conditions.READY).message == 'secret "s3-credentials" not found'


BATCH_CASES = [
    # (targets, outcomes, phase, Ready, Progressing, message fragment)
    ([], {}, "Pending", ("False", conditions.NO_MATCHING_NODES), ("True", conditions.WAITING_FOR_NODES), ""),
    (
        ["a", "b"],
        {"a": None, "b": None},
        "Pending",
        ("False", conditions.WAITING_FOR_NODES),
        ("True", conditions.BATCH_RUNNING),
        "",
    ),
    (
        ["a", "b"],
        {"a": "Complete", "b": None},
        "Running",
        ("True", conditions.BATCH_RUNNING),
        ("True", conditions.BATCH_RUNNING),
        "",
    ),
    (
        ["a", "b"],
        {"a": "Complete", "b": "Complete"},
        "Succeeded",
        ("True", conditions.BATCH_SUCCEEDED),
        ("False", conditions.BATCH_SUCCEEDED),
        "",
    ),
    (
        ["a", "b"],
        {"a": "Complete", "b": "Failed"},
        "Failed",
        ("False", conditions.BATCH_FAILED),
        ("False", conditions.BATCH_FAILED),
        "b (JobFailed)",
    ),
    (  # b still runs: the batch is not over, so the phase is not Failed yet
        ["a", "b", "c"],
        {"a": "Failed", "b": None, "c": "Failed"},
        "Running",
        ("False", conditions.BATCH_FAILED),
        ("True", conditions.BATCH_RUNNING),
        "a (JobFailed), c (JobFailed)",
    ),
]


@pytest.mark.parametrize(("targets", "outcomes", "phase", "ready", "progressing", "names"), BATCH_CASES)
def test_batch_phase_follows_the_per_node_jobs(make_body, targets, outcomes, phase, ready, progressing, names) -> None:
    children = [batch_job(node, outcome) for node, outcome in outcomes.items()]
    status = status_of(job_spec(mode="Batch"), desired_nodes=targets, children=children)
    assert status.phase.value == phase
    assert condition(status, conditions.READY) == ready
    assert condition(status, conditions.PROGRESSING) == progressing
    assert status.target_nodes == sorted(targets)
    assert status.nodes.succeeded == sum(o == "Complete" for o in outcomes.values())
    assert status.nodes.failed == sum(o == "Failed" for o in outcomes.values())
    if names:
        assert f"node(s): {names}" in conditions.find_condition(status.conditions, conditions.READY).message


def test_stale_only_after_the_grace_period(make_body) -> None:
    failing = NodeReport(progress=WorkerProgress(files_done=3), last_seen=T0, failing_since=T0)
    thresholds = Thresholds(stale_after=datetime.timedelta(seconds=60))
    early = status_of(
        job_spec(),
        now=T0 + datetime.timedelta(seconds=30),
        desired_nodes=["a"],
        pods=[pod("a")],
        reports={"a": failing},
        thresholds=thresholds,
    )
    late = status_of(
        job_spec(),
        now=T0 + datetime.timedelta(seconds=61),
        desired_nodes=["a"],
        pods=[pod("a")],
        reports={"a": failing},
        thresholds=thresholds,
    )
    assert early.node_progress[0].state == "Running" and condition(early, conditions.DEGRADED) == (
        "False",
        conditions.AS_EXPECTED,
    )
    assert late.node_progress[0].state == "Stale" and condition(late, conditions.DEGRADED) == (
        "True",
        conditions.NODES_STALE,
    )
    assert late.node_progress[0].files_done == 3  # the last known figures stay visible
    assert late.nodes.ready == 0


def test_outbox_backlog_degrades(make_body) -> None:
    full = NodeReport(progress=WorkerProgress(events_waiting=40, outbox_full=True), last_seen=T0)
    status = status_of(job_spec(), desired_nodes=["a"], pods=[pod("a")], reports={"a": full})
    assert condition(status, conditions.DEGRADED) == ("True", conditions.OUTBOX_BACKLOG)
    assert status.totals.events_waiting == 40


def test_last_transition_time_is_kept_while_status_holds(make_body) -> None:
    first = status_of(job_spec(), desired_nodes=["a"], pods=[pod("a")])
    later = status_of(
        job_spec(), previous=first, now=T0 + datetime.timedelta(minutes=5), desired_nodes=["a"], pods=[pod("a")]
    )
    flipped = status_of(
        job_spec(),
        previous=later,
        now=T0 + datetime.timedelta(minutes=9),
        desired_nodes=["a", "b"],
        pods=[pod("a")],
    )
    ready = [conditions.find_condition(s.conditions, conditions.READY) for s in (first, later, flipped)]
    assert ready[0].last_transition_time == ready[1].last_transition_time == "2026-11-26T06:00:00Z"
    assert ready[2].last_transition_time == "2026-11-26T06:09:00Z"
    assert transitions(first, later) == []
    (changed,) = [t for t in transitions(later, flipped) if t.type == conditions.READY]
    assert (changed.status, changed.reason, changed.warning) == (
        "False",
        conditions.SOME_NODES_NOT_READY,
        False,
    )  # a node joining
    assert {t.type for t in transitions(InferenceJobStatus(), first)} == {
        conditions.READY,
        conditions.PROGRESSING,
        conditions.DEGRADED,
    }


def test_invalid_status_schedules_nothing_and_says_why() -> None:
    status = invalid_status(
        InferenceJobStatus(), 3, conditions.HOST_PATH_NOT_ALLOWED, "hostPath '/etc' is not allowed", T0
    )
    assert status.phase.value == "Invalid" and status.observed_generation == 3
    assert condition(status, conditions.READY) == ("False", conditions.HOST_PATH_NOT_ALLOWED)
    assert status.nodes.desired == 0 and status.node_progress == []


def test_status_stays_bounded_for_2000_nodes(make_body) -> None:
    nodes = [f"edge-{i:04d}" for i in range(2000)]
    pods = [pod(n) for n in nodes]
    reports = {
        n: NodeReport(
            progress=WorkerProgress(
                files_done=10 + i % 50, frames_analysed=1000 + i, events_uploaded=2, events_waiting=1
            ),
            last_seen=T0,
        )
        for i, n in enumerate(nodes)
    }
    pods[1500] = pod(nodes[1500], ready=False, waiting={"reason": "CrashLoopBackOff"})
    reports[nodes[1700]] = NodeReport(
        progress=WorkerProgress(files_done=99), last_seen=T0, failing_since=T0 - datetime.timedelta(hours=1)
    )
    reports[nodes[1800]] = NodeReport(
        progress=WorkerProgress(files_done=99, events_waiting=9, outbox_full=True), last_seen=T0
    )

    status = status_of(job_spec(), desired_nodes=nodes, pods=pods, reports=reports)

    assert len(status.node_progress) == MAX_NODE_PROGRESS
    assert status.node_progress_omitted == 2000 - MAX_NODE_PROGRESS
    assert [p.node for p in status.node_progress[:3]] == [nodes[1500], nodes[1700], nodes[1800]]
    assert [p.state for p in status.node_progress[:2]] == ["Failed", "Stale"]
    rest = status.node_progress[3:]
    # Then the slowest: 40 nodes did 10 files (3 of them listed above already), the next ones 11.
    assert [p.files_done for p in rest] == [10] * 37 + [11] * (MAX_NODE_PROGRESS - 3 - 37)
    assert status.nodes.desired == 2000 and status.nodes.ready == 1998 and status.nodes.failed == 1
    assert status.totals.frames_analysed == sum(r.progress.frames_analysed for r in reports.values())
    assert status.events == 2 * 1998 and status.ready_nodes == "1998/2000"
    size = len(json.dumps(status.model_dump(mode="json", by_alias=True)))
    assert size < 16_000, size
    InferenceJobStatus.model_validate(status.model_dump(mode="json", by_alias=True))  # within the contract's bounds


def test_accelerator_kinds_without_nodes_are_named(make_body) -> None:
    two_kinds = job_spec(accelerators=[{"type": "cpu"}, {"type": "nvidia"}])
    status = status_of(two_kinds, desired_nodes=["a"], pods=[pod("a")], idle_accelerators=["nvidia"])
    ready = conditions.find_condition(status.conditions, conditions.READY)
    assert (ready.status.value, ready.reason) == ("True", conditions.ALL_NODES_READY)
    assert ready.message == "1/1 nodes ready; no matching node for accelerator(s): nvidia"


def created_at(job: dict[str, Any], when: datetime.datetime) -> dict[str, Any]:
    job["metadata"]["creationTimestamp"] = conditions.rfc3339(when)
    return job


def test_a_batch_node_that_succeeds_after_another_failed_is_counted(make_body) -> None:
    batch = job_spec(mode="Batch")
    one_failed = status_of(
        batch, desired_nodes=["a", "b"], children=[batch_job("a", "Failed"), batch_job("b", None)], pods=[pod("b")]
    )
    assert (one_failed.phase.value, one_failed.nodes.failed, one_failed.nodes.succeeded) == ("Running", 1, 0)
    later = status_of(
        batch,
        previous=one_failed,
        desired_nodes=["a", "b"],
        children=[batch_job("a", "Failed"), batch_job("b", "Complete")],
    )
    assert (later.phase.value, later.nodes.failed, later.nodes.succeeded) == ("Failed", 1, 1)
    assert later.ready_nodes == "1/2"  # the Nodes column of a batch: succeeded/desired


def test_a_deleted_target_node_fails_with_a_reason(make_body) -> None:
    status = status_of(
        job_spec(mode="Batch"),
        desired_nodes=["a", "gone"],
        children=[batch_job("a", "Complete"), batch_job("gone", None)],
        live_nodes={"a"},
    )
    assert status.phase.value == "Failed" and status.nodes.failed == 1
    (gone,) = [p for p in status.node_progress if p.node == "gone"]
    assert (gone.state, gone.reason) == ("Failed", "NodeGone")
    assert "gone (NodeGone)" in conditions.find_condition(status.conditions, conditions.READY).message


def test_a_target_node_that_never_runs_the_pod_fails_after_the_deadline(make_body) -> None:
    batch = job_spec(mode="Batch")
    job = created_at(batch_job("a", None), T0)
    pending = [pod("a", phase="Pending", ready=False)]
    deadline = Thresholds(batch_start_deadline=datetime.timedelta(minutes=10))
    waiting = status_of(
        batch,
        now=T0 + datetime.timedelta(minutes=9),
        desired_nodes=["a"],
        children=[job],
        pods=pending,
        live_nodes={"a"},
        thresholds=deadline,
    )
    assert waiting.phase.value == "Pending" and condition(waiting, conditions.READY) == (
        "False",
        conditions.WAITING_FOR_NODES,
    )
    late = status_of(
        batch,
        now=T0 + datetime.timedelta(minutes=10),
        desired_nodes=["a"],
        children=[job],
        pods=pending,
        live_nodes={"a"},
        thresholds=deadline,
    )
    assert late.phase.value == "Failed"
    assert (late.node_progress[0].state, late.node_progress[0].reason) == ("Failed", "StartDeadlineExceeded")


def test_a_batch_is_never_ready_while_every_pod_is_pending(make_body) -> None:
    pending = [pod(n, phase="Pending", ready=False) for n in ("a", "b")]
    status = status_of(
        job_spec(mode="Batch"),
        desired_nodes=["a", "b"],
        children=[batch_job("a", None), batch_job("b", None)],
        pods=pending,
    )
    assert (
        condition(status, conditions.READY) == ("False", conditions.WAITING_FOR_NODES)
        and status.phase.value == "Pending"
    )


def test_a_normal_start_is_no_warning_and_every_condition_says_something(make_body) -> None:
    job = job_spec()
    starting = status_of(job, desired_nodes=["a"], pods=[pod("a", phase="Pending", ready=False)])
    running = status_of(job, previous=starting, desired_nodes=["a"], pods=[pod("a")])
    changes = transitions(InferenceJobStatus(), starting) + transitions(starting, running)
    assert changes and not [t for t in changes if t.warning]
    assert all(cond.message for status in (starting, running) for cond in status.conditions)
    assert all(
        cond.message for cond in invalid_status(InferenceJobStatus(), 1, conditions.INVALID_SPEC, "x", T0).conditions
    )


def test_a_shared_input_is_a_warning_condition(make_body) -> None:
    status = status_of(job_spec(), desired_nodes=["a"], pods=[pod("a")], shared_with={"team-b/lobby": ["a"]})
    assert condition(status, conditions.DEGRADED) == ("True", conditions.SHARED_INPUT)
    assert "team-b/lobby on a" in conditions.find_condition(status.conditions, conditions.DEGRADED).message
    (warning,) = [t for t in transitions(InferenceJobStatus(), status) if t.warning]
    assert warning.reason == conditions.SHARED_INPUT


def test_a_fleet_wide_job_sharing_with_every_site_job_names_a_few(make_body) -> None:
    # Seen at 5,000 nodes: a fleet-wide job shared its folder with 1,000 site jobs, and the message outgrew
    # the condition's bound (every reconcile of it failed).
    shared = {f"default/site-{i:04d}": [f"edge-{5 * i + n}" for n in range(5)] for i in range(1000)}
    status = status_of(job_spec(), desired_nodes=["edge-0"], pods=[pod("edge-0")], shared_with=shared)
    message = conditions.find_condition(status.conditions, conditions.DEGRADED).message
    assert condition(status, conditions.DEGRADED) == ("True", conditions.SHARED_INPUT)
    assert "default/site-0000 on edge-0, edge-1" in message and "; and 995 more jobs)" in message
    assert len(message) < 1000


def test_progress_alone_is_written_once_a_heartbeat_has_moved_on_by_the_lag() -> None:
    def entry(beat: str | None, frames: int = 0, state: str = "Running", node: str = "a") -> dict[str, Any]:
        return {"node": node, "state": state, "framesAnalysed": frames, "lastHeartbeat": beat}

    def status(*entries: dict[str, Any]) -> InferenceJobStatus:
        frames = sum(e["framesAnalysed"] for e in entries)
        return InferenceJobStatus.model_validate({"nodeProgress": list(entries), "totals": {"framesAnalysed": frames}})

    lag = datetime.timedelta(seconds=60)
    t0, t1, t60 = "2026-11-29T10:00:00Z", "2026-11-29T10:00:01Z", "2026-11-29T10:01:00Z"
    assert not worth_writing(status(entry(t0)), status(entry(t0)), lag)
    # Heartbeats and counters move at every scrape: written once a heartbeat has moved on by the lag.
    assert not worth_writing(status(entry(t0)), status(entry("2026-11-29T10:00:59Z")), lag)
    assert not worth_writing(status(entry(t0)), status(entry(t1, frames=1)), lag)
    assert worth_writing(status(entry(t0)), status(entry(t60)), lag)
    assert worth_writing(status(entry(t0)), status(entry(t60, frames=5)), lag)
    assert worth_writing(status(entry(None)), status(entry(t0)), lag)
    # The slowest-first order follows the counters: a new order alone is progress too.
    two = (entry(t0, 5, node="a"), entry(t0, 9, node="b"))
    assert not worth_writing(status(*two), status(entry(t1, 12, node="b"), entry(t1, 10, node="a")), lag)
    # A change of state is written at once, with the progress of the moment.
    assert worth_writing(status(entry(t0)), status(entry(t1, frames=1, state="Stale")), lag)
    assert worth_writing(status(entry(t0)), status(entry(t1), entry(t1, node="b")), lag)
    # Progress that no listed heartbeat paces (e.g. only Pending nodes listed) is written at once.
    assert worth_writing(status(entry(None, state="Pending")), status(entry(None, frames=3, state="Pending")), lag)


def terminated(message: str | None, exit_code: int = 2) -> dict[str, Any]:
    """A container state: exited with `exit_code`, leaving `message` (None: no message)."""
    state: dict[str, Any] = {"exitCode": exit_code}
    if message is not None:
        state["message"] = message
    return {"terminated": state}


def pod_with(node: str, phase: str = "Failed", **containers: dict[str, Any]) -> dict[str, Any]:
    """A pod on `node` whose containers (by name) have the given statuses (state, lastState)."""
    status = {"phase": phase, "containerStatuses": [{"name": name, **st} for name, st in containers.items()]}
    return {"metadata": {"name": f"w-{node}"}, "spec": {"nodeName": node}, "status": status}


LONG = "the event sink refuses: NoSuchBucket " + "x" * 400
TERMINATION_MESSAGES = [
    # (the worker container's status, the message status shows)
    ({"state": terminated("cannot start: no model")}, "cannot start: no model"),
    (  # a crash-looping container: waiting now, its last exit's message in lastState
        {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": terminated("configuration error: bad")},
        "configuration error: bad",
    ),
    (  # the current exit's words win over an older run's
        {"state": terminated("batch finished with failures: 1 corrupt", 1), "lastState": terminated("older")},
        "batch finished with failures: 1 corrupt",
    ),
    ({"state": terminated(None), "lastState": terminated("older")}, "older"),  # this exit wrote nothing
    ({"state": terminated("  \n ")}, None),  # blank is no message
    ({"state": terminated(None)}, None),
    ({"state": {"running": {}}}, None),
    ({}, None),
    ({"state": terminated("the sink refuses:\n  NoSuchBucket\tevents\n")}, "the sink refuses: NoSuchBucket events"),
    ({"state": terminated(LONG)}, LONG[: MAX_NODE_MESSAGE - 1] + "\u2026"),
]


@pytest.mark.parametrize(("worker", "expected"), TERMINATION_MESSAGES)
def test_the_worker_containers_termination_message_is_read(worker, expected) -> None:
    assert termination_message(pod_with("a", worker=worker)) == expected


def test_only_the_worker_containers_termination_message_counts() -> None:
    sidecar = pod_with("a", sidecar={"state": terminated("not the worker")}, worker={"state": terminated(None)})
    assert termination_message(sidecar) is None
    assert termination_message({"metadata": {}, "spec": {}, "status": {}}) is None


def test_a_failed_batch_node_shows_its_workers_last_words(make_body) -> None:
    refused = "the event sink refuses: NoSuchBucket: events; 3 events stay in the outbox for the next start"
    failed = {"state": terminated(refused)}
    status = status_of(
        job_spec(mode="Batch"),
        desired_nodes=["a", "b"],
        children=[batch_job("a", "Complete"), batch_job("b", "Failed")],
        pods=[pod_with("a", "Succeeded", worker={"state": terminated(None, 0)}), pod_with("b", worker=failed)],
    )
    by_node = {p.node: p for p in status.node_progress}
    assert (by_node["b"].state, by_node["b"].reason, by_node["b"].message) == ("Failed", "JobFailed", refused)
    assert by_node["a"].message is None
    assert f"b (JobFailed: {refused})" in conditions.find_condition(status.conditions, conditions.READY).message
    assert f"b (JobFailed: {refused})" in conditions.find_condition(status.conditions, conditions.DEGRADED).message


def test_a_crash_looping_continuous_node_shows_its_workers_last_words(make_body) -> None:
    looping = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": terminated("cannot start: " + LONG)}
    status = status_of(job_spec(), desired_nodes=["a", "b"], pods=[pod("a"), pod_with("b", "Running", worker=looping)])
    (entry,) = [p for p in status.node_progress if p.node == "b"]
    assert (entry.state, entry.reason) == ("Failed", "WorkerFailed")
    assert entry.message is not None and len(entry.message) == MAX_NODE_MESSAGE
    assert entry.message.startswith("cannot start: the event sink refuses: NoSuchBucket xxx")
    assert condition(status, conditions.DEGRADED) == ("True", conditions.NODES_FAILED)
    assert (
        f"b (WorkerFailed: {entry.message})"
        in conditions.find_condition(status.conditions, conditions.DEGRADED).message
    )


def test_a_running_node_shows_no_message_from_an_earlier_exit(make_body) -> None:
    restarted = {"state": {"running": {}}, "lastState": terminated("cannot start: gone now")}
    running = pod_with("a", "Running", worker=restarted)
    running["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    status = status_of(job_spec(), desired_nodes=["a"], pods=[running])
    assert [(p.state, p.message) for p in status.node_progress] == [("Running", None)]
