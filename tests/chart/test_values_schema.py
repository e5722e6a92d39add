"""values.schema.json refuses unknown and ill-typed values; values.yaml documents every key."""

from __future__ import annotations

import json
import re

import helm_python
import pytest
import yaml
from support.helm import CHART_DIR, render_chart

BAD_VALUES = [
    pytest.param({"replicaCount": 2}, "additional properties 'replicaCount'", id="unknown-top-level-key"),
    pytest.param({"operator": {"image": {"sha": "sha256:00"}}}, "additional properties 'sha'", id="unknown-nested-key"),
    pytest.param({"operator": {"image": {"digest": "sha256:00"}}}, "/operator/image/digest", id="short-digest"),
    pytest.param({"operator": {"image": {"digest": "a" * 64}}}, "/operator/image/digest", id="digest-without-algo"),
    pytest.param({"operator": {"replicas": 2}}, "/operator/replicas", id="two-replicas"),
    pytest.param({"operator": {"replicas": 0}}, "/operator/replicas", id="zero-replicas"),
    pytest.param({"operator": {"replicas": "1"}}, "/operator/replicas", id="replicas-as-string"),
    pytest.param({"allowedHostPaths": "/var/lib/edge-video"}, "/allowedHostPaths", id="allow-list-not-a-list"),
    pytest.param({"allowedHostPaths": ["video"]}, "/allowedHostPaths/0", id="relative-allowed-path"),
    pytest.param({"allowedHostPaths": ["/"]}, "/allowedHostPaths/0", id="root-allowed"),
    pytest.param({"allowedHostPaths": ["/video/"]}, "/allowedHostPaths/0", id="trailing-slash"),
    pytest.param({"allowedHostPaths": ["/video/../etc"]}, "/allowedHostPaths/0", id="dot-dot-segment"),
    pytest.param({"allowedHostPaths": ["/video/./x"]}, "/allowedHostPaths/0", id="dot-segment"),
    pytest.param({"allowedHostPaths": ["/video//x"]}, "/allowedHostPaths/0", id="empty-segment"),
    pytest.param({"allowedHostPaths": ["/a,/b"]}, "/allowedHostPaths/0", id="comma-breaks-env-list"),
    pytest.param({"allowedHostPaths": ["/a", "/a"]}, "/allowedHostPaths", id="duplicate-prefix"),
    pytest.param({"stateHostPath": "relative/state"}, "/stateHostPath", id="relative-state-path"),
    pytest.param({"operator": {"metricsPort": 70000}}, "/operator/metricsPort", id="port-out-of-range"),
    pytest.param({"operator": {"healthPort": "8081"}}, "/operator/healthPort", id="port-as-string"),
    pytest.param(
        {"operator": {"tuning": {"reconcileSeconds": 0}}}, "/operator/tuning/reconcileSeconds", id="zero-interval"
    ),
    pytest.param(
        {"operator": {"tuning": {"scrapeConcurrency": 1.5}}},
        "/operator/tuning/scrapeConcurrency",
        id="fractional-count",
    ),
    pytest.param(
        {"operator": {"image": {"pullPolicy": "Sometimes"}}}, "/operator/image/pullPolicy", id="bad-pull-policy"
    ),
    pytest.param({"operator": {"image": {"tag": "v1 beta"}}}, "/operator/image/tag", id="bad-tag"),
    pytest.param({"operator": {"resources": {"limits": {"memory": "lots"}}}}, "/operator/resources", id="bad-quantity"),
    pytest.param({"crds": {"enabled": "yes"}}, "/crds/enabled", id="bool-as-string"),
    pytest.param(
        {"admissionPolicy": {"validationActions": ["Block"]}}, "/admissionPolicy/validationActions/0", id="bad-action"
    ),
    pytest.param({"admissionPolicy": {"validationActions": []}}, "/admissionPolicy/validationActions", id="no-action"),
    pytest.param(
        {"admissionPolicy": {"validationActions": ["Deny", "Warn"]}},
        "/admissionPolicy/validationActions",
        id="deny-with-warn",
    ),
    pytest.param(
        {"admissionPolicy": {"failurePolicy": "Retry"}}, "/admissionPolicy/failurePolicy", id="bad-failure-policy"
    ),
    pytest.param(
        {"monitoring": {"prometheusRule": {"severity": "page"}}},
        "/monitoring/prometheusRule/severity",
        id="bad-severity",
    ),
    pytest.param(
        {"monitoring": {"serviceMonitor": {"interval": "often"}}},
        "/monitoring/serviceMonitor/interval",
        id="bad-duration",
    ),
    pytest.param({"minio": {"buckets": ["Bad_Bucket"]}}, "/minio/buckets/0", id="bad-bucket-name"),
    pytest.param(
        {"minio": {"enabled": True, "persistence": {"size": "big"}}}, "/minio/persistence/size", id="bad-pvc-size"
    ),
    pytest.param(
        {"workerImages": {"intel": {"repo": "x", "tag": ""}}}, "additional properties 'repo'", id="misspelt-kind-image"
    ),
    pytest.param({"imagePullSecrets": ["regcred"]}, "/imagePullSecrets/0", id="pull-secret-as-bare-name"),
    pytest.param(
        {"workerPods": {"imagePullSecrets": [{"name": "a", "namespace": "b"}]}},
        "/workerPods/imagePullSecrets/0",
        id="pull-secret-with-extra-key",
    ),
    pytest.param(
        {"workerPods": {"podSecurityContext": {"runAsUser": 0}}},
        "/workerPods/podSecurityContext",
        id="worker-uid-is-not-settable",
    ),
    pytest.param({"serviceAccount": {"create": False}}, "/serviceAccount", id="existing-account-without-name"),
    pytest.param(
        {"networkPolicy": {"enabled": True, "apiServerPorts": []}}, "/networkPolicy/apiServerPorts", id="no-api-port"
    ),
    pytest.param(
        {"rbac": {"userRoles": {"aggregateToEdit": "yes"}}}, "/rbac/userRoles/aggregateToEdit", id="bool-string"
    ),
    pytest.param({"workerImages": {"allowed": [" worker:1"]}}, "/workerImages/allowed/0", id="bad-allowed-image"),
    pytest.param(
        {"operator": {"tolerations": [{"key": "edge", "operator": "Exist"}]}},
        "/operator/tolerations/0/operator",
        id="toleration-typo",
    ),
    pytest.param(
        {"operator": {"affinity": {"nodeAfinity": {}}}}, "additional properties 'nodeAfinity'", id="affinity-typo"
    ),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES)
