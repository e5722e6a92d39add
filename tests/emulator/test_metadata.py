"""Fixes 2, 3 and 7: server-set metadata, typed lists, namespaces, and cluster-scoped resources."""

import datetime
import uuid

import kubernetes
import pytest


def test_created_objects_carry_the_metadata_a_server_sets(api, core, make_config_map):
    created = core.create_namespaced_config_map("default", make_config_map("settings"))
    assert uuid.UUID(created.metadata.uid)
    assert created.metadata.resource_version.isdigit()
    assert created.metadata.namespace == "default"
    assert isinstance(created.metadata.creation_timestamp, datetime.datetime)

    status, raw = api.request("GET", "/api/v1/namespaces/default/configmaps/settings")
    assert status == 200
    assert (raw["apiVersion"], raw["kind"]) == ("v1", "ConfigMap")


def test_resource_versions_come_from_one_counter_bumped_by_every_write(core, make_config_map):
    first = core.create_namespaced_config_map("default", make_config_map("a"))
    other_kind = core.create_namespaced_secret("default", {"metadata": {"name": "b"}})
    patched = core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    versions = [int(o.metadata.resource_version) for o in (first, other_kind, patched)]
    assert versions == sorted(set(versions))

    # A write that changes nothing is not a change: a real server keeps the version.
    again = core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    assert again.metadata.resource_version == patched.metadata.resource_version


def test_generation_counts_spec_changes_of_a_custom_resource_not_metadata_or_status(custom, job):
    group = ("edgeinference.io", "v1alpha1", "default", "inferencejobs")
    assert custom.create_namespaced_custom_object(*group, job)["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(*group, "lobby", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    with_status = custom.patch_namespaced_custom_object_status(*group, "lobby", {"status": {"phase": "Running"}})
    assert with_status["metadata"]["generation"] == 1
    assert int(with_status["metadata"]["resourceVersion"]) > int(labelled["metadata"]["resourceVersion"])
    respecced = custom.patch_namespaced_custom_object(*group, "lobby", {"spec": {"mode": "Batch"}})
    assert respecced["metadata"]["generation"] == 2
    assert respecced["status"] == {"phase": "Running"}


@pytest.mark.parametrize(("path", "kind", "api_version"), [
    ("/api/v1/namespaces/default/configmaps", "ConfigMapList", "v1"),
    ("/api/v1/namespaces", "NamespaceList", "v1"),
    ("/apis/apps/v1/daemonsets", "DaemonSetList", "apps/v1"),
    ("/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs", "InferenceJobList",
     "edgeinference.io/v1alpha1"),
])
def test_lists_say_their_kind_and_api_version(api, path, kind, api_version):
    status, listing = api.request("GET", path)
    assert status == 200
    assert (listing["kind"], listing["apiVersion"]) == (kind, api_version)
    assert listing["metadata"]["resourceVersion"].isdigit()


def test_namespaces_list_create_and_scope_their_objects(api, core, make_config_map):
    assert {"default", "kube-system"} <= {ns.metadata.name for ns in core.list_namespace().items}
    core.create_namespace({"metadata": {"name": "cameras"}})
    core.create_namespaced_config_map("cameras", make_config_map("x", namespace="cameras"))
    core.create_namespaced_config_map("default", make_config_map("y"))

    assert [c.metadata.name for c in core.list_namespaced_config_map("cameras").items] == ["x"]
    everywhere = core.list_config_map_for_all_namespaces().items
    assert sorted((c.metadata.namespace, c.metadata.name) for c in everywhere) == [("cameras", "x"), ("default", "y")]

    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.create_namespaced_config_map("nowhere", make_config_map("z", namespace="nowhere"))
    assert missing.value.status == 404


def test_nodes_are_cluster_scoped(api, core):
    node = core.create_node({"metadata": {"name": "edge-1", "labels": {"edgeinference.io/accelerator": "cpu"}}})
    assert node.metadata.namespace is None
    assert [n.metadata.name for n in core.list_node().items] == ["edge-1"]
    assert api.request("GET", "/api/v1/namespaces/default/nodes/edge-1")[0] == 404
    assert api.request("GET", "/api/v1/nodes/edge-1")[0] == 200


@pytest.mark.parametrize(("metadata", "message"), [
    ({"name": "Upper"}, 'metadata.name: Invalid value: "Upper": a lowercase RFC 1123 subdomain'),
    ({"name": "c", "labels": {"edgeinference.io/job": "j" * 64}}, "metadata.labels: Invalid value: \"" + "j" * 64),
    ({"name": "c", "labels": {"bad key!": "x"}}, 'metadata.labels: Invalid value: "bad key!"'),
    ({"name": "c", "annotations": {"/nameless": "x"}}, 'metadata.annotations: Invalid value: "/nameless"'),
    ({"name": "c", "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n"}]},
     "metadata.ownerReferences[0].uid: Required value"),
])
def test_invalid_metadata_is_refused_as_a_server_refuses_it(api, metadata, message):
    status, answer = api.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": metadata})
    assert (status, answer["reason"]) == (422, "Invalid")
    assert message in answer["message"]


def test_generation_is_kept_only_where_a_server_keeps_it(core, apps, make_config_map):
    assert core.create_namespaced_config_map("default", make_config_map("c")).metadata.generation is None
    daemonset = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert apps.create_namespaced_daemon_set("default", daemonset).metadata.generation == 1
