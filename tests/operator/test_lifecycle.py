"""A job's life on the real control plane: garbage collection, namespace deletion, restarts of the
operator and of the API server, and watches that expire (410 Gone) after an etcd compaction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge_inference_api import conditions
from edge_inference_operator.names import ANNOTATION_SPEC_HASH
from support.net import free_port

OPERATOR_SCRIPT = Path(sys.executable).with_name("edge-inference-operator")

BURST = 60


def names(objects: list[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


def template_hash(daemonset: dict) -> str:
    return daemonset["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC_HASH]


async def test_deleting_the_namespace_removes_the_job_and_its_children(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.api.kubectl_ok("create", "namespace", "doomed")
    cluster.apply(make_body(namespace="doomed"))
    await start_operator()
    await cluster.wait(lambda: len(cluster.pods("doomed")) == 1, what="the worker in namespace doomed")
    cluster.api.kubectl_ok("delete", "namespace", "doomed", "--wait=false")

    def namespace_gone() -> bool:
        return "doomed" not in cluster.api.kubectl_ok("get", "namespaces", "-o", "name")

    # The namespace controller deletes the job; the operator lets it go; the garbage collector the rest.
    await cluster.wait(namespace_gone, timeout=60, what="namespace doomed to be deleted")
    assert cluster.daemonsets("doomed") == [] and cluster.pods("doomed") == []


def run_operator(log: Path) -> subprocess.Popen:
    """The operator's console script as the chart's ServiceAccount (the cluster fixture's KUBECONFIG)."""
    env = {**os.environ, "EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/srv/video", "EDGE_INFERENCE_METRICS_PORT": "0",
           "EDGE_INFERENCE_LIVENESS_PORT": str(free_port()), "EDGE_INFERENCE_RECONCILE_SECONDS": "1"}  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen([str(OPERATOR_SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_an_operator_killed_mid_burst_makes_no_duplicates(cluster, make_body, tmp_path) -> None:
    cluster.add_node("edge-1")
    jobs = {"apiVersion": "v1", "kind": "List", "items": [make_body(f"cam-{i:02d}") for i in range(BURST)]}
    cluster.apply(jobs)  # kubectl apply of a List
    first = run_operator(tmp_path / "operator.log")
    try:
        await cluster.wait(lambda: len(cluster.daemonsets()) >= 2, timeout=60, what="the first children")
    finally:
        first.kill()  # SIGKILL mid-burst: no graceful end, some jobs have children, some not yet
        first.wait(timeout=10)
    assert len(cluster.daemonsets()) < BURST, "the burst was over before the kill; make it bigger"

    second = run_operator(tmp_path / "operator.log")
    try:
        await cluster.wait(lambda: len(cluster.daemonsets()) == BURST, timeout=120, what="a child for every job")
        await cluster.wait(lambda: len(cluster.pods()) == BURST, timeout=60, what="a worker for every job")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert names(cluster.daemonsets()) == sorted(f"cam-{i:02d}-cpu" for i in range(BURST))
    owners = [p["metadata"]["ownerReferences"][0]["name"] for p in cluster.pods()]
    assert sorted(owners) == names(cluster.daemonsets())  # one pod each: no DaemonSet was made twice
    for daemonset in cluster.daemonsets():
        assert [o["name"] for o in daemonset["metadata"]["ownerReferences"]] == [daemonset["metadata"]["name"][:-4]]


async def test_the_operator_carries_on_after_an_api_server_restart(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    operator = await start_operator()
    (before,) = await cluster.wait(cluster.daemonsets, what="the DaemonSet")

    down = cluster.api.restart_apiserver()
    print(f"API server down for {down:.1f}s")
    # etcd kept everything: the same job and child, not re-created.
    (after,) = cluster.daemonsets()
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 2, timeout=60, what="reconciles after the restart")

    # The operator's watches are back: an edit made now is rolled out.
    cluster.custom.patch_namespaced_custom_object(
        "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", {"spec": {"sampling": {"fps": 4}}}
    )
    await cluster.wait(lambda: template_hash(cluster.daemonsets()[0]) != template_hash(before), what="a new template")
    await cluster.wait(lambda: cluster.status().get("observedGeneration") == 2, what="observedGeneration 2")


async def test_watches_expired_by_an_etcd_compaction_are_listed_again(cluster, start_operator, make_body) -> None:
    """The operator's watches resume from resource versions that etcd compacted away (410 Gone):
    kopf lists again, and an edit made then is not lost."""
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    (before,) = await cluster.wait(cluster.daemonsets, what="the DaemonSet")
    await cluster.wait(lambda: cluster.condition(conditions.READY) is not None, what="a status")
    seen = cluster.job()["metadata"]["resourceVersion"]  # where the operator's watch of jobs is, or later

    # While the API server is down, etcd moves on and forgets its history.
    revisions = []
    cluster.api.restart_apiserver(while_down=lambda: revisions.append(cluster.api.compact_etcd(churn=50)))
    jobs = "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs"
    expired = cluster.api.first_watch_event(jobs, seen)
    assert expired["type"] == "ERROR" and expired["object"]["code"] == 410, expired  # what the operator meets
    assert revisions[0] > int(seen)

    cluster.custom.patch_namespaced_custom_object(
        "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", {"spec": {"sampling": {"fps": 3}}}
    )
    await cluster.wait(lambda: template_hash(cluster.daemonsets()[0]) != template_hash(before), timeout=60,
                       what="the edit rolled out")  # fmt: skip
    await cluster.wait(lambda: cluster.status().get("observedGeneration") == 2, what="observedGeneration 2")
