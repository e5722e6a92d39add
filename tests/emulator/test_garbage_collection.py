"""Fix 8: deleting an owner deletes its dependents (cascading); finalizers hold deletion until removed."""

import kubernetes
import pytest

JOBS = ("edgeinference.io", "v1alpha1", "default", "inferencejobs")


def owned_by(owner: dict, name: str, kind: str = "InferenceJob") -> dict:
    reference = {"apiVersion": owner["apiVersion"], "kind": kind, "name": owner["metadata"]["name"],
                 "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    return {"metadata": {"name": name, "namespace": "default", "ownerReferences": [reference]}}


def daemonset(name: str, owner: dict) -> dict:
    body = owned_by(owner, name)
    body["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": {
        "metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "w", "image": "w"}]}}}
    return body


def gone(read, *args) -> bool:
    with pytest.raises(kubernetes.client.ApiException) as missing:
        read(*args)
    return missing.value.status == 404


def test_deleting_an_owner_deletes_its_dependents_and_theirs(core, apps, custom, job):
    owner = custom.create_namespaced_custom_object(*JOBS, job)
    ds = apps.create_namespaced_daemon_set("default", daemonset("worker", owner)).to_dict()
    ds_ref = {"apiVersion": "apps/v1", "metadata": {"name": "worker", "uid": ds["metadata"]["uid"]}}
    core.create_namespaced_pod("default", {**owned_by(ds_ref, "worker-x", "DaemonSet"),
                                           "spec": {"containers": [{"name": "w", "image": "w"}]}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "unrelated"}})

    custom.delete_namespaced_custom_object(*JOBS, "lobby")

    assert gone(apps.read_namespaced_daemon_set, "worker", "default")
    assert gone(core.read_namespaced_pod, "worker-x", "default")
    assert core.read_namespaced_config_map("unrelated", "default")


def test_a_finalizer_holds_deletion_until_it_is_removed(apps, custom, job):
    owner = custom.create_namespaced_custom_object(*JOBS, job)
    body = daemonset("worker", owner)
    body["metadata"]["finalizers"] = ["edgeinference.io/cleanup"]
    apps.create_namespaced_daemon_set("default", body)

    custom.delete_namespaced_custom_object(*JOBS, "lobby")
    held = apps.read_namespaced_daemon_set("worker", "default")
    assert held.metadata.deletion_timestamp is not None

    with pytest.raises(kubernetes.client.ApiException) as refused:
        apps.patch_namespaced_daemon_set("worker", "default", {"metadata": {"finalizers": ["x", "y"]}})
    assert refused.value.status == 422  # no new finalizers once deletion started

    apps.patch_namespaced_daemon_set("worker", "default", {"metadata": {"finalizers": None}})
    assert gone(apps.read_namespaced_daemon_set, "worker", "default")


def test_a_finalizer_on_the_owner_keeps_it_and_its_dependents(apps, custom, job):
    job["metadata"]["finalizers"] = ["edgeinference.io/cleanup"]
    owner = custom.create_namespaced_custom_object(*JOBS, job)
    apps.create_namespaced_daemon_set("default", daemonset("worker", owner))

    custom.delete_namespaced_custom_object(*JOBS, "lobby")
    assert custom.get_namespaced_custom_object(*JOBS, "lobby")["metadata"]["deletionTimestamp"]
    assert apps.read_namespaced_daemon_set("worker", "default")

    custom.patch_namespaced_custom_object(*JOBS, "lobby", {"metadata": {"finalizers": []}})
    assert gone(custom.get_namespaced_custom_object, *JOBS, "lobby")
    assert gone(apps.read_namespaced_daemon_set, "worker", "default")


def test_orphan_propagation_keeps_dependents_and_drops_the_reference(apps, custom, job):
    owner = custom.create_namespaced_custom_object(*JOBS, job)
    apps.create_namespaced_daemon_set("default", daemonset("worker", owner))

    custom.delete_namespaced_custom_object(*JOBS, "lobby", propagation_policy="Orphan")
    assert apps.read_namespaced_daemon_set("worker", "default").metadata.owner_references is None


def test_kubectl_delete_cascades_too(api, apps, custom, job):
    owner = custom.create_namespaced_custom_object(*JOBS, job)
    apps.create_namespaced_daemon_set("default", daemonset("worker", owner))

    deleted = api.kubectl("delete", "inferencejob", "lobby")
    assert deleted.returncode == 0, deleted.stderr
    assert gone(apps.read_namespaced_daemon_set, "worker", "default")


def test_a_namespace_terminates_until_finalizers_release_its_content(core, make_config_map):
    core.create_namespace({"metadata": {"name": "cams"}})
    held = make_config_map("held", namespace="cams")
    held["metadata"]["finalizers"] = ["edgeinference.io/cleanup"]
    core.create_namespaced_config_map("cams", held)
    core.create_namespaced_config_map("cams", make_config_map("free", namespace="cams"))

    core.delete_namespace("cams")
    assert core.read_namespace("cams").status.phase == "Terminating"
    assert [c.metadata.name for c in core.list_namespaced_config_map("cams").items] == ["held"]
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_config_map("cams", make_config_map("late", namespace="cams"))
    assert refused.value.status == 403

    core.patch_namespaced_config_map("held", "cams", {"metadata": {"finalizers": None}})
    assert gone(core.read_namespace, "cams")
