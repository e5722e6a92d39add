"""Every example InferenceJob under examples/ is valid for the CRD's own schema and for the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from edge_inference_api.crd import build_crd
from edge_inference_api.models import KIND, InferenceJobSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_jobs() -> list[tuple[str, dict[str, Any]]]:
    jobs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == KIND:
                jobs.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return jobs


JOBS = example_jobs()


def crd_schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def as_json_schema(node: Any) -> Any:
    """An OpenAPI v3.0 structural schema as JSON Schema draft 4 (same exclusive-bound booleans):
    `nullable` becomes a null type, Kubernetes extensions are dropped, unknown fields refused
    (the API server would prune them, silently losing what the author meant)."""
    if isinstance(node, list):
        return [as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in node:
        out["properties"] = {k: as_json_schema(v) for k, v in node["properties"].items()}
        out.setdefault("additionalProperties", False)
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    return out


def test_there_are_examples_of_both_modes() -> None:
    assert {doc["spec"]["mode"] for _, doc in JOBS} >= {"Continuous", "Batch"}


@pytest.mark.parametrize(("name", "doc"), JOBS, ids=[n for n, _ in JOBS])
def test_example_is_valid_for_the_crd_schema(name: str, doc: dict[str, Any]) -> None:
    schema = crd_schema()
    body = {k: v for k, v in doc.items() if k != "metadata"}
    jsonschema.Draft4Validator(
        as_json_schema({**schema, "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"}})
    ).validate(body)


@pytest.mark.parametrize(("name", "doc"), JOBS, ids=[n for n, _ in JOBS])
def test_the_api_server_admits_every_example_unchanged(crd_cluster, name: str, doc: dict[str, Any]) -> None:
    """kubectl's strict field validation refuses fields the server would drop; the CEL rules run."""
    manifest = {**doc, "metadata": {**doc["metadata"], "namespace": "default"}}
    result = crd_cluster.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(manifest))
    assert result.returncode == 0, f"{name}: {result.stderr}"
    admitted = json.loads(result.stdout)["spec"]
    assert InferenceJobSpec.model_validate(admitted) == InferenceJobSpec.model_validate(doc["spec"])


@pytest.mark.parametrize(("name", "doc"), JOBS, ids=[n for n, _ in JOBS])
def test_example_parses_as_the_spec_model(name: str, doc: dict[str, Any]) -> None:
    spec = InferenceJobSpec.model_validate(doc["spec"])
    assert spec.model_dump(mode="json", by_alias=True, exclude_unset=True) == doc["spec"]  # nothing lost


def test_the_converted_schema_refuses_what_the_crd_refuses() -> None:
    """The draft-4 conversion is not vacuous: unknown fields, wrong types and bounds fail."""
    _, doc = JOBS[0]
    validator = jsonschema.Draft4Validator(as_json_schema(crd_schema()["properties"]["spec"]))
    for broken in (
        {**doc["spec"], "unknownField": 1},
        {**doc["spec"], "mode": "Sometimes"},
        {**doc["spec"], "sampling": {"fps": 0}},
        {**doc["spec"], "input": {"hostPath": 7}},
    ):
        assert list(validator.iter_errors(broken)), broken
