"""The test control plane itself: real components on loopback that behave as a cluster does."""

from __future__ import annotations

import json

from edge_inference_api.models import LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE
from support.controlplane import ControlPlane, fake_node


def test_a_kwok_node_with_our_labels_gets_a_running_daemonset_pod(control_plane: ControlPlane) -> None:
    labels = {LABEL_CAMERA_STORAGE: "true", LABEL_ACCELERATOR: "cpu"}
    control_plane.kubectl_ok("apply", "-f", "-", input=json.dumps(fake_node("smoke-cpu", labels)))
    control_plane.kubectl_ok("apply", "-f", "-", input=json.dumps(fake_node("smoke-unlabelled")))
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "smoke", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "smoke"}},
            "template": {
                "metadata": {"labels": {"app": "smoke"}},
                "spec": {"nodeSelector": labels, "containers": [{"name": "main", "image": "smoke:1"}]},
            },
        },
    }
    control_plane.kubectl_ok("apply", "-f", "-", input=json.dumps(daemonset))
    try:

        def running_pods() -> list[tuple[str, str]]:
            pods = control_plane.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dsmoke")["items"]
            placed = [(p["spec"].get("nodeName", ""), p["status"].get("phase", "")) for p in pods]
            return placed if placed and all(phase == "Running" for _, phase in placed) else []

        assert control_plane.wait(running_pods, "the smoke DaemonSet's pods to run") == [("smoke-cpu", "Running")]
        pod = control_plane.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dsmoke")["items"][0]
        assert pod["status"]["podIP"].startswith(control_plane.pod_cidr.rsplit(".", 1)[0] + ".")
    finally:
        control_plane.kubectl_ok("delete", "daemonset", "smoke", "--wait=true")
        control_plane.kubectl_ok("delete", "node", "smoke-cpu", "smoke-unlabelled")


def test_the_api_server_authorizes_with_rbac(control_plane: ControlPlane, tmp_path) -> None:
    control_plane.kubectl_ok("create", "serviceaccount", "nobody", "-n", "default")
    try:
        kubeconfig = control_plane.token_kubeconfig("default", "nobody", tmp_path / "nobody.kubeconfig")
        result = control_plane.kubectl("get", "pods", kubeconfig=kubeconfig)
        assert result.returncode != 0
        assert "Forbidden" in result.stderr and "system:serviceaccount:default:nobody" in result.stderr
    finally:
        control_plane.kubectl_ok("delete", "serviceaccount", "nobody", "-n", "default")
