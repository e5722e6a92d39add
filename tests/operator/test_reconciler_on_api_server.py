"""The Reconciler without kopf, against the real API server: API errors are counted and raised (kopf retries)."""

from __future__ import annotations

import pytest
from edge_inference_operator import kube as kube_api
from edge_inference_operator.builders import build_children
from edge_inference_operator.metrics import OperatorMetrics
from edge_inference_operator.names import ANNOTATION_SPEC_HASH
from edge_inference_operator.placement import NodeInfo
from edge_inference_operator.reconcile import Observed, Reconciler

CPU_NODE = {
    "edge-1": NodeInfo(labels={"edgeinference.io/camera-storage": "true", "edgeinference.io/accelerator": "cpu"})
}


async def test_api_errors_are_counted_and_raised(cluster, make_body, settings) -> None:
    metrics = OperatorMetrics()
    reconciler = Reconciler(settings, kube_api.Kube.from_environment(), metrics)
    body = make_body(namespace="does-not-exist")
    body["metadata"] |= {"uid": "u-1", "generation": 1}
    try:
        with pytest.raises(kube_api.KubeError) as raised:
            await reconciler.reconcile(body, lambda: Observed(CPU_NODE, []))
    finally:
        await reconciler.close()
    assert raised.value.status == 404
    assert metrics.reconciles.labels(result="error")._value.get() == 1
    assert metrics.errors.labels(kind="api")._value.get() == 1
    assert metrics.duration._sum.get() > 0
    assert cluster.events("does-not-exist") == []  # nothing was decided, so no Event


async def test_a_reconcile_returns_and_records_the_status(cluster, make_body, settings) -> None:
    cluster.apply(make_body())
    body = cluster.job()
    metrics = OperatorMetrics()
    reconciler = Reconciler(settings, kube_api.Kube.from_environment(), metrics)
    try:
        status = await reconciler.reconcile(body, lambda: Observed(CPU_NODE, []))
        again = await reconciler.reconcile(cluster.job(), lambda: Observed(CPU_NODE, []))
    finally:
        await reconciler.close()
    assert status.nodes.desired == 1 and status == again
    assert cluster.status()["readyNodes"] == "0/1"
    posted = [e["message"].split("=")[0] for e in cluster.events()]
    assert sorted(posted) == ["Degraded", "Progressing", "Ready"]  # once, not per reconcile
    assert metrics.reconciles.labels(result="ok")._value.get() == 2
    assert 'edge_inference_operator_jobs{phase="Pending"} 1.0' in metrics.exposition().decode()


async def test_a_job_in_a_terminating_namespace_is_left_quietly(cluster, make_body, settings, caplog) -> None:
    cluster.core.create_namespace({"metadata": {"name": "going"}})
    held = make_body(namespace="going")
    held["metadata"]["finalizers"] = ["test.edgeinference.io/hold"]  # keeps the namespace Terminating
    cluster.apply(held)
    body = cluster.job(namespace="going")
    cluster.core.delete_namespace("going")
    await cluster.wait(lambda: cluster.core.read_namespace("going").status.phase == "Terminating", what="Terminating")
    metrics = OperatorMetrics()
    reconciler = Reconciler(settings, kube_api.Kube.from_environment(), metrics)
    try:
        with caplog.at_level("INFO", logger="edge_inference_operator"):
            await reconciler.reconcile(body, lambda: Observed(CPU_NODE, []))
    finally:
        await reconciler.close()
        cluster.custom.patch_namespaced_custom_object(
            "edgeinference.io", "v1alpha1", "going", "inferencejobs", "lobby", {"metadata": {"finalizers": None}}
        )
    assert metrics.reconciles.labels(result="terminating")._value.get() == 1
    assert metrics.errors.labels(kind="api")._value.get() == 0
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []


async def test_a_child_the_api_server_refuses_is_reported_not_retried(cluster, make_body, make_job, settings) -> None:
    """A DaemonSet of ours left by an older version with another selector: the update is a 422
    (spec.selector is immutable), which becomes Ready=False with the server's words and an Event."""
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    body = cluster.job()
    (old,) = build_children(make_job(uid=body["metadata"]["uid"]), settings)
    old["spec"]["selector"]["matchLabels"]["generation"] = "old"
    old["spec"]["template"]["metadata"]["labels"]["generation"] = "old"
    old["metadata"]["annotations"][ANNOTATION_SPEC_HASH] = "old"
    cluster.apps.create_namespaced_daemon_set("default", old)
    metrics = OperatorMetrics()
    reconciler = Reconciler(settings, kube_api.Kube.from_environment(), metrics)
    try:
        status = await reconciler.reconcile(body, lambda: Observed(CPU_NODE, []))
    finally:
        await reconciler.close()
    ready = next(x for x in cluster.status()["conditions"] if x["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ChildRejected") and status.phase.value == "Invalid"
    assert 'DaemonSet.apps "lobby-cpu" is invalid' in ready["message"] and "field is immutable" in ready["message"]
    (event,) = [e for e in cluster.events() if e["reason"] == "ChildRejected" and e["message"].startswith("Ready=")]
    assert event["type"] == "Warning" and "field is immutable" in event["message"]
    assert metrics.reconciles.labels(result="invalid")._value.get() == 1


async def test_children_are_built_again_only_when_something_they_depend_on_changed(
    cluster, make_body, settings, monkeypatch
) -> None:
    builds = []

    def counted_build(*args, **kwargs):
        builds.append(1)
        return build_children(*args, **kwargs)

    monkeypatch.setattr("edge_inference_operator.reconcile.build_children", counted_build)
    cluster.apply(make_body())
    reconciler = Reconciler(settings, kube_api.Kube.from_environment(), OperatorMetrics())

    async def reconcile() -> None:
        await reconciler.reconcile(cluster.job(), lambda: Observed(CPU_NODE, []))

    async def daemonset_controller_done() -> None:  # its status write is a new version of the child too
        def done() -> bool:
            seen = cluster.daemonsets()
            return bool(seen) and all(d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]
                                      for d in seen)  # fmt: skip

        await cluster.wait(done, what="the DaemonSet controller's status")

    try:
        await reconcile()  # creates the DaemonSet
        await daemonset_controller_done()
        await reconcile()  # finds it as wanted
        assert len(builds) == 2
        await reconcile()
        await reconcile()
        assert len(builds) == 2  # nothing changed since: neither built nor compared again

        evil = {"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}}}}
        cluster.apps.patch_namespaced_daemon_set("lobby-cpu", "default", evil)  # by hand: a new version of the child
        await reconcile()  # puts it back
        assert cluster.daemonsets()[0]["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:1"
        await daemonset_controller_done()
        await reconcile()  # finds it as wanted
        await reconcile()
        assert len(builds) == 4

        spec = cluster.job()["spec"]
        more = {"spec": {"accelerators": [*spec["accelerators"], {"type": "nvidia"}]}}
        cluster.custom.patch_namespaced_custom_object(  # a new generation of the job
            "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", more
        )
        await reconcile()
        assert len(builds) == 5
        assert sorted(d["metadata"]["name"] for d in cluster.daemonsets()) == ["lobby-cpu", "lobby-nvidia"]
    finally:
        await reconciler.close()
