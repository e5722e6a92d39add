"""Every example InferenceJob under examples/ is accepted by a real API server with the CRD from crds/,
and parses as the model."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from edge_inference_api.models import InferenceJobSpec
from support.controlplane import ControlPlane
from support.jobs import example_jobs

JOBS = [(f"{path.name}:{doc['metadata']['name']}", doc) for path, doc in example_jobs()]


def test_there_are_examples_of_both_modes() -> None:
    assert {doc["spec"]["mode"] for _, doc in JOBS} >= {"Continuous", "Batch"}


def server_dry_run(plane: ControlPlane, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --dry-run=server --validate=strict`: the API server's full check of `doc`, where
    an unknown field is an error instead of being dropped (silently losing what the author meant)."""
    return plane.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(doc))


@pytest.mark.parametrize(("name", "doc"), JOBS, ids=[n for n, _ in JOBS])
def test_example_is_accepted_by_the_api_server(crd_cluster: ControlPlane, name: str, doc: dict[str, Any]) -> None:
    result = server_dry_run(crd_cluster, {**doc, "metadata": {**doc["metadata"], "namespace": "default"}})
    assert result.returncode == 0, f"{name}: {result.stderr}"
    assert not result.stderr, f"{name}: warnings: {result.stderr}"


@pytest.mark.parametrize(("name", "doc"), JOBS, ids=[n for n, _ in JOBS])
def test_example_parses_as_the_spec_model(name: str, doc: dict[str, Any]) -> None:
    spec = InferenceJobSpec.model_validate(doc["spec"])
    assert spec.model_dump(mode="json", by_alias=True, exclude_unset=True) == doc["spec"]  # nothing lost


def test_the_api_server_refuses_broken_examples(crd_cluster: ControlPlane) -> None:
    """The check above is not vacuous: unknown fields, wrong types and bounds fail, each with its field."""
    _, doc = JOBS[0]
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": "default"}}
    for broken, field in (
        ({**doc["spec"], "unknownField": 1}, "unknownField"),
        ({**doc["spec"], "mode": "Sometimes"}, "spec.mode"),
        ({**doc["spec"], "sampling": {"fps": 0}}, "spec.sampling.fps"),
        ({**doc["spec"], "input": {"hostPath": 7}}, "spec.input.hostPath"),
    ):
        result = server_dry_run(crd_cluster, {**doc, "spec": broken})
        assert result.returncode != 0 and field in result.stderr, (broken, result.stderr)
