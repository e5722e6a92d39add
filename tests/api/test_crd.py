"""The generated CRD: no drift from the models, a structural schema a real API server accepts,
descriptions everywhere, valid defaults, printer columns that point at real fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from edge_inference_api import crd
from edge_inference_api.models import InferenceJobSpec
from support.controlplane import ControlPlane
from support.jobs import minimal_job

# What OpenAPI v3.0 (apiextensions.k8s.io/v1) allows in a structural schema, with the value types.
KEYWORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "description": str,
    "properties": dict,
    "items": dict,
    "additionalProperties": (dict, bool),
    "required": list,
    "enum": list,
    "default": object,
    "nullable": bool,
    "format": str,
    "pattern": str,
    "minimum": (int, float),
    "maximum": (int, float),
    "exclusiveMinimum": bool,
    "exclusiveMaximum": bool,
    "minLength": int,
    "maxLength": int,
    "minItems": int,
    "maxItems": int,
    "multipleOf": (int, float),
    "minProperties": int,
    "maxProperties": int,
    "uniqueItems": bool,
    "x-kubernetes-validations": list,
    "x-kubernetes-preserve-unknown-fields": bool,
    "x-kubernetes-int-or-string": bool,
    "x-kubernetes-list-type": str,
    "x-kubernetes-list-map-keys": list,
    "x-kubernetes-map-type": str,
    "x-kubernetes-embedded-resource": bool,
}


def root_schema() -> dict[str, Any]:
    return crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its field path."""
    yield path or "<root>", schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


NODES = list(walk(root_schema()))


def test_the_committed_crd_does_not_drift(capsys) -> None:
    assert crd.main(["--check"]) == 0, capsys.readouterr().out


def test_the_committed_crd_is_the_generated_one() -> None:
    committed = yaml.safe_load(crd.CRD_FILE.read_text())
    assert committed == crd.build_crd()


@pytest.mark.parametrize(("path", "node"), NODES, ids=[p for p, _ in NODES])
def test_every_node_is_structural(path: str, node: dict[str, Any]) -> None:
    assert node.get("type") in ("object", "array", "string", "integer", "number", "boolean"), path
    for key, value in node.items():
        assert key in KEYWORD_TYPES, f"{path}: {key} is not allowed in a structural schema"
        allowed = KEYWORD_TYPES[key] if isinstance(KEYWORD_TYPES[key], tuple) else (KEYWORD_TYPES[key],)
        bool_ok = bool in allowed or object in allowed  # bool is an int in Python: keep them apart
        assert isinstance(value, allowed) and (bool_ok or not isinstance(value, bool)), (
            f"{path}: {key}={value!r} has the wrong type"
        )
    assert not ("properties" in node and isinstance(node.get("additionalProperties"), dict)), path
    if node["type"] == "array":
        assert "items" in node, path


@pytest.mark.parametrize(("path", "node"), NODES, ids=[p for p, _ in NODES])
def test_every_field_is_documented(path: str, node: dict[str, Any]) -> None:
    if path.endswith(("[]", "{}")) or path == ".metadata":
        return  # list items and map values are described by their field
    assert node.get("description", "").strip(), f"{path} has no description"


def test_the_api_server_accepts_the_crd_and_defaults_like_the_model(crd_cluster: ControlPlane) -> None:
    """crds/ applied to a real API server (crd_cluster): it checks the schema is structural and every
    default valid for its own schema. A job with only the required fields is then stored with the
    same defaults the model fills in."""
    minimal = minimal_job("minimal", "/srv/video/lobby")
    created = json.loads(crd_cluster.kubectl_ok("create", "-f", "-", "-o", "json", input=json.dumps(minimal)))
    model = InferenceJobSpec.model_validate(minimal["spec"])
    assert created["spec"] == model.model_dump(mode="json", by_alias=True, exclude_none=True)


def test_crd_shape() -> None:
    spec = crd.build_crd()["spec"]
    (version,) = spec["versions"]
    assert spec["scope"] == "Namespaced" and spec["names"]["shortNames"] == ["ij"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"Mode", "Nodes", "Events", "Ready", "Age"} <= set(columns)
    fields = {path for path, _ in NODES}
    for column in columns.values():
        path = column["jsonPath"].split("[")[0]
        assert path in fields or path == ".metadata.creationTimestamp", column


def test_host_path_has_static_cel_rules() -> None:
    host_path = root_schema()["properties"]["spec"]["properties"]["input"]["properties"]["hostPath"]
    rules = {r["rule"] for r in host_path["x-kubernetes-validations"]}
    assert "self.startsWith('/')" in rules and len(rules) >= 3
