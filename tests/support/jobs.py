"""Sample InferenceJobs for tests, defined once: the examples under examples/, a minimal job (only
the required fields) and the operator tests' base job."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from edge_inference_api.models import KIND, InferenceJobSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Only what the schema requires.
MINIMAL_SPEC: dict[str, Any] = {
    "input": {"hostPath": "/srv/video/lobby"},
    "output": {"endpoint": "minio.storage:9000", "bucket": "events", "credentialsSecretRef": {"name": "s3"}},
}

# The operator tests' job: one folder of mp4 files, events to a plain-HTTP bucket.
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


def example_jobs(pattern: str = "*.yaml") -> list[tuple[Path, dict[str, Any]]]:
    """Every InferenceJob in the examples/ files matching `pattern`, with the file it is in."""
    jobs = []
    for path in sorted(EXAMPLES.glob(pattern)):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == KIND:
                jobs.append((path, doc))
    return jobs


def manifest(name: str, namespace: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """An InferenceJob manifest."""
    return {
        "apiVersion": "edgeinference.io/v1alpha1",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": spec,
    }


def minimal_job(name: str, host_path: str, namespace: str = "default", **metadata: Any) -> dict[str, Any]:
    """An InferenceJob with only the required fields and `host_path`."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["input"]["hostPath"] = host_path
    return manifest(name, namespace, spec, **metadata)


def job_body(name: str = "lobby", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """An InferenceJob manifest: BASE_SPEC with top-level spec keys replaced by `spec`."""
    return manifest(name, namespace, {**copy.deepcopy(BASE_SPEC), **spec})


def job_spec(**spec: Any) -> InferenceJobSpec:
    """The parsed spec of job_body(**spec)."""
    return InferenceJobSpec.model_validate(job_body(**spec)["spec"])
