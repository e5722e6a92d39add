"""Pods and nodes in Kubernetes' protobuf encoding (wire.py), read from the real API server with the
operator's own credentials: the cache keeps the same of each as it kept from JSON, in every state the
operator reads; a protobuf watch brings the same changes, and its end (410 Gone) is told apart; a
server that answers JSON instead (custom resources have no protobuf) is still understood."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from edge_inference_operator import kube as kube_api
from edge_inference_operator import kubeproto, observed, wire
from edge_inference_operator.cache import pod_summary
from edge_inference_operator.names import LABEL_JOB, MANAGED, MANAGED_SELECTOR
from edge_inference_operator.placement import NodeInfo
from support.controlplane import _ssl_context

PODS = "/api/v1/namespaces/default/pods"
WORKER = {"name": "worker", "ready": False, "restartCount": 0, "image": "w", "imageID": ""}


def worker_pod(name: str, node: str | None) -> dict[str, Any]:
    ports = [{"name": "metrics", "containerPort": 9108}, {"containerPort": 80}]
    spec: dict[str, Any] = {"containers": [{"name": "worker", "image": "w", "ports": ports},
                                           {"name": "sidecar", "image": "s"}],
                            "initContainers": [{"name": "prepare", "image": "p"}]}  # fmt: skip
    if node is None:
        spec["nodeSelector"] = {"no-such-label": "anywhere"}  # stays unscheduled: no nodeName
    else:
        spec["nodeName"] = node
    labels = {**MANAGED, LABEL_JOB: "lobby"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def pods_in_every_state(cluster) -> None:
    """A running worker, one waiting for a missing Secret, one crash-looping with its last words, one unscheduled."""
    cluster.add_node("edge-1", kwok=False, ready=True, wait=False)  # the test plays its kubelet
    for name, node in (("running", "edge-1"), ("no-secret", "edge-1"), ("crashing", "edge-1"), ("unscheduled", None)):
        cluster.core.create_namespaced_pod("default", worker_pod(name, node))
    running = {"running": {"startedAt": "2026-11-29T10:00:00Z"}}
    cluster.set_pod_status("running", phase="Running", podIP="10.0.0.7",
                           conditions=[{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                           containerStatuses=[{**WORKER, "ready": True, "state": running}],
                           initContainerStatuses=[{**WORKER, "name": "prepare", "state": {"terminated": {
                               "exitCode": 0, "reason": "Completed", "startedAt": "2026-11-29T09:59:00Z",
                               "finishedAt": "2026-11-29T09:59:59Z"}}}])  # fmt: skip
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-credentials" not found'}
    cluster.set_pod_status("no-secret", phase="Pending", containerStatuses=[{**WORKER, "state": {"waiting": waiting}}])
    last = {"terminated": {"exitCode": 2, "reason": "Error", "message": "model not found:\n  /models/x.onnx",
                           "startedAt": "2026-11-29T10:00:00Z", "finishedAt": "2026-11-29T10:00:01Z"}}  # fmt: skip
    cluster.set_pod_status("crashing", phase="Running", podIP="10.0.0.8",
                           conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                           containerStatuses=[{**WORKER, "restartCount": 3, "lastState": last,
                                               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])  # fmt: skip


def by_name(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pod["metadata"]["name"]: pod_summary(pod) for pod in answer["items"]}


async def test_pods_read_in_protobuf_are_kept_as_from_json(cluster) -> None:
    pods_in_every_state(cluster)
    kube = kube_api.Kube.from_environment()
    try:
        query = [("labelSelector", MANAGED_SELECTOR)]
        as_json = await kube.request("GET", PODS, query=query)
        as_protobuf = await kube.request("GET", PODS, query=query, codec=wire.PODS)
    finally:
        kube.close()
    assert "managedFields" in as_json["items"][0]["metadata"]  # the whole JSON body...
    assert "managedFields" not in as_protobuf["items"][0]["metadata"]  # ...against the protobuf one's subset
    assert as_protobuf["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]

    kept = by_name(as_protobuf)
    assert kept == by_name(as_json) and set(kept) == {"running", "no-secret", "crashing", "unscheduled"}
    # What the operator reads of them, from the protobuf side.
    assert observed.pod_ready(kept["running"]) and not observed.pod_ready(kept["crashing"])
    assert kept["running"]["metadata"]["creationTimestamp"].endswith("Z")
    assert observed.missing_secret(kept.values()) == 'secret "s3-credentials" not found'
    assert observed.termination_message(kept["crashing"]) == "model not found: /models/x.onnx"
    assert observed.pod_failed(kept["crashing"]) and not observed.pod_failed(kept["running"])
    assert observed.pod_node(kept["unscheduled"]) is None and observed.pod_node(kept["running"]) == "edge-1"
    assert kept["running"]["spec"]["containers"][0]["ports"] == [{"name": "metrics", "containerPort": 9108},
                                                                 {"containerPort": 80}]  # fmt: skip


async def test_nodes_read_in_protobuf_are_placed_as_from_json(cluster) -> None:
    cluster.add_node("edge-1", kwok=False, ready=True, wait=False, site="north")
    cluster.add_node("edge-2", kwok=False, ready=True, wait=False, taints=[
        {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "cameras", "effect": "NoExecute"},
    ])  # fmt: skip
    kube = kube_api.Kube.from_environment()
    try:
        as_json = await kube.request("GET", "/api/v1/nodes")
        as_protobuf = await kube.request("GET", "/api/v1/nodes", codec=wire.NODES)
    finally:
        kube.close()
    assert "status" in as_json["items"][0] and "status" not in as_protobuf["items"][0]
    kept = {n["metadata"]["name"]: NodeInfo.from_node(n) for n in as_protobuf["items"]}
    assert kept == {n["metadata"]["name"]: NodeInfo.from_node(n) for n in as_json["items"]}
    assert kept["edge-1"].labels["site"] == "north"
    assert kept["edge-2"].taints == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"},
                                     {"key": "dedicated", "value": "cameras", "effect": "NoExecute"}]  # fmt: skip


def read_events(stream: kube_api.WatchStream, until: str) -> list[dict[str, Any]]:
    """Events of the watch up to the first of type `until` (the watch's own timeout bounds the wait)."""
    events = []
    for event in stream.events():
        events.append(event)
        if event["type"] == until:
            break
    return events


async def test_a_protobuf_watch_brings_each_change(cluster) -> None:
    cluster.add_node("edge-1", kwok=False, ready=True, wait=False)
    kube = kube_api.Kube.from_environment()
    listed = await kube.request("GET", PODS, codec=wire.PODS)
    query = [("resourceVersion", listed["metadata"]["resourceVersion"]), ("timeoutSeconds", "30")]
    stream = await asyncio.to_thread(kube.open_watch, PODS, query, 60, wire.PODS)
    try:
        reading = asyncio.create_task(asyncio.to_thread(read_events, stream, "DELETED"))
        cluster.core.create_namespaced_pod("default", worker_pod("watched", "edge-1"))
        cluster.set_pod_status("watched", phase="Running", podIP="10.0.0.9")
        cluster.core.delete_namespaced_pod("watched", "default", grace_period_seconds=0)
        events = await asyncio.wait_for(reading, 60)
    finally:
        stream.close()
        kube.close()
    assert [e["type"] for e in events][0] == "ADDED" and events[-1]["type"] == "DELETED"
    assert {"name": "watched", "namespace": "default"}.items() <= events[0]["object"]["metadata"].items()
    assert any(e["object"]["status"].get("podIP") == "10.0.0.9" for e in events if e["type"] == "MODIFIED")
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(listed["metadata"]["resourceVersion"])


async def test_a_protobuf_watch_from_a_compacted_version_ends_in_410(cluster) -> None:
    kube = kube_api.Kube.from_environment()
    listed = await kube.request("GET", "/api/v1/nodes", codec=wire.NODES)
    cluster.api.restart_apiserver(while_down=lambda: cluster.api.compact_etcd(churn=50))
    query = [("resourceVersion", listed["metadata"]["resourceVersion"]), ("timeoutSeconds", "10")]
    stream = await asyncio.to_thread(kube.open_watch, "/api/v1/nodes", query, 30, wire.NODES)
    try:
        (event,) = await asyncio.to_thread(read_events, stream, "ERROR")
    finally:
        stream.close()
        kube.close()
    assert event["type"] == "ERROR" and event["object"]["code"] == 410, event
    assert event["object"]["reason"] == "Expired"


async def test_a_collection_without_protobuf_is_read_as_json(cluster, make_body) -> None:
    """Custom resources have no protobuf encoding: asked for protobuf first, the API server answers JSON."""
    cluster.apply(make_body())
    path = "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs"
    kube = kube_api.Kube.from_environment()
    try:
        answer = await kube.request("GET", path, codec=wire.PODS)
        stream = await asyncio.to_thread(kube.open_watch, path, [("timeoutSeconds", "5")], 30, wire.PODS)
        try:
            (event,) = await asyncio.to_thread(read_events, stream, "ADDED")
        finally:
            stream.close()
    finally:
        kube.close()
    assert [item["metadata"]["name"] for item in answer["items"]] == [event["object"]["metadata"]["name"]] == ["lobby"]
    assert answer["items"][0]["spec"] == event["object"]["spec"]  # whole bodies, not a codec's subset
    assert answer["items"][0]["spec"]["input"] == make_body()["spec"]["input"]


def raw_protobuf(cluster, path: str) -> bytes:
    request = urllib.request.Request(cluster.api.url + path, headers={"Accept": wire.PROTOBUF})
    with urllib.request.urlopen(request, timeout=30, context=_ssl_context(cluster.api.pki.ca, cluster.api.admin)) as r:
        return r.read()


async def test_what_is_not_the_asked_for_protobuf_is_refused_by_name(cluster) -> None:
    nodes = raw_protobuf(cluster, "/api/v1/nodes")
    assert wire.decode_list(wire.NODES, nodes)["metadata"]["resourceVersion"]
    with pytest.raises(wire.WireError, match="expected a PodList, got 'NodeList'"):
        wire.decode_list(wire.PODS, nodes)
    with pytest.raises(wire.WireError, match="not Kubernetes protobuf"):
        wire.decode_list(wire.PODS, b'{"kind": "PodList"}')
    with pytest.raises(wire.WireError, match="undecodable"):
        wire.decode_list(wire.NODES, nodes[:-7])


def test_watch_frames_are_cut_where_their_lengths_say_however_the_bytes_arrive() -> None:
    payloads = [b"", b"a", bytes(range(256)) * 3, b"\x00\x00\x00\x05"]
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    for size in (1, 3, 4, 5, 7, 1000, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert list(wire.frames(chunks)) == payloads, size
    assert list(wire.frames([stream[:-1]])) == payloads[:-1]  # a frame cut short is not yielded


ROOT = Path(__file__).parents[2]


def test_the_generated_schema_is_the_one_of_the_kubernetes_the_tests_run() -> None:
    """kubeproto/ (scripts/gen-kube-protos.sh) is generated from the k8s.io/api the test control plane is built with."""
    go_mod = (ROOT / "tools" / "controlplane" / "go.mod").read_text()
    assert f"k8s.io/api => k8s.io/api {kubeproto.K8S_API_VERSION}\n" in go_mod


@pytest.mark.slow
def test_the_generated_schema_is_what_the_script_makes_now(tmp_path: Path) -> None:
    """Made again from the Go modules' .proto files (grpcio-tools' protoc), kubeproto/ is the same file by file."""
    made = tmp_path / "kubeproto"
    script = subprocess.run([str(ROOT / "scripts" / "gen-kube-protos.sh"), str(made)], capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert script.returncode == 0, script.stderr[-3000:]
    committed = ROOT / "operator" / "edge_inference_operator" / "kubeproto"
    names = sorted(path.name for path in committed.iterdir() if path.suffix in (".py", ".pyi"))
    assert sorted(path.name for path in made.iterdir()) == names
    for name in names:
        assert (made / name).read_bytes() == (committed / name).read_bytes(), f"{name}: run scripts/gen-kube-protos.sh"
