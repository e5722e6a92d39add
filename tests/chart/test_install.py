"""`helm install`, `helm upgrade` and `helm uninstall` of the chart, by real Helm (helm-python-sdk),
into a real control plane of each test's own (tests/support/controlplane.py)."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from support.controlplane import EXIT_CODE_ANNOTATION, ControlPlane, fake_node, running_control_plane
from support.helm import CHART_DIR, EVERYTHING_ON, NAMESPACE, RELEASE_NAME, is_test_hook, render_chart

REPO_ROOT = Path(__file__).resolve().parents[2]
# Optional objects of kinds that need a CRD of another project (the Prometheus operator's).
OPTIONAL_KINDS = {
    "ServiceMonitor": ("monitoring.coreos.com", "serviceMonitor"),
    "PodMonitor": ("monitoring.coreos.com", "podMonitor"),
    "PrometheusRule": ("monitoring.coreos.com", "prometheusRule"),
}


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[ControlPlane]:
    """An empty cluster of this test's own: no CRD yet (the chart installs it)."""
    with running_control_plane(tmp_path / "controlplane") as plane:
        yield plane


def _helm(plane: ControlPlane) -> helm.Config:
    return helm.Config(kubeconfig_path=str(plane.kubeconfig), namespace=NAMESPACE)


def _install(plane: ControlPlane, values: dict[str, Any] | None = None) -> dict[str, Any]:
    with _helm(plane) as config:
        return config.install(str(CHART_DIR), RELEASE_NAME, values, namespace=NAMESPACE, create_namespace=True,
                              timeout=120)  # fmt: skip


def _exists(plane: ControlPlane, obj: dict) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    resource = f"{obj['kind']}.{group}" if group else obj["kind"]
    namespace = obj["metadata"].get("namespace", NAMESPACE)  # ignored for cluster-scoped kinds
    return plane.kubectl("get", resource, obj["metadata"]["name"], "-n", namespace).returncode == 0


def _in_cluster(plane: ControlPlane, objects: list[dict]) -> set[tuple[str, str]]:
    """(kind, name) of those of `objects` that exist in the cluster (read back by kubectl)."""
    return {(o["kind"], o["metadata"]["name"]) for o in objects if _exists(plane, o)}


def _running_pods(plane: ControlPlane, label: str) -> list[str]:
    """Names of the Running pods in the release namespace that carry `label`."""
    pods = plane.get(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={label}")["items"]
    return [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]


def _served_groups(plane: ControlPlane) -> set[str]:
    return {group["name"] for group in plane.get("/apis")["groups"]}


def test_install_with_defaults_creates_every_rendered_object(cluster: ControlPlane) -> None:
    release = _install(cluster)
    assert release["status"] == "deployed"
    # The `helm test` pod is a test hook: an install does not create it.
    rendered = [o for o in render_chart() if not is_test_hook(o)]
    assert _in_cluster(cluster, rendered) == {(o["kind"], o["metadata"]["name"]) for o in rendered}
    cluster.kubectl_ok("wait", "--for=condition=Established", "crd/inferencejobs.edgeinference.io", "--timeout=60s")


def test_install_with_every_option_on(cluster: ControlPlane) -> None:
    """Every option on; the objects whose CRDs this cluster lacks are switched off, and said so."""
    values = json.loads(json.dumps(EVERYTHING_ON))
    served = _served_groups(cluster)
    skipped = []
    for kind, (group, key) in OPTIONAL_KINDS.items():
        if group not in served:
            values["monitoring"][key]["enabled"] = False
            skipped.append(kind)
    print(f"skipped (no CRD in this cluster): {', '.join(skipped) or 'nothing'}")
    assert skipped == ["ServiceMonitor", "PodMonitor", "PrometheusRule"]  # a bare cluster: no Prometheus operator

    # MinIO's bucket Job is a post-install hook: Helm waits for it, so it needs a node, and its pod
    # (kwok runs it) must succeed.
    cluster.kubectl_ok("apply", "-f", "-", input=json.dumps(fake_node("storage-1")))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        installing = pool.submit(_install, cluster, values)
        hook = cluster.wait(lambda: _running_pods(cluster, "job-name"), "the bucket Job's pod to run")
        succeed = {"metadata": {"annotations": {EXIT_CODE_ANNOTATION: "0"}}}
        cluster.request("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{hook[0]}", succeed,
                        content_type="application/merge-patch+json")  # fmt: skip
        release = installing.result(timeout=120)
    assert release["status"] == "deployed"
    rendered = [o for o in render_chart(values) if not is_test_hook(o)]
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Secret", "PersistentVolumeClaim", "Job", "ConfigMap"} <= kinds  # MinIO and the dashboard
    # Hooks (the bucket Job) are deleted by Helm once they succeeded, as their delete policy says.
    kept = [o for o in rendered if "helm.sh/hook" not in o["metadata"].get("annotations", {})]
    assert len(kept) == len(rendered) - 1
    assert _in_cluster(cluster, rendered) == {(o["kind"], o["metadata"]["name"]) for o in kept}
    assert not kinds & set(skipped)


@pytest.mark.parametrize("keep", [True, False], ids=["keep", "no-keep"])
def test_uninstall_keeps_the_crd_and_the_jobs_when_asked(cluster: ControlPlane, keep: bool) -> None:
    _install(cluster, {"crds": {"enabled": True, "keep": keep}, "allowedHostPaths": ["/var/lib/edge-video"]})
    cluster.kubectl_ok("wait", "--for=condition=Established", "crd/inferencejobs.edgeinference.io", "--timeout=60s")
    job = yaml.safe_load((REPO_ROOT / "examples" / "jobs" / "lobby-cameras.yaml").read_text())
    applied = cluster.kubectl("apply", "-n", "default", "-f", "-", input=yaml.safe_dump(job))
    assert applied.returncode == 0, applied.stderr
    with _helm(cluster) as config:
        config.uninstall(RELEASE_NAME, timeout=120)
    left = cluster.kubectl_ok("get", "deploy,clusterrole,validatingadmissionpolicies", "-A", "-o", "name")
    assert RELEASE_NAME not in left
    if keep:
        assert "inferencejobs.edgeinference.io" in cluster.kubectl_ok("get", "crd", "-o", "name")
    else:  # the API server deletes the CRD's objects first, then the CRD: a moment, not at once
        cluster.wait(lambda: "inferencejobs.edgeinference.io" not in cluster.kubectl_ok("get", "crd", "-o", "name"),
                     "the CRD deleted")  # fmt: skip
    if keep:
        assert cluster.kubectl_ok("get", "inferencejobs", "-A", "-o", "name").split() == [
            "inferencejob.edgeinference.io/lobby-cameras"
        ]