def test_schema_refuses_bad_values(values: dict, where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_chart(values)
    assert where in str(refused.value)


GOOD_VALUES = [
    {"allowedHostPaths": []},
    {"allowedHostPaths": ["/srv/cameras", "/mnt/nvr-01/export", "/data/edge_video.v2"]},
    {"operator": {"resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}}},
    {"operator": {"image": {"repository": "registry.local:5000/edge/operator", "tag": "0.1.0-rc.1"}}},
    {"imagePullSecrets": [{"name": "regcred"}], "commonLabels": {"team": "vision"}},
    {"global": {"imageRegistry": "registry.local", "anything": {"nested": [1, 2]}}},
    {"serviceAccount": {"create": False, "name": "edge-operator"}},
    {"operator": {"image": {"digest": "sha256:" + "0123456789abcdef" * 4}}},
    {"workerPods": {"podSecurityContext": {"fsGroup": 10001, "seLinuxOptions": {"level": "s0:c1"}}}},
    {"operator": {"tolerations": [{"key": "edgeinference.io/edge", "operator": "Exists", "effect": "NoSchedule"}]}},
    {"admissionPolicy": {"validationActions": ["Warn", "Audit"], "failurePolicy": "Ignore"}},
    {"minio": {"enabled": True, "persistence": {"enabled": False, "size": "1Gi"}, "buckets": ["a-b.c", "events"]}},
]


@pytest.mark.parametrize("values", GOOD_VALUES)
def test_schema_accepts_reasonable_values(values: dict) -> None:
    assert render_chart(values)


def _schema() -> dict:
    return json.loads((CHART_DIR / "values.schema.json").read_text())


# if/then/else refine an object already described (and closed) beside them; they describe no new one.
CONDITIONAL_KEYWORDS = {"if", "then", "else"}


def _closed_objects(node: object, where: str = "") -> list[str]:
    """Paths of object schemas with properties that do not close additionalProperties (false, or a schema
    that every further key must match, itself closed: workerImages' further accelerator kinds)."""
    problems = []
    if isinstance(node, dict):
        extra = node.get("additionalProperties")
        if "properties" in node and extra is not False and not isinstance(extra, dict):
            problems.append(where or "/")
        for key, value in node.items():
            if key not in CONDITIONAL_KEYWORDS:
                problems += _closed_objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _closed_objects(value, f"{where}/{i}")
    return problems


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    assert _closed_objects(_schema()) == []


def _is_setting(schema: dict) -> bool:
    """A single setting: a scalar or list, or an object of free-form parts (resources, affinity)."""
    parts = schema.get("properties")
    return parts is None or all(p.get("type") == "object" and "properties" not in p for p in parts.values())


def _keys(values: dict, schema: dict, prefix: str = "") -> set[str]:
    """Dotted paths of the settings (and their parents) that values.yaml sets."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.add(path)
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and not _is_setting(sub):
            paths |= _keys(value, sub, path + ".")
    return paths


def _schema_keys(schema: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        paths.add(f"{prefix}{key}")
        if not _is_setting(sub):
            paths |= _schema_keys(sub, f"{prefix}{key}.")
    return paths


def test_values_yaml_sets_exactly_the_keys_the_schema_describes() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert _keys(values, _schema()) == _schema_keys(_schema())


def _schema_leaves(schema: dict, prefix: str = "") -> set[str]:
    """Dotted paths of the settings."""
    leaves = set()
    for key, sub in schema.get("properties", {}).items():
        leaves |= {f"{prefix}{key}"} if _is_setting(sub) else _schema_leaves(sub, f"{prefix}{key}.")
    return leaves


def test_every_setting_in_values_yaml_has_a_comment() -> None:
    """Each setting (a schema leaf: not a map of free-form keys like resources) has a comment above it."""
    leaves = _schema_leaves(_schema())
    stack: list[tuple[int, str]] = []
    documented, undocumented = set(), set()
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9_]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        stack = [(d, k) for d, k in stack if d < indent]
        stack.append((indent, match.group(2)))
        path = ".".join(k for _, k in stack)
        if path in leaves:
            (documented if lines[i - 1].strip().startswith("#") else undocumented).add(path)
    assert undocumented == set() and documented == leaves
