"""Generate the InferenceJob CustomResourceDefinition from the pydantic models.

    python -m edge_inference_api.crd            # rewrite crds/ and the chart's copy
    python -m edge_inference_api.crd --check    # exit 1 when the committed files drift
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import PydanticUndefined, core_schema

from edge_inference_api.models import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    InferenceJobSpec,
    InferenceJobStatus,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / f"{PLURAL}.{API_GROUP}.yaml"
CHART_CRD_FILE = REPO_ROOT / "charts" / "edge-inference-operator" / "files" / "crds" / f"{PLURAL}.{API_GROUP}.yaml"

# Keywords of JSON schema that a Kubernetes structural schema does not accept or need.
_DROPPED_KEYS = {"title", "discriminator"}


class _FactoryDefaults(GenerateJsonSchema):
    """Also emit defaults that come from default_factory (pydantic skips them)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = cast(Callable[[], Any], factory)()  # takes no data: checked just above
        if isinstance(value, BaseModel):
            # An empty object lets the API server apply the nested defaults itself.
            return {}
        if isinstance(value, list):
            return [
                v.model_dump(mode="json", by_alias=True, exclude_defaults=True) if isinstance(v, BaseModel) else v
                for v in value
            ]
        return value if value is not PydanticUndefined else NoDefault


def _structural(node: Any, defs: dict[str, Any], keep_defaults: bool) -> Any:
    """Inline $refs, turn Optional into nullable, drop keywords Kubernetes rejects."""
    if isinstance(node, list):
        return [_structural(item, defs, keep_defaults) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = _rewritten(node, defs, keep_defaults)
    if rewritten is not None:
        return _structural(rewritten, defs, keep_defaults)
    out = _structural_keys(node, defs, keep_defaults)
    _openapi_bounds(out)
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def _rewritten(node: dict[str, Any], defs: dict[str, Any], keep_defaults: bool) -> dict[str, Any] | None:
    """A schema node Kubernetes cannot take as it is ($ref, Optional, constrained keys), rewritten; else None."""
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1 and len(options) != len(node["anyOf"]):
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**_structural(options[0], defs, keep_defaults), **rest, "nullable": True}
            if merged.get("default", 0) is None:
                del merged["default"]
            return merged
    if "propertyNames" in node:
        return _keys_as_cel(node)
    return None


def _structural_keys(node: dict[str, Any], defs: dict[str, Any], keep_defaults: bool) -> dict[str, Any]:
    """Each keyword of a node made structural, those Kubernetes rejects (or that say nothing) dropped."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and not keep_defaults):
            continue
        if key == "properties":
            out[key] = {name: _structural(v, defs, keep_defaults) for name, v in value.items()}
        elif key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields already
        else:
            out[key] = _structural(value, defs, keep_defaults)
    return out


def _openapi_bounds(out: dict[str, Any]) -> None:
    """JSON Schema 2020 (pydantic) gives an exclusive bound as a number; OpenAPI v3.0 (CRDs) wants the
    bound in minimum/maximum and a boolean flag, else the API server refuses the CRD."""
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), (int, float)) and not isinstance(out[exclusive], bool):
            out[bound] = out[exclusive]
            out[exclusive] = True


def _keys_as_cel(node: dict[str, Any]) -> dict[str, Any]:
    """A map with constrained keys (pydantic: propertyNames/patternProperties, which structural
    schemas do not allow) as additionalProperties plus a CEL rule on the keys."""
    names = node["propertyNames"]
    out = {k: v for k, v in node.items() if k not in ("propertyNames", "patternProperties")}
    if "patternProperties" in node:
        (out["additionalProperties"],) = node["patternProperties"].values()
    pattern = names.get("pattern") or next(iter(node.get("patternProperties") or {}), None)
    checks = []
    if "enum" in names:
        checks.append(f"k in {sorted(names['enum'])!r}")
        message = "keys must be one of: " + ", ".join(sorted(names["enum"]))
    else:
        message = f"every key must be {names.get('description') or f'match {pattern}'}"
    if "minLength" in names:
        checks.append(f"size(k) >= {names['minLength']}")
    if "maxLength" in names:
        checks.append(f"size(k) <= {names['maxLength']}")
    if pattern:
        checks.append(f"k.matches(r'{pattern}')")
    rule = {"rule": f"self.all(k, {' && '.join(checks)})", "message": message}
    out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), rule]
    return out


def model_schema(model: type[BaseModel], keep_defaults: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.pop("$defs", {})
    return _structural(raw, defs, keep_defaults)


# `kubectl get ij`: Ready at a glance, the reason with -o wide.
PRINTER_COLUMNS = [
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {
        "name": "Nodes",
        "type": "string",
        "jsonPath": ".status.readyNodes",
        "description": "ready/desired (Batch: succeeded/desired)",
    },
    {"name": "Events", "type": "integer", "jsonPath": ".status.events"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a plain dict."""
    spec_schema = model_schema(InferenceJobSpec, keep_defaults=True)
    status_schema = model_schema(InferenceJobStatus, keep_defaults=False)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["edgeinference"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "InferenceJob runs YOLO detection over the video on matching edge nodes "
                            "and uploads only the resulting events to S3.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    header = "# Generated by `python -m edge_inference_api.crd` from api/edge_inference_api/models.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed CRD files differ")
    args = parser.parse_args(argv)
    text = render_crd()
    targets = [CRD_FILE] + ([CHART_CRD_FILE] if CHART_CRD_FILE.parent.parent.exists() else [])
    if args.check:
        stale = [str(t) for t in targets if not t.exists() or t.read_text() != text]
        if stale:
            print("CRD drifted from the models; run `python -m edge_inference_api.crd`: " + ", ".join(stale))
            return 1
        return 0
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
