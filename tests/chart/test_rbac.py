"""The operator's RBAC: exactly the rules of the brief, each with a why-comment, nothing more; what it
allows and refuses is asked of a real API server's authorizer, with the chart installed by Helm."""

from __future__ import annotations

import re

import pytest
from support.controlplane import ControlPlane
from support.helm import CHART_DIR, NAMESPACE, cluster_role_rules, find_objects, operator_user, render_chart

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


@pytest.fixture(scope="module")
def authorizer(control_plane: ControlPlane, operator_kubeconfig) -> ControlPlane:
    """The session's control plane, with the chart installed (operator_kubeconfig installs it)."""
    return control_plane


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
def test_the_operator_may_not(
    authorizer: ControlPlane, verb: str, group: str, resource: str, subresource: str | None
) -> None:
    assert not authorizer.allows(operator_user(), verb, group, resource, subresource)


@pytest.mark.parametrize(("group", "resource", "verbs"), EXPECTED_RULES)
def test_the_operator_may(authorizer: ControlPlane, group: str, resource: str, verbs: list[str]) -> None:
    resource, _, subresource = resource.partition("/")
    for verb in verbs:
        assert authorizer.allows(operator_user(), verb, group, resource, subresource or None), verb


def test_every_rule_says_why() -> None:
    lines = (CHART_DIR / "templates" / "rbac.yaml").read_text().splitlines()
    rule_lines = [i for i, line in enumerate(lines) if re.match(r"^  - apiGroups:", line)]
    assert len(rule_lines) == len(EXPECTED_RULES)
    assert all(lines[i - 1].strip().startswith("#") for i in rule_lines)


def test_binding_grants_the_role_to_the_operator_service_account() -> None:
    objects = render_chart()
    (role,) = find_objects(objects, "ClusterRole")
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
