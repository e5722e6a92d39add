"""kubectl as users type it, against the real API server with the chart's CRD and a running operator.
(`kubectl apply` of a List is in test_lifecycle.py, the burst of jobs.)"""

from __future__ import annotations

import base64

from edge_inference_api import conditions
from edge_inference_api.models import WORKER_METRICS_PORT


def kubectl(cluster, *args: str) -> str:
    result = cluster.api.kubectl(*args)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


async def test_kubectl_shows_waits_for_and_explains_a_job(cluster, start_operator, make_body, worker_metrics) -> None:
    secret = kubectl(cluster, "create", "secret", "generic", "s3-credentials",
                     "--from-literal=accessKey=minio", "--from-literal=secretKey=minio123")  # fmt: skip
    assert "secret/s3-credentials created" in secret
    stored = cluster.core.read_namespaced_secret("s3-credentials", "default").data
    assert base64.b64decode(stored["accessKey"]) == b"minio"

    cluster.add_node("edge-1")
    cluster.apply(make_body())
    await start_operator()
    pod = await cluster.wait(lambda: [p for p in cluster.pods() if p["status"].get("phase") == "Running"],
                             what="the worker running")  # fmt: skip
    worker_metrics(pod[0]["status"]["podIP"], WORKER_METRICS_PORT).uploaded.inc(2)

    waited = cluster.api.kubectl("wait", "--for=condition=Ready", "inferencejob/lobby", "--timeout=60s")
    assert waited.returncode == 0 and "condition met" in waited.stdout, waited.stderr
    assert cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY)

    # The printer columns of the short name.
    header, row = kubectl(cluster, "get", "ij").splitlines()
    assert header.split() == ["NAME", "MODE", "NODES", "EVENTS", "PHASE", "READY", "AGE"]  # REASON with -o wide
    assert row.split()[:6] == ["lobby", "Continuous", "1/1", "2", "Running", "True"], row

    described = kubectl(cluster, "describe", "inferencejob", "lobby")
    assert "Host Path:  /srv/video/lobby" in described
    assert conditions.ALL_NODES_READY in described  # the Ready condition's reason
    assert "Events:" in described and conditions.ALL_NODES_READY in described.split("Events:")[1]

    explained = kubectl(cluster, "explain", "inferencejob.spec")
    assert "KIND:       InferenceJob" in explained and "input\t<Object> -required-" in explained
    assert "hostPath" in kubectl(cluster, "explain", "inferencejob.spec.input")
