"""The operator's scenarios on a real kind cluster, with the chart's Deployment, RBAC and admission
policy, and the real worker image processing the sample video on each edge node."""

from __future__ import annotations

import kubernetes_validate
import pytest
from edge_inference_api import conditions
from edge_inference_api.models import ENV_WORKER_CONFIG, WorkerConfig
from edge_inference_operator.names import ANNOTATION_SPEC_HASH

pytestmark = pytest.mark.e2e

OPERATOR = ["-n", "edge-inference-system", "deploy/edge-inference-operator"]


def names(objects: list[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


def identity(objects: list[dict]) -> dict[str, tuple[str, int, str]]:
    """What must not change when nothing changed: uid, generation and our spec hash."""
    return {
        o["metadata"]["name"]: (
            o["metadata"]["uid"],
            o["metadata"]["generation"],
            o["metadata"]["annotations"][ANNOTATION_SPEC_HASH],
        )
        for o in objects
    }


def test_admission_refuses_hostile_host_paths(kind, job_manifest) -> None:
    for path in ("/var/lib/edge-video2", "/var/lib/edge-video/../../etc", "/etc", "/var/lib/edge-video//x"):
        result = kind.apply(job_manifest("hostile", input={"hostPath": path}))
        assert result.returncode != 0, path
        assert "hostPath" in result.stderr, result.stderr
    assert kind.daemonsets() == [] and kind.batch_jobs() == []


def test_continuous_job_runs_on_every_edge_node_and_reports_progress(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("lobby")).returncode == 0
    kind.wait(lambda: names(kind.daemonsets()) == ["lobby-cpu", "lobby-intel"], what="one DaemonSet per accelerator")
    workers = kind.edge_workers()
    kind.wait(lambda: kind.status("lobby")["nodes"]["desired"] == len(workers), what="desired nodes")
    kind.wait(
        lambda: kind.condition("lobby", conditions.READY) == ("True", conditions.ALL_NODES_READY),
        timeout=600,
        what="AllNodesReady",
    )
    # Per-node progress read by the in-cluster operator from each worker's /metrics.
    kind.wait(
        lambda: (
            all(p["framesAnalysed"] > 0 for p in kind.status("lobby")["nodeProgress"])
            and len(kind.status("lobby")["nodeProgress"]) == len(workers)
        ),
        timeout=600,
        what="frames on every node",
    )
    assert kind.status("lobby")["readyNodes"] == f"{len(workers)}/{len(workers)}"
    reasons = {e["reason"] for e in kind.events_about("lobby")}
    assert conditions.ALL_NODES_READY in reasons  # an Event for the transition
    for ds in kind.daemonsets():
        kubernetes_validate.validate({"apiVersion": "apps/v1", "kind": "DaemonSet", **ds}, "1.33", strict=True)
        env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
        config = WorkerConfig.model_validate_json(next(e["value"] for e in env if e["name"] == ENV_WORKER_CONFIG))
        assert config.job.name == "lobby" and config.job.namespace == kind.namespace


def test_a_child_deleted_by_hand_comes_back(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("recreate", accelerators=[{"type": "cpu"}])).returncode == 0
    uid = kind.wait(
        lambda: {d["metadata"]["name"]: d["metadata"]["uid"] for d in kind.daemonsets()}.get("recreate-cpu"),
        what="the DaemonSet",
    )
    assert kind.kubectl("delete", "-n", kind.namespace, "daemonset", "recreate-cpu").returncode == 0
    kind.wait(
        lambda: (
            {d["metadata"]["name"]: d["metadata"]["uid"] for d in kind.daemonsets()}.get("recreate-cpu")
            not in (None, uid)
        ),
        what="a new DaemonSet",
    )


def test_spec_change_rolls_the_workload(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("roll", accelerators=[{"type": "cpu"}])).returncode == 0
    ds = kind.wait(lambda: next(d for d in kind.daemonsets() if d["metadata"]["name"] == "roll-cpu"), what="DS")
    before = ds["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    assert kind.apply(job_manifest("roll", accelerators=[{"type": "cpu"}], sampling={"fps": 3})).returncode == 0
    rolled = kind.wait(
        lambda: (
            (d := next(x for x in kind.daemonsets() if x["metadata"]["name"] == "roll-cpu"))["spec"]["template"][
                "metadata"
            ]["annotations"][ANNOTATION_SPEC_HASH]
            != before
            and d
        ),
        what="roll",
    )
    assert rolled["metadata"]["generation"] > ds["metadata"]["generation"]
    kind.wait(lambda: kind.status("roll").get("observedGeneration") == 2, what="observedGeneration 2")


def test_operator_restart_changes_nothing(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("restart")).returncode == 0
    kind.wait(lambda: len(kind.daemonsets()) >= 2 and kind.status("restart").get("phase"), what="reconciled")
    before = identity([d for d in kind.daemonsets() if d["metadata"]["name"].startswith("restart-")])
    assert kind.kubectl("rollout", "restart", *OPERATOR).returncode == 0
    assert kind.kubectl("rollout", "status", "--timeout=180s", *OPERATOR).returncode == 0
    kind.wait(lambda: kind.status("restart").get("observedGeneration") == 1, what="status after restart")
    after = identity([d for d in kind.daemonsets() if d["metadata"]["name"].startswith("restart-")])
    assert after == before


def test_node_labelled_later_gets_the_work(kind, job_manifest) -> None:
    # The control plane is tainted; a job that tolerates it may count it once it is labelled.
    toleration = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    later = job_manifest("later", accelerators=[{"type": "cpu"}], tolerations=[toleration])
    assert kind.apply(later).returncode == 0
    desired = kind.wait(lambda: kind.status("later").get("nodes", {}).get("desired"), what="desired")
    control_plane = next(
        n["metadata"]["name"]
        for n in kind.raw(kind.core.list_node)["items"]
        if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]
    )
    labels = {"edgeinference.io/camera-storage": "true", "edgeinference.io/accelerator": "cpu"}
    kind.core.patch_node(control_plane, {"metadata": {"labels": labels}})
    try:
        kind.wait(lambda: kind.status("later")["nodes"]["desired"] == desired + 1, what="desired + 1")
        assert names([d for d in kind.daemonsets() if d["metadata"]["name"].startswith("later-")]) == ["later-cpu"]
    finally:
        kind.core.patch_node(control_plane, {"metadata": {"labels": {k: None for k in labels}}})
    kind.wait(lambda: kind.status("later")["nodes"]["desired"] == desired, what="desired back")


def test_batch_runs_once_per_target_node_and_succeeds(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("backfill", mode="Batch")).returncode == 0
    workers = kind.edge_workers()
    kind.wait(lambda: kind.status("backfill").get("targetNodes") == workers, what="targetNodes")
    kind.wait(
        lambda: len([j for j in kind.batch_jobs() if j["metadata"]["name"].startswith("backfill-")]) == len(workers),
        what="one Job per node",
    )
    kind.wait(lambda: kind.status("backfill").get("phase") == "Succeeded", timeout=900, what="Succeeded")
    assert kind.condition("backfill", conditions.READY) == ("True", conditions.BATCH_SUCCEEDED)
    assert kind.status("backfill")["nodes"]["succeeded"] == len(workers)


def test_invalid_spec_gets_a_specific_reason(kind, job_manifest) -> None:
    assert (
        kind.apply(
            job_manifest(
                "cuda-on-cpu", accelerators=[{"type": "cpu"}], model={"name": "synthetic-yolov5n", "device": "cuda"}
            )
        ).returncode
        == 0
    )
    kind.wait(
        lambda: kind.condition("cuda-on-cpu", conditions.READY) == ("False", conditions.INVALID_SPEC),
        what="InvalidSpec",
    )
    assert not [d for d in kind.daemonsets() if d["metadata"]["name"].startswith("cuda-on-cpu")]


def test_deleting_the_job_removes_its_children(kind, job_manifest) -> None:
    assert kind.apply(job_manifest("gone", accelerators=[{"type": "cpu"}])).returncode == 0
    kind.wait(lambda: "gone-cpu" in names(kind.daemonsets()), what="the DaemonSet")
    assert kind.kubectl("delete", "-n", kind.namespace, "inferencejob", "gone", "--wait=true").returncode == 0
    kind.wait(lambda: "gone-cpu" not in names(kind.daemonsets()), what="garbage collection")
