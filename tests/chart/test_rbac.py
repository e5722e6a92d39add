"""The operator's RBAC as rendered: exactly the rules of the brief, each with a why-comment, nothing more."""

from __future__ import annotations

import re

import pytest
from support.helm import CHART_DIR, NAMESPACE, cluster_role_rules, find_objects, render_chart
from support.kube_emulator import ApiRequest
from support.kube_emulator import rbac_allows as rules_allow

# (apiGroup, resource, verbs): the operator's needs, one line each (see templates/rbac.yaml for why).
EXPECTED_RULES = [
    ("edgeinference.io", "inferencejobs", ["get", "list", "watch", "patch"]),
    ("edgeinference.io", "inferencejobs/status", ["get", "patch"]),
    ("apps", "daemonsets", ["get", "list", "watch", "create", "patch", "delete"]),
    ("batch", "jobs", ["get", "list", "watch", "create", "patch", "delete"]),
    ("", "pods", ["get", "list", "watch"]),
    ("", "nodes", ["get", "list", "watch"]),
    ("", "events", ["create", "patch"]),
    ("events.k8s.io", "events", ["create", "patch"]),
    ("", "namespaces", ["list", "watch"]),
    ("apiextensions.k8s.io", "customresourcedefinitions", ["get", "list", "watch"]),
]


def rbac_allows(rules, **request) -> bool:
    """The matcher the operator's recorded requests are checked with, called with keywords."""
    return rules_allow(rules, ApiRequest(**request))


def test_cluster_role_has_exactly_the_needed_rules() -> None:
    rules = cluster_role_rules()
    flat = [(g, r, rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]]
    assert sorted(flat) == sorted(EXPECTED_RULES)
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in rules)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource"),
    [
        ("get", "", "secrets", None),  # credentials reach pods by secretKeyRef, never through the operator
        ("list", "", "secrets", None),
        ("create", "", "pods", None),  # pods come from the DaemonSets/Jobs
        ("delete", "", "pods", None),
        ("update", "edgeinference.io", "inferencejobs", None),
        ("create", "edgeinference.io", "inferencejobs", None),
        ("delete", "edgeinference.io", "inferencejobs", None),
        ("update", "edgeinference.io", "inferencejobs", "status"),
        ("patch", "", "nodes", None),
        ("create", "", "pods", "exec"),
        ("get", "", "configmaps", None),
        ("create", "apiextensions.k8s.io", "customresourcedefinitions", None),
        ("create", "admissionregistration.k8s.io", "validatingadmissionpolicies", None),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles", None),
        ("impersonate", "", "serviceaccounts", None),
    ],
)
def test_the_operator_may_not(verb: str, group: str, resource: str, subresource: str | None) -> None:
    assert not rbac_allows(cluster_role_rules(), verb=verb, api_group=group, resource=resource, subresource=subresource)


def test_rbac_allows_matches_like_the_api_server() -> None:
    rules = cluster_role_rules()
    assert rbac_allows(
        rules, verb="patch", api_group="edgeinference.io", resource="inferencejobs", subresource="status"
    )
    assert rbac_allows(rules, verb="watch", api_group="", resource="pods")
    assert not rbac_allows(rules, verb="patch", api_group="", resource="pods", subresource="status")
    assert not rbac_allows(rules, verb="watch", api_group="edgeinference.io", resource="pods")
    wildcard = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    assert rbac_allows(wildcard, verb="delete", api_group="x", resource="y", subresource="z")
    named = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]
    assert rbac_allows(named, verb="get", api_group="", resource="configmaps", name="a")
    assert not rbac_allows(named, verb="get", api_group="", resource="configmaps", name="b")
    assert not rbac_allows(named, verb="list", api_group="", resource="configmaps")


def test_every_rule_says_why() -> None:
    lines = (CHART_DIR / "templates" / "rbac.yaml").read_text().splitlines()
    rule_lines = [i for i, line in enumerate(lines) if re.match(r"^  - apiGroups:", line)]
    assert len(rule_lines) == len(EXPECTED_RULES)
    assert all(lines[i - 1].strip().startswith("#") for i in rule_lines)


def test_binding_grants_the_role_to_the_operator_service_account() -> None:
    objects = render_chart()
    (role,) = find_objects(objects, "ClusterRole", "edge-inference-operator")
    (binding,) = find_objects(objects, "ClusterRoleBinding")
    (account,) = find_objects(objects, "ServiceAccount")
    (deployment,) = find_objects(objects, "Deployment")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
