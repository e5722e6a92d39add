"""The operator in-process (kopf) against the real control plane (tests/support/controlplane.py).

The operator authenticates as the chart's ServiceAccount (installed by Helm); the DaemonSet and Job
controllers, the scheduler and kwok's fake kubelets place and run the workers on kwok nodes. Each
test drives the cluster as a user would, with the official client and kubectl, and waits on
conditions with deadlines. The `start_operator` fixture then checks every object the operator
created against the strict Kubernetes schema, and that the API server refused none of its requests.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from edge_inference_api import conditions
from edge_inference_api.models import ENV_WORKER_CONFIG, WORKER_METRICS_PORT, WorkerConfig
from edge_inference_operator.names import ANNOTATION_SPEC_HASH, dns_name
from edge_inference_operator.settings import OperatorSettings
from support.controlplane import EXIT_CODE_ANNOTATION, TERMINATION_MESSAGE_ANNOTATION
from support.helm import cluster_role_rules, operator_user

from .conftest import OperatorProcess, forbidden_requests

BATCH_JOB = {node: dns_name("lobby", "cpu", node) for node in ("edge-1", "edge-2")}  # the Batch Job of each node
OPERATOR_USER = operator_user()

# Batch tests: one failed pod fails its node (the Job controller's retries back off for minutes).
BATCH_SETTINGS = OperatorSettings(
    allowed_host_paths=("/srv/video",), metrics_port=0, reconcile_seconds=0.5, stale_after_seconds=1,
    batch_backoff_limit=0,
)  # fmt: skip


def names(objects: list[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


def uids(objects: list[dict]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in objects}


def running_pod(cluster, node: str) -> dict | None:
    """The Running worker pod on `node`, once kwok runs it."""
    pods = [p for p in cluster.pods() if p["spec"].get("nodeName") == node and p["status"].get("phase") == "Running"]
    return pods[0] if pods else None


async def serve_worker_metrics(cluster, worker_metrics, node: str):
    """A worker's metrics endpoint where the operator scrapes the pod on `node`: its IP (kwok's pod
    IPs are loopback addresses) and the declared metrics port."""
    pod = await cluster.wait(lambda: running_pod(cluster, node), what=f"a running worker on {node}")
    return worker_metrics(pod["status"]["podIP"], WORKER_METRICS_PORT)


async def end_batch_pod(cluster, node: str, exit_code: int, message: str | None = None) -> None:
    """Let the Batch worker on `node` exit with `exit_code`, leaving `message` as its termination message
    (kwok ends the pod as the annotations say)."""
    pod = await cluster.wait(lambda: running_pod(cluster, node), what=f"a running worker on {node}")
    annotations = {EXIT_CODE_ANNOTATION: str(exit_code)}
    if message is not None:
        annotations[TERMINATION_MESSAGE_ANNOTATION] = message
    cluster.core.patch_namespaced_pod(pod["metadata"]["name"], "default", {"metadata": {"annotations": annotations}})


def worker_config(workload: dict) -> WorkerConfig:
    env = workload["spec"]["template"]["spec"]["containers"][0]["env"]
    return WorkerConfig.model_validate_json(next(e["value"] for e in env if e["name"] == ENV_WORKER_CONFIG))


async def test_continuous_job_converges_and_a_restart_changes_nothing(
    cluster, start_operator, make_body, worker_metrics
) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    first = await start_operator()
    worker = await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    worker.heartbeat.set(1_800_000_000)  # its last loop: held still, so the status has nothing new to say
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="AllNodesReady"
    )
    assert names(cluster.daemonsets()) == ["lobby-cpu"]
    # The operator wrote its DaemonSet once; a pod the DaemonSet controller replaced may linger a moment
    # (seen under load: two pods on edge-1, one of them going).
    assert cluster.daemonsets()[0]["metadata"]["generation"] == 1
    try:
        await cluster.wait(lambda: [p["spec"]["nodeName"] for p in cluster.pods()] == ["edge-1"], what="one worker")
    except AssertionError as error:  # an intermittent failure, cause not yet found: say what was there
        seen = [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase"),
                 p["metadata"].get("deletionTimestamp"), p["metadata"].get("ownerReferences"))
                for p in cluster.pods()]  # fmt: skip
        raise AssertionError(f"{error}; pods: {seen}") from None
    status = cluster.status()
    assert status["nodes"]["desired"] == 1 and status["readyNodes"] == "1/1" and status["observedGeneration"] == 1

    def children() -> dict[str, tuple[str, int]]:  # the DaemonSet controller writes its status; we only read spec
        return {d["metadata"]["name"]: (d["metadata"]["uid"], d["metadata"]["generation"])
                for d in cluster.daemonsets()}  # fmt: skip

    before = children()
    await cluster.wait(lambda: first.reconciles() >= 3, what="a few timer reconciles")
    await first.stop()

    # A restarted operator resumes the job: same children, not touched, no duplicates.
    second = await start_operator()
    await cluster.wait(lambda: second.reconciles() >= 3, what="reconciles after the restart")
    assert children() == before
    assert cluster.batch_jobs() == []
    # Nothing changed, so nothing is written: the job's own resourceVersion holds across reconciles.
    version = cluster.job()["metadata"]["resourceVersion"]
    seen = second.reconciles()
    await cluster.wait(lambda: second.reconciles() >= seen + 3, what="more reconciles")
    assert cluster.job()["metadata"]["resourceVersion"] == version


async def test_events_are_posted_on_condition_transitions(cluster, start_operator, make_body, worker_metrics) -> None:
    cluster.apply(make_body())
    operator = await start_operator()
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("False", conditions.NO_MATCHING_NODES), what="NoMatchingNodes"
    )
    cluster.add_node("edge-1")  # a node that gets the labels later: Ready moves on, an Event says so
    await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="AllNodesReady"
    )

    def reasons() -> set[str]:
        return {e["reason"] for e in cluster.events() if e["involvedObject"]["name"] == "lobby"}

    await cluster.wait(
        lambda: {conditions.NO_MATCHING_NODES, conditions.ALL_NODES_READY} <= reasons(), what="transition Events"
    )
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 4, what="more reconciles")
    posted = [e for e in cluster.events() if e["reason"] == conditions.NO_MATCHING_NODES]
    assert len(posted) == 1, posted  # one Event per transition, not one per reconcile
    assert posted[0]["type"] == "Warning" and posted[0]["involvedObject"]["kind"] == "InferenceJob"
    assert "Ready=False" in posted[0]["message"]


async def test_a_child_deleted_by_hand_comes_back(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    original = await cluster.wait(lambda: uids(cluster.daemonsets()).get("lobby-cpu"), what="the DaemonSet")
    deleted = cluster.api.kubectl("delete", "daemonset", "lobby-cpu")
    assert deleted.returncode == 0, deleted.stderr
    recreated = await cluster.wait(
        lambda: (uid := uids(cluster.daemonsets()).get("lobby-cpu")) and uid != original and uid, what="a new DaemonSet"
    )
    assert recreated != original and names(cluster.daemonsets()) == ["lobby-cpu"]


async def test_a_child_changed_by_hand_is_converged_back(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    ds = await cluster.wait(lambda: cluster.daemonsets()[0], what="the DaemonSet")
    wanted = ds["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    cluster.apps.patch_namespaced_daemon_set(
        "lobby-cpu",
        "default",
        [
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"},
            {"op": "replace", "path": "/metadata/annotations", "value": {ANNOTATION_SPEC_HASH: "x"}},
        ],
    )
    fixed = await cluster.wait(
        lambda: (d := cluster.daemonsets()[0])["metadata"]["annotations"][ANNOTATION_SPEC_HASH] == wanted and d,
        what="the DaemonSet converged back",
    )
    assert fixed["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/edge-inference/worker:0.1.0"


async def test_spec_change_rolls_the_workload(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    ds = await cluster.wait(lambda: cluster.daemonsets()[0], what="the DaemonSet")
    old_hash = ds["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    cluster.custom.patch_namespaced_custom_object(
        "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", {"spec": {"sampling": {"fps": 5}}}
    )
    rolled = await cluster.wait(
        lambda: (
            (d := cluster.daemonsets()[0])["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
            != old_hash
            and d
        ),
        what="a new pod template",
    )
    assert worker_config(rolled).sampling.fps == 5  # the env JSON changed with it
    assert uids([rolled]) == uids([ds])  # the same DaemonSet, rolled, not replaced
    await cluster.wait(lambda: cluster.status().get("observedGeneration") == 2, what="observedGeneration 2")


async def test_deleting_the_job_removes_its_children(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1", "cpu")
    cluster.add_node("gpu-1", "nvidia")
    cluster.apply(make_body(accelerators=[{"type": "cpu"}, {"type": "nvidia"}]))
    await start_operator()
    await cluster.wait(lambda: names(cluster.daemonsets()) == ["lobby-cpu", "lobby-nvidia"], what="two DaemonSets")
    assert cluster.api.kubectl("delete", "inferencejob", "lobby").returncode == 0
    await cluster.wait(lambda: cluster.daemonsets() == [], what="the children garbage-collected")


async def test_removing_an_accelerator_deletes_its_workload(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1", "cpu")
    cluster.apply(make_body(accelerators=[{"type": "cpu"}, {"type": "nvidia"}]))
    await start_operator()
    await cluster.wait(lambda: names(cluster.daemonsets()) == ["lobby-cpu", "lobby-nvidia"], what="two DaemonSets")
    cluster.apply(make_body(accelerators=[{"type": "cpu"}]))
    await cluster.wait(lambda: names(cluster.daemonsets()) == ["lobby-cpu"], what="the nvidia DaemonSet gone")


async def test_node_labelled_later_gets_continuous_work(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2", accelerator=None)  # not (yet) a camera node
    cluster.apply(make_body())
    await start_operator()
    await cluster.wait(lambda: cluster.status().get("nodes", {}).get("desired") == 1, what="desired 1")
    cluster.label_node("edge-2", {"edgeinference.io/camera-storage": "true", "edgeinference.io/accelerator": "cpu"})
    await cluster.wait(lambda: cluster.status()["nodes"]["desired"] == 2, what="desired 2")
    # The DaemonSet itself places the pod on the new node: still one workload, unchanged.
    assert names(cluster.daemonsets()) == ["lobby-cpu"]
    cluster.label_node("edge-1", {"edgeinference.io/camera-storage": None})
    await cluster.wait(lambda: cluster.status()["nodes"]["desired"] == 1, what="desired back to 1")


async def test_batch_targets_the_nodes_that_matched_at_start(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2")
    cluster.add_node("gpu-1", "nvidia")  # not an accepted kind
    cluster.apply(make_body(mode="Batch"))
    operator = await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: cluster.status().get("targetNodes") == ["edge-1", "edge-2"], what="targetNodes")
    await cluster.wait(lambda: names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"], BATCH_JOB["edge-2"]], what="Jobs")
    assert cluster.daemonsets() == []
    for job in cluster.batch_jobs():
        (term,) = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        node = next(n for n, name in BATCH_JOB.items() if name == job["metadata"]["name"])
        assert term["matchFields"][0]["values"] == [node]

    cluster.add_node("edge-3")  # too late for this batch
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 3, what="more reconciles")
    await cluster.wait(
        lambda: cluster.condition(conditions.PROGRESSING) == ("True", conditions.BATCH_RUNNING), what="BatchRunning"
    )
    assert cluster.status()["targetNodes"] == ["edge-1", "edge-2"]
    assert names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"], BATCH_JOB["edge-2"]]

    # The workers end: the one on edge-1 succeeds, the one on edge-2 fails; the Job controller says so.
    await end_batch_pod(cluster, "edge-1", 0)
    await end_batch_pod(cluster, "edge-2", 1)
    await cluster.wait(lambda: cluster.status().get("phase") == "Failed", what="phase Failed")

    def outcomes() -> dict[str, list[str]]:
        # The status may reach Failed from the pods' phases before the Job controller writes the Jobs' conditions.
        return {j["metadata"]["name"]: [x["type"] for x in j.get("status", {}).get("conditions", [])
                                        if x["status"] == "True"] for j in cluster.batch_jobs()}  # fmt: skip

    await cluster.wait(
        lambda: "Complete" in outcomes()[BATCH_JOB["edge-1"]] and "Failed" in outcomes()[BATCH_JOB["edge-2"]],
        what="the Job controller's outcomes",
    )
    ready = next(x for x in cluster.status()["conditions"] if x["type"] == conditions.READY)
    assert (
        ready["reason"] == conditions.BATCH_FAILED and "edge-2" in ready["message"] and "edge-1" not in ready["message"]
    )
    assert cluster.status()["nodes"] == {"desired": 2, "ready": 0, "succeeded": 1, "failed": 1}


async def test_batch_succeeds_when_every_target_node_succeeded(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body(mode="Batch"))
    first = await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"]], what="the Job")
    await end_batch_pod(cluster, "edge-1", 0)
    await cluster.wait(lambda: cluster.status().get("phase") == "Succeeded", what="Succeeded")
    assert cluster.condition(conditions.READY) == ("True", conditions.BATCH_SUCCEEDED)
    # A finished batch is not re-run when its finished Job is cleaned up by hand (nor after a restart).
    assert cluster.api.kubectl("delete", "job", BATCH_JOB["edge-1"]).returncode == 0
    await cluster.wait(lambda: first.reconciles() >= 3, what="reconciles")
    await first.stop()
    operator = await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: operator.reconciles() >= 3, what="reconciles")
    assert cluster.batch_jobs() == [] and cluster.status()["phase"] == "Succeeded"


async def test_host_path_outside_the_allow_list_schedules_nothing(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    # The chart's admission policy (allowing /srv) refuses /etc at the API server already ...
    refused = cluster.api.kubectl("apply", "-f", "-", input=json.dumps(make_body("etc", input={"hostPath": "/etc"})))
    assert refused.returncode != 0 and "spec.input.hostPath /etc is not allowed" in refused.stderr, refused.stderr
    assert "allowed prefixes (/srv)" in refused.stderr
    # ... and the operator's own, narrower allow-list refuses what the cluster's lets through.
    cluster.apply(make_body(input={"hostPath": "/srv/video_dir2"}))
    cluster.apply(make_body("srv", input={"hostPath": "/srv"}))
    operator = await start_operator(
        OperatorSettings(allowed_host_paths=("/srv/video_dir",), metrics_port=0, reconcile_seconds=0.5)
    )
    for job in ("lobby", "srv"):
        await cluster.wait(
            lambda job=job: cluster.condition(conditions.READY, job) == ("False", conditions.HOST_PATH_NOT_ALLOWED),
            what=f"{job}: HostPathNotAllowed",
        )
        ready = next(x for x in cluster.status(job)["conditions"] if x["type"] == conditions.READY)
        assert "/srv/video_dir" in ready["message"]  # says which prefixes are allowed
        assert cluster.status(job)["phase"] == "Invalid"
    await cluster.wait(lambda: operator.reconciles("invalid") >= 4, what="several reconciles")
    assert cluster.daemonsets() == [] and cluster.batch_jobs() == []


async def test_a_job_made_invalid_loses_its_workloads(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    await cluster.wait(lambda: names(cluster.daemonsets()) == ["lobby-cpu"], what="the DaemonSet")
    cluster.apply(make_body(input={"hostPath": "/srv/ssh"}))  # the chart allows /srv, the operator /srv/video
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("False", conditions.HOST_PATH_NOT_ALLOWED), what="refused"
    )
    await cluster.wait(lambda: cluster.daemonsets() == [], what="the workload removed")


async def test_specs_the_schema_cannot_refuse_get_a_specific_reason(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body("cuda-on-cpu", model={"device": "cuda"}))
    operator = await start_operator()
    await cluster.wait(
        lambda: cluster.condition(conditions.READY, "cuda-on-cpu") == ("False", conditions.INVALID_SPEC),
        what="InvalidSpec",
    )
    ready = next(x for x in cluster.status("cuda-on-cpu")["conditions"] if x["type"] == conditions.READY)
    assert "cuda" in ready["message"] and "cpu" in ready["message"]
    await cluster.wait(lambda: operator.reconciles("invalid") >= 3, what="reconciles")
    assert cluster.daemonsets() == []
    assert operator.reconciles("error") == 0  # a value, not a crash loop


async def test_per_node_progress_is_scraped_from_worker_metrics(
    cluster, start_operator, make_body, worker_metrics
) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2")
    cluster.apply(make_body())
    operator = await start_operator()
    one = await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    two = await serve_worker_metrics(cluster, worker_metrics, "edge-2")
    one.files.labels(outcome="done").inc(3)
    one.frames.inc(120)
    one.uploaded.inc(4)
    two.frames.inc(30)
    two.outbox.set(2)

    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="AllNodesReady"
    )
    await cluster.wait(lambda: cluster.status()["totals"]["framesAnalysed"] == 150, what="totals from metrics")
    status = cluster.status()
    progress = {p["node"]: p for p in status["nodeProgress"]}
    assert progress["edge-1"]["filesDone"] == 3 and progress["edge-1"]["eventsUploaded"] == 4
    assert progress["edge-2"]["eventsWaiting"] == 2 and progress["edge-2"]["state"] == "Running"
    assert status["events"] == 4 and status["readyNodes"] == "2/2"
    listed = cluster.api.kubectl("get", "ij", "lobby", "--no-headers")  # the printer columns
    assert listed.stdout.split()[:6] == ["lobby", "Continuous", "2/2", "4", "Running", "True"], listed

    two.stop()  # the worker on edge-2 stops answering: Stale after the grace period, not an error
    await cluster.wait(
        lambda: cluster.condition(conditions.DEGRADED) == ("True", conditions.NODES_STALE), what="NodesStale"
    )
    assert operator.metrics.scrape_failures._value.get() >= 1
    stale = next(p for p in cluster.status()["nodeProgress"] if p["node"] == "edge-2")
    assert stale["state"] == "Stale" and stale["framesAnalysed"] == 30
    assert cluster.status()["nodeProgress"][0]["node"] == "edge-2"  # attention first


async def test_missing_secret_is_reported_from_the_pod(cluster, start_operator, make_body) -> None:
    # No kwok on this node: the test plays its kubelet, which cannot start the worker without the Secret.
    cluster.add_node("edge-1", kwok=False, ready=True, wait=False)
    await cluster.wait(lambda: cluster.node_settled("edge-1"), what="edge-1 schedulable")
    cluster.apply(make_body())
    await start_operator()
    pod = await cluster.wait(lambda: cluster.pods()[0], what="the DaemonSet's pod")
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-credentials" not found'}
    cluster.set_pod_status(
        pod["metadata"]["name"],
        phase="Pending",
        containerStatuses=[
            {
                "name": "worker",
                "ready": False,
                "restartCount": 0,
                "image": "w",
                "imageID": "",
                "state": {"waiting": waiting},
            }
        ],
    )
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("False", conditions.SECRET_NOT_FOUND), what="SecretNotFound"
    )
    assert cluster.condition(conditions.DEGRADED) == ("True", conditions.SECRET_NOT_FOUND)


async def test_the_operator_serves_its_own_metrics(cluster, start_operator, make_body, unused_tcp_port) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    settings = OperatorSettings(allowed_host_paths=("/srv/video",), metrics_port=unused_tcp_port, reconcile_seconds=0.5)
    await start_operator(settings)
    await cluster.wait(lambda: cluster.status().get("phase") == "Running", what="a reconciled job")

    async def scrape() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{unused_tcp_port}/metrics") as response:
                return await response.text()

    deadline = asyncio.get_running_loop().time() + 10
    while 'edge_inference_operator_jobs{phase="Running"} 1.0' not in (text := await scrape()):
        assert asyncio.get_running_loop().time() < deadline, text  # counted once the reconcile returns
        await asyncio.sleep(0.1)
    assert 'edge_inference_operator_reconciles_total{result="ok"}' in text
    assert "edge_inference_operator_reconcile_duration_seconds_bucket" in text
    assert 'edge_inference_operator_jobs{phase="Running"} 1.0' in text


async def test_the_worker_config_of_a_created_daemonset_parses(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body(events={"minFrames": 7}, model={"classes": ["person"], "confidence": 0.4}))
    await start_operator()
    ds = await cluster.wait(lambda: cluster.daemonsets()[0], what="the DaemonSet")
    config = worker_config(ds)
    assert (config.job.namespace, config.job.name) == ("default", "lobby")
    assert config.events.min_frames == 7 and config.model.classes == ["person"] and config.model.confidence == 0.4
    assert json.loads(config.model_dump_json(by_alias=True))["sink"]["bucket"] == "events"


async def test_hostile_paths_schedule_nothing(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    hostile = {
        "sibling": "/srv/video2/lobby",  # prefix trick
        "traversal": "/srv/video/../../etc",
        "empty-segment": "/srv/video//lobby",
        "parent": "/srv",
        "encoded": "/srv/video%2F..%2Fetc",
    }
    accepted = []
    for name, path in hostile.items():
        result = cluster.api.kubectl("apply", "-f", "-", input=json.dumps(make_body(name, input={"hostPath": path})))
        if result.returncode != 0:  # the CRD's CEL rules refuse structural tricks at the API already
            assert "hostPath must not contain" in result.stderr, result.stderr
        else:
            accepted.append(name)
    assert set(accepted) >= {"sibling", "parent", "encoded"}  # only the allow-list can refuse these
    operator = await start_operator()
    for name in accepted:
        await cluster.wait(
            lambda name=name: cluster.condition(conditions.READY, name) == ("False", conditions.HOST_PATH_NOT_ALLOWED),
            what=name,
        )
        message = next(x for x in cluster.status(name)["conditions"] if x["type"] == conditions.READY)["message"]
        assert "allowed prefixes: /srv/video" in message
    await cluster.wait(lambda: operator.reconciles("invalid") >= 2 * len(accepted), what="reconciles")
    assert cluster.daemonsets() == [] and cluster.batch_jobs() == []


async def test_a_replayed_or_repeated_event_changes_nothing(cluster, start_operator, make_body, worker_metrics) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    operator = await start_operator()
    await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="reconciled"
    )
    versions = {d["metadata"]["name"]: d["metadata"]["generation"] for d in cluster.daemonsets()}
    cluster.apply(make_body())  # the same manifest again (as a GitOps sync would)
    cluster.custom.patch_namespaced_custom_object(  # a metadata-only change: kopf calls the update handler
        "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", {"metadata": {"labels": {"team": "a"}}}
    )
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 4, what="more reconciles")
    assert {d["metadata"]["name"]: d["metadata"]["generation"] for d in cluster.daemonsets()} == versions


async def test_the_rbac_check_covers_the_operators_writes(cluster, start_operator, make_body) -> None:
    """The fixture's 403 check is not vacuous: the audit log holds the writes, and RBAC refuses Secrets."""
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    await cluster.wait(lambda: cluster.condition(conditions.READY) is not None, what="a status")
    await cluster.wait(lambda: cluster.events(), what="an Event")
    made = {
        (e["verb"], e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"], e["objectRef"].get("subresource"))
        for e in cluster.api.audit_events(OPERATOR_USER)
        if "objectRef" in e
    }
    assert {
        ("create", "apps", "daemonsets", None),
        ("patch", "edgeinference.io", "inferencejobs", "status"),
        ("create", "", "events", None),
        ("watch", "", "pods", None),
        ("list", "", "nodes", None),
    } <= made
    for verb, resource in (("get", "secrets"), ("update", "daemonsets.apps")):
        asked = cluster.api.kubectl("auth", "can-i", verb, resource, "-n", "default", f"--as={OPERATOR_USER}")
        assert asked.stdout.strip() == "no", (verb, resource, asked.stdout, asked.stderr)


async def test_tainted_nodes_count_once_the_job_tolerates_them(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2", taints=[{"key": "edgeinference.io/edge", "value": "true", "effect": "NoSchedule"}])
    cluster.apply(make_body())
    await start_operator()
    await cluster.wait(lambda: cluster.status().get("nodes", {}).get("desired") == 1, what="only edge-1")
    toleration = {"key": "edgeinference.io/edge", "operator": "Exists", "effect": "NoSchedule"}
    cluster.apply(make_body(tolerations=[toleration]))
    await cluster.wait(lambda: cluster.status()["nodes"]["desired"] == 2, what="edge-2 too")
    ds = cluster.daemonsets()[0]
    assert ds["spec"]["template"]["spec"]["tolerations"] == [toleration]


async def test_a_name_taken_by_someone_else_is_reported_not_hijacked(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    theirs = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "lobby-cpu", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "theirs"}},
            "template": {
                "metadata": {"labels": {"app": "theirs"}},
                "spec": {"containers": [{"name": "c", "image": "theirs:1"}]},
            },
        },
    }
    cluster.apps.create_namespaced_daemon_set("default", theirs)
    cluster.apply(make_body())
    await start_operator()
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("False", conditions.CHILD_NAME_TAKEN), what="ChildNameTaken"
    )
    (ds,) = cluster.daemonsets()
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "theirs:1"
    assert cluster.api.kubectl("delete", "daemonset", "lobby-cpu").returncode == 0
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("False", conditions.WAITING_FOR_NODES), what="ours now"
    )
    assert cluster.daemonsets()[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "edge-inference-operator"


async def test_a_job_is_deletable_while_the_operator_is_down(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    operator = await start_operator()
    await cluster.wait(lambda: cluster.daemonsets(), what="the DaemonSet")
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 3, what="periodic resyncs")
    assert not cluster.job()["metadata"].get("finalizers")  # the resync needs none
    await operator.stop()
    deleted = cluster.api.kubectl("delete", "inferencejob", "lobby", "--timeout=20s")
    assert deleted.returncode == 0, deleted.stderr
    assert cluster.api.kubectl("get", "inferencejob", "lobby").returncode != 0


async def test_batch_status_keeps_updating_after_one_node_failed(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2")
    cluster.apply(make_body(mode="Batch"))
    operator = await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"], BATCH_JOB["edge-2"]], what="Jobs")
    await end_batch_pod(cluster, "edge-1", 1)
    await cluster.wait(lambda: cluster.status()["nodes"]["failed"] == 1, what="the failed node counted")
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 2, what="more reconciles")
    await end_batch_pod(cluster, "edge-2", 0)
    await cluster.wait(lambda: cluster.status()["nodes"]["succeeded"] == 1, what="the later success counted")
    await cluster.wait(lambda: cluster.status().get("phase") == "Failed", what="phase Failed once all finished")
    assert cluster.status()["readyNodes"] == "1/2"


async def test_a_failed_batch_node_shows_its_workers_termination_message(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2")
    cluster.apply(make_body(mode="Batch"))
    await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"], BATCH_JOB["edge-2"]], what="Jobs")
    refused = "the event sink refuses: NoSuchBucket: the bucket events does not exist; 4 events stay in the outbox"
    await end_batch_pod(cluster, "edge-2", 2, message=f"{refused}\n")
    await end_batch_pod(cluster, "edge-1", 0)
    await cluster.wait(lambda: cluster.status().get("phase") == "Failed", what="phase Failed once both finished")
    progress = {p["node"]: p for p in cluster.status()["nodeProgress"]}
    failed = progress["edge-2"]
    # The failed pod fails its node at once (WorkerFailed), or the Job controller's verdict came first: the
    # status of a finished batch is final either way, and both carry the worker's own words.
    assert failed["reason"] in ("WorkerFailed", "BackoffLimitExceeded")
    assert (failed["state"], failed["message"]) == ("Failed", refused)
    assert progress["edge-1"].get("message") is None
    ready = next(cond for cond in cluster.status()["conditions"] if cond["type"] == conditions.READY)
    assert f"edge-2 ({failed['reason']}: {refused})" in ready["message"]


async def test_a_deleted_batch_target_node_ends_failed(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2")
    cluster.apply(make_body(mode="Batch"))
    await start_operator(BATCH_SETTINGS)
    await cluster.wait(lambda: names(cluster.batch_jobs()) == [BATCH_JOB["edge-1"], BATCH_JOB["edge-2"]], what="Jobs")
    cluster.core.delete_node("edge-2")  # its worker goes with it (pod GC); the Job's next pod fits nowhere
    cluster.nodes.remove("edge-2")
    await end_batch_pod(cluster, "edge-1", 0)
    # The pod GC controller deletes a pod of a deleted node after a 40 s quarantine.
    await cluster.wait(lambda: cluster.status().get("phase") == "Failed", timeout=120, what="phase Failed")
    gone = next(p for p in cluster.status()["nodeProgress"] if p["node"] == "edge-2")
    assert (gone["state"], gone["reason"]) == ("Failed", "NodeGone")


async def test_a_child_edited_by_hand_with_its_hash_intact_is_put_back(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    ds = await cluster.wait(lambda: cluster.daemonsets()[0], what="the DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    videos = next(i for i, v in enumerate(pod["volumes"]) if v["name"] == "videos")
    cluster.apps.patch_namespaced_daemon_set(
        "lobby-cpu",
        "default",
        [  # the spec-hash annotations stay as they were: only the fields say what happened
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"},
            {"op": "replace", "path": f"/spec/template/spec/volumes/{videos}/hostPath/path", "value": "/etc"},
        ],
    )

    def put_back() -> dict | None:
        spec = cluster.daemonsets()[0]["spec"]["template"]["spec"]
        image = spec["containers"][0]["image"]
        path = spec["volumes"][videos]["hostPath"]["path"]
        return spec if (image, path) == ("ghcr.io/edge-inference/worker:0.1.0", "/srv/video/lobby") else None

    await cluster.wait(put_back, what="the image and hostPath put back")


async def test_a_normal_create_posts_no_warning_and_no_empty_event(
    cluster, start_operator, make_body, worker_metrics
) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="AllNodesReady"
    )

    def posted() -> list[dict]:
        return [e for e in cluster.events() if e["involvedObject"]["name"] == "lobby"]

    await cluster.wait(
        lambda: conditions.ALL_NODES_READY in {e["reason"] for e in posted()}, what="the AllNodesReady Event"
    )
    assert [e for e in posted() if e["type"] == "Warning"] == []
    assert all(e.get("message", "").strip() for e in posted()), posted()


async def test_two_jobs_over_the_same_node_and_folder_get_a_warning(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body("lobby"))
    cluster.apply(make_body("lobby-copy"))
    cluster.apply(make_body("parking", input={"hostPath": "/srv/video/parking"}))
    await start_operator()
    for name, other in (("lobby", "default/lobby-copy"), ("lobby-copy", "default/lobby")):
        await cluster.wait(
            lambda n=name: cluster.condition(conditions.DEGRADED, n) == ("True", conditions.SHARED_INPUT), what=name
        )
        degraded = next(x for x in cluster.status(name)["conditions"] if x["type"] == conditions.DEGRADED)
        assert f"{other} on edge-1" in degraded["message"]
    assert cluster.condition(conditions.DEGRADED, "parking") == ("False", conditions.AS_EXPECTED)
    assert cluster.api.kubectl("delete", "ij", "lobby-copy").returncode == 0
    await cluster.wait(
        lambda: cluster.condition(conditions.DEGRADED) == ("False", conditions.AS_EXPECTED), what="the warning cleared"
    )


async def test_a_batch_target_node_that_never_runs_the_pod_ends_failed(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.add_node("edge-2", capacity={"cpu": "100m"})  # too small for the worker's 500m: it never schedules
    cluster.apply(make_body(mode="Batch"))
    await start_operator(BATCH_SETTINGS.model_copy(update={"batch_start_deadline_seconds": 3}))
    await end_batch_pod(cluster, "edge-1", 0)
    await cluster.wait(lambda: cluster.status().get("phase") == "Failed", what="phase Failed")
    late = next(p for p in cluster.status()["nodeProgress"] if p["node"] == "edge-2")
    assert (late["state"], late["reason"]) == ("Failed", "StartDeadlineExceeded")
    assert cluster.status()["nodes"] == {"desired": 2, "ready": 0, "succeeded": 1, "failed": 1}


async def test_the_finalizer_of_an_older_operator_is_removed(cluster, start_operator, make_body) -> None:
    """Jobs made while the operator still ran a per-object kopf timer carry kopf's finalizer: the
    operator now lets them go, so that they too are deletable while it is down."""
    old = make_body()
    old["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    cluster.apply(old)
    await start_operator()
    await cluster.wait(lambda: not cluster.job()["metadata"].get("finalizers"), what="the finalizer removed")


async def test_a_permission_missing_from_the_role_is_a_real_403(cluster, make_body, tmp_path, monkeypatch) -> None:
    """The 403 check of start_operator is not vacuous: the operator run as a ServiceAccount whose role
    is the chart's without the Events rules gets its Event posts refused by the real authorizer."""
    rules = [r for r in cluster_role_rules() if "events" not in r["resources"]]
    name = "operator-without-events"
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]},
    ]  # fmt: skip
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": objects})
    user = f"system:serviceaccount:default:{name}"
    try:
        await cluster.wait(lambda: cluster.api.allows(user, "list", "", "nodes"), what="the role in force")
        monkeypatch.setenv("KUBECONFIG", str(cluster.api.token_kubeconfig("default", name, tmp_path / "kubeconfig")))
        cluster.apply(make_body())
        operator = await OperatorProcess(OperatorSettings(allowed_host_paths=("/srv/video",), metrics_port=0,
                                                          reconcile_seconds=0.5)).start()  # fmt: skip
        try:
            await cluster.wait(lambda: cluster.condition(conditions.READY) is not None, what="a status (allowed)")
            refused = await cluster.wait(lambda: forbidden_requests(cluster.api, 0, user=user), what="a 403")
        finally:
            await operator.stop()
        assert refused == ["create /api/v1/namespaces/default/events"]
    finally:
        cluster.api.kubectl_ok("delete", "clusterrolebinding,clusterrole", name)
        cluster.api.kubectl_ok("delete", "serviceaccount", name, "-n", "default")
