"""Fix 12: every request is logged in RBAC terms, and rbac_allows matches (Cluster)Role rules like Kubernetes."""

import kubernetes
import pytest
from support.kube_emulator import ApiRequest, rbac_allows

RULES = [
    {"apiGroups": ["edgeinference.io"], "resources": ["inferencejobs"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["edgeinference.io"], "resources": ["inferencejobs/status"], "verbs": ["get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["settings"]},
    {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["*"], "verbs": ["list"]},
]


@pytest.mark.parametrize(("request_", "allowed"), [
    (ApiRequest("watch", "edgeinference.io", "inferencejobs"), True),
    (ApiRequest("patch", "edgeinference.io", "inferencejobs", "status", "ns", "job"), True),
    (ApiRequest("update", "edgeinference.io", "inferencejobs", "status", "ns", "job"), False),
    (ApiRequest("delete", "edgeinference.io", "inferencejobs", None, "ns", "job"), False),
    (ApiRequest("get", "", "inferencejobs"), False),  # the group must match too
    (ApiRequest("deletecollection", "apps", "daemonsets", None, "ns"), True),  # "*" verbs
    (ApiRequest("get", "apps", "daemonsets", "status", "ns", "d"), False),  # a subresource needs its own rule
    (ApiRequest("get", "", "configmaps", None, "ns", "settings"), True),
    (ApiRequest("get", "", "configmaps", None, "ns", "other"), False),  # resourceNames restrict
    (ApiRequest("list", "", "configmaps", None, "ns"), False),  # and a list has no name to match
    (ApiRequest("get", "apps", "deployments", "scale", "ns", "d"), True),  # "*/scale"
    (ApiRequest("get", "apps", "deployments", None, "ns", "d"), False),
    (ApiRequest("list", "batch", "jobs", None, "ns"), True),  # "*" resources
    (ApiRequest("list", "batch", "jobs", "status", "ns"), True),  # "*" covers subresources as well
])
def test_rbac_rule_matching(request_, allowed):
    assert rbac_allows(RULES, request_) is allowed


def test_every_client_request_is_logged_in_rbac_terms(api, core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("c"))
    core.read_namespaced_config_map("c", "default")
    core.list_namespaced_config_map("default", watch=False)
    core.replace_namespaced_config_map("c", "default", make_config_map("c"))
    core.patch_namespaced_config_map("c", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("c", "default")
    core.delete_collection_namespaced_config_map("default")
    core.list_node()
    list(kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
    api.request("PATCH", "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs/x/status", {},
                "application/merge-patch+json")  # logged even when it fails (404)

    assert [(r.verb, r.api_group, r.resource, r.subresource, r.namespace, r.name) for r in api.requests] == [
        ("create", "", "configmaps", None, "default", None),
        ("get", "", "configmaps", None, "default", "c"),
        ("list", "", "configmaps", None, "default", None),
        ("update", "", "configmaps", None, "default", "c"),
        ("patch", "", "configmaps", None, "default", "c"),
        ("delete", "", "configmaps", None, "default", "c"),
        ("deletecollection", "", "configmaps", None, "default", None),
        ("list", "", "nodes", None, None, None),
        ("watch", "", "configmaps", None, "default", None),
        ("patch", "edgeinference.io", "inferencejobs", "status", "default", "x"),
    ]
    assert api.requests[0].user_agent.startswith("OpenAPI-Generator/")
