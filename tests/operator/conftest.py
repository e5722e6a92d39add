"""Fixtures of the operator tests: sample jobs, settings, and the emulator (from support)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edge_inference_operator.builders import ParsedJob
from edge_inference_operator.settings import OperatorSettings
from edge_inference_api.models import InferenceJobSpec
from support.kube_emulator import kube_api  # noqa: F401  (fixture)

BASE_SPEC: dict[str, Any] = {
    "input": {"hostPath": "/srv/video/lobby", "include": ["**/*.mp4"]},
    "output": {
        "endpoint": "minio.storage:9000",
        "bucket": "events",
        "prefix": "lobby",
        "secure": False,
        "credentialsSecretRef": {"name": "s3-credentials"},
    },
}


def job_body(name: str = "lobby", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """An InferenceJob manifest: BASE_SPEC with top-level spec keys replaced by `spec`."""
    return {
        "apiVersion": "edgeinference.io/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**copy.deepcopy(BASE_SPEC), **spec},
    }


def parsed_job(name: str = "lobby", namespace: str = "default", uid: str = "uid-1", **spec: Any) -> ParsedJob:
    body = job_body(name, namespace, **spec)
    return ParsedJob(namespace=namespace, name=name, uid=uid, spec=InferenceJobSpec.model_validate(body["spec"]))


@pytest.fixture
def make_body():
    """Factory of InferenceJob manifests (see job_body)."""
    return job_body


@pytest.fixture
def make_job():
    """Factory of ParsedJob (see parsed_job)."""
    return parsed_job


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(allowed_host_paths=("/srv/video",), metrics_port=0)
