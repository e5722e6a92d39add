"""Fixtures for the emulator's own tests: a running emulator, typed clients, and manifests."""

import copy
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from support.kube_emulator import KubeAPI, kube_api, serving_emulator  # noqa: F401

INFERENCE_JOB = {
    "apiVersion": "edgeinference.io/v1alpha1",
    "kind": "InferenceJob",
    "metadata": {"name": "lobby", "namespace": "default"},
    "spec": {
        "input": {"hostPath": "/var/lib/cameras"},
        "output": {"endpoint": "minio.local:9000", "bucket": "events", "credentialsSecretRef": {"name": "s3"}},
    },
}


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[KubeAPI]:
    """The emulator for a sync test (the server thread answers while the test blocks)."""
    with serving_emulator(tmp_path) as running:
        yield running


@pytest.fixture()
def core(api: KubeAPI) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api.api_client())


@pytest.fixture()
def apps(api: KubeAPI) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api.api_client())


@pytest.fixture()
def custom(api: KubeAPI) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api.api_client())


@pytest.fixture()
def job() -> dict:
    """A valid InferenceJob manifest with only the required fields (a fresh copy per test)."""
    return copy.deepcopy(INFERENCE_JOB)


def config_map(name: str, namespace: str = "default", labels: dict | None = None, data: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "data": data or {}}


@pytest.fixture()
def make_config_map():
    return config_map
