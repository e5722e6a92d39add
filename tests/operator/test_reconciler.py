"""The Reconciler without kopf, against the emulator: API errors are counted and raised (kopf retries)."""

from __future__ import annotations

import pytest
from edge_inference_operator import kube as k
from edge_inference_operator.metrics import OperatorMetrics
from edge_inference_operator.placement import NodeInfo
from edge_inference_operator.reconcile import Reconciler

CPU_NODE = {
    "edge-1": NodeInfo(labels={"edgeinference.io/camera-storage": "true", "edgeinference.io/accelerator": "cpu"})
}


async def test_api_errors_are_counted_and_raised(cluster, make_body, settings) -> None:
    metrics = OperatorMetrics()
    reconciler = Reconciler(settings, k.Kube.from_environment(), metrics)
    body = make_body(namespace="does-not-exist")
    body["metadata"] |= {"uid": "u-1", "generation": 1}
    try:
        with pytest.raises(k.KubeError) as raised:
            await reconciler.reconcile(body, CPU_NODE, [])
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
    reconciler = Reconciler(settings, k.Kube.from_environment(), metrics)
    try:
        status = await reconciler.reconcile(body, CPU_NODE, [])
        again = await reconciler.reconcile(cluster.job(), CPU_NODE, [])
    finally:
        await reconciler.close()
    assert status.nodes.desired == 1 and status == again
    assert cluster.status()["readyNodes"] == "0/1"
    posted = [e["message"].split("=")[0] for e in cluster.events()]
    assert sorted(posted) == ["Degraded", "Progressing", "Ready"]  # once, not per reconcile
    assert metrics.reconciles.labels(result="ok")._value.get() == 2
    assert 'edge_inference_operator_jobs{phase="Pending"} 1.0' in metrics.exposition().decode()
