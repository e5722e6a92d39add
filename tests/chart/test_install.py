"""`helm install` and `helm uninstall` of the chart, by real Helm, into the API stand-in.

Helm talks to kmock's KubernetesEmulator with our fixes (tests/support/kube_emulator.py) over HTTP.
Two adjustments, both about the stand-in rather than the chart: releases are stored in memory (the
emulator does not decode the protobuf bodies Helm's release Secrets are sent as), and the emulator
reports Kubernetes 1.33 instead of kmock's fixed 1.26 where a test needs a version the chart supports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from support import kube_emulator
from support.helm import CHART_DIR, NAMESPACE, RELEASE_NAME, is_test_hook, render_chart

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def supported_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stand-in report Kubernetes 1.33 (kmock answers /version with a fixed v1.26.4+k3s1)."""
    kmock_version = kube_emulator.FaithfulEmulator._serve_server_version

    async def version(self: kube_emulator.FaithfulEmulator, request: object) -> dict:
        return {**await kmock_version(self, request), "minor": "33", "gitVersion": "v1.33.1"}

    monkeypatch.setattr(kube_emulator.FaithfulEmulator, "_serve_server_version", version)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[kube_emulator.KubeAPI]:
    """An empty cluster: no CRD yet (the chart installs it)."""
    with kube_emulator.serving_emulator(tmp_path, crd_files=()) as api:
        yield api


def _helm(api: kube_emulator.KubeAPI) -> helm.Config:
    return helm.Config(kubeconfig_path=str(api.kubeconfig), namespace=NAMESPACE, storage_driver="memory")


def _objects(api: kube_emulator.KubeAPI, kinds: str) -> set[tuple[str, str]]:
    """(kind, name) of every object of `kinds` (kubectl's comma-separated resource list) in the cluster."""
    listed = api.kubectl("get", kinds, "-A", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {(item["kind"], item["metadata"]["name"]) for item in json.loads(listed.stdout)["items"]}


def test_install_is_refused_below_kubernetes_1_30(cluster: kube_emulator.KubeAPI) -> None:
    with _helm(cluster) as config, pytest.raises(helm.HelmReleaseError, match="requires kubeVersion: >=1.30"):
        config.install(str(CHART_DIR), RELEASE_NAME, namespace=NAMESPACE, create_namespace=True, timeout=60)


@pytest.mark.usefixtures("supported_kubernetes")
def test_install_creates_every_rendered_object(cluster: kube_emulator.KubeAPI) -> None:
    with _helm(cluster) as config:
        release = config.install(str(CHART_DIR), RELEASE_NAME, namespace=NAMESPACE, create_namespace=True, timeout=60)
    assert release["status"] == "deployed"
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render_chart() if not is_test_hook(o)}
    kinds = (
        "crd,deploy,sa,clusterrole,clusterrolebinding,svc,validatingadmissionpolicies,validatingadmissionpolicybindings"
    )
    assert _objects(cluster, kinds) == rendered
    # The `helm test` pod is a test hook: an install does not create it.
    assert _objects(cluster, "pods") == set()


@pytest.mark.usefixtures("supported_kubernetes")
@pytest.mark.parametrize("keep", [True, False], ids=["keep", "no-keep"])
def test_uninstall_keeps_the_crd_and_the_jobs_when_asked(cluster: kube_emulator.KubeAPI, keep: bool) -> None:
    values = {"crds": {"enabled": True, "keep": keep}}
    with _helm(cluster) as config:
        config.install(str(CHART_DIR), RELEASE_NAME, values, namespace=NAMESPACE, create_namespace=True, timeout=60)
        job = yaml.safe_load((REPO_ROOT / "examples" / "jobs" / "lobby-cameras.yaml").read_text())
        applied = cluster.kubectl("apply", "-n", "default", "-f", "-", input=yaml.safe_dump(job))
        assert applied.returncode == 0, applied.stderr
        config.uninstall(RELEASE_NAME, timeout=60)
    assert _objects(cluster, "deploy,clusterrole,validatingadmissionpolicies") == set()
    assert (("CustomResourceDefinition", "inferencejobs.edgeinference.io") in _objects(cluster, "crd")) is keep
    if keep:
        assert _objects(cluster, "inferencejobs") == {("InferenceJob", "lobby-cameras")}
