"""Fixes 4 and 9: conflicts, PUT, the patch flavours, the status subresource, server-side apply, dry runs."""

import kubernetes
import pytest
import yaml

JOBS = ("edgeinference.io", "v1alpha1", "default", "inferencejobs")
JOB_PATH = "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs/lobby"
MERGE = "application/merge-patch+json"

DAEMONSET = {
    "metadata": {"name": "worker", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "w"}},
        "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
            {"name": "worker", "image": "worker:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "sidecar:1"},
        ]}},
    },
}


def api_error(call, *args, **kwargs) -> kubernetes.client.ApiException:
    with pytest.raises(kubernetes.client.ApiException) as failure:
        call(*args, **kwargs)
    return failure.value


def test_a_patch_with_a_stale_resource_version_is_a_conflict(core, make_config_map):
    created = core.create_namespaced_config_map("default", make_config_map("c", data={"k": "1"}))
    core.patch_namespaced_config_map("c", "default", {"data": {"k": "2"}})

    stale = {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"k": "3"}}
    conflict = api_error(core.patch_namespaced_config_map, "c", "default", stale)
    assert (conflict.status, conflict.reason) == (409, "Conflict")
    assert "the object has been modified" in conflict.body
    assert core.read_namespaced_config_map("c", "default").data == {"k": "2"}


def test_put_replaces_the_whole_object_and_checks_the_resource_version(core, make_config_map):
    created = core.create_namespaced_config_map("default", make_config_map("c", data={"a": "1", "b": "2"}))
    replacement = make_config_map("c", data={"b": "3"})
    replacement["metadata"]["resourceVersion"] = created.metadata.resource_version
    replaced = core.replace_namespaced_config_map("c", "default", replacement)
    assert replaced.data == {"b": "3"}
    assert replaced.metadata.uid == created.metadata.uid

    conflict = api_error(core.replace_namespaced_config_map, "c", "default", replacement)  # now stale
    assert conflict.status == 409
    missing = api_error(core.replace_namespaced_config_map, "gone", "default", make_config_map("gone"))
    assert missing.status == 404


def test_json_merge_patch_merges_dicts_and_null_deletes_a_key(api, custom, job):
    job["metadata"]["annotations"] = {"keep": "1", "drop": "2"}
    custom.create_namespaced_custom_object(*JOBS, job)
    status, patched = api.request("PATCH", JOB_PATH, {"metadata": {"annotations": {"drop": None, "new": "3"}}}, MERGE)
    assert status == 200
    assert patched["metadata"]["annotations"] == {"keep": "1", "new": "3"}


def test_strategic_merge_patch_merges_containers_and_env_by_name(apps):
    apps.create_namespaced_daemon_set("default", DAEMONSET)
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "worker", "image": "worker:2", "env": [{"name": "B", "value": "20"}]}]}}}}
    patched = apps.patch_namespaced_daemon_set("worker", "default", patch)
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert (containers["worker"].image, containers["sidecar"].image) == ("worker:2", "sidecar:1")
    assert [(e.name, e.value) for e in containers["worker"].env] == [("A", "1"), ("B", "20")]
    assert patched.metadata.generation == 2


def test_custom_resources_refuse_strategic_merge_patch_like_a_real_server(api, custom, job):
    custom.create_namespaced_custom_object(*JOBS, job)
    status, answer = api.request("PATCH", JOB_PATH, {"spec": {"mode": "Batch"}},
                                 "application/strategic-merge-patch+json")
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")


def test_json_patch_applies_operations_in_order(core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("c", data={"a": "1"}))
    operations = [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}]
    assert core.patch_namespaced_config_map("c", "default", operations).data == {"b": "2"}


def test_the_status_subresource_owns_status_and_only_status(custom, job):
    job["status"] = {"phase": "Failed"}
    created = custom.create_namespaced_custom_object(*JOBS, job)
    assert "status" not in created  # create ignores the status stanza

    via_status = custom.patch_namespaced_custom_object_status(
        *JOBS, "lobby", {"spec": {"mode": "Batch"}, "status": {"phase": "Running"}})
    assert (via_status["spec"]["mode"], via_status["status"]) == ("Continuous", {"phase": "Running"})

    via_main = custom.patch_namespaced_custom_object(
        *JOBS, "lobby", {"spec": {"mode": "Batch"}, "status": {"phase": "Failed"}})
    assert (via_main["spec"]["mode"], via_main["status"]) == ("Batch", {"phase": "Running"})


def test_server_side_apply_creates_then_merges_and_needs_a_field_manager(api, job):
    apply = "application/apply-patch+yaml"
    created_status, created = api.request("PATCH", JOB_PATH + "?fieldManager=tests", yaml.safe_dump(job), apply)
    assert created_status == 201
    assert created["spec"]["mode"] == "Continuous"

    job["spec"]["mode"] = "Batch"
    applied_status, applied = api.request("PATCH", JOB_PATH + "?fieldManager=tests", yaml.safe_dump(job), apply)
    assert (applied_status, applied["spec"]["mode"], applied["metadata"]["generation"]) == (200, "Batch", 2)

    refused_status, refused = api.request("PATCH", JOB_PATH, yaml.safe_dump(job), apply)
    assert (refused_status, refused["reason"]) == (400, "BadRequest")


def test_kubectl_apply_updates_with_a_client_side_patch(api, custom, job):
    assert api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job)).returncode == 0
    job["spec"]["mode"] = "Batch"
    reapplied = api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    assert reapplied.returncode == 0, reapplied.stderr
    assert "configured" in reapplied.stdout
    stored = custom.get_namespaced_custom_object(*JOBS, "lobby")
    assert (stored["spec"]["mode"], stored["metadata"]["generation"]) == ("Batch", 2)


def test_kubectl_apply_validates_fields_strictly_on_the_server(api, job):
    job["spec"]["modus"] = "Batch"
    refused = api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    assert refused.returncode != 0
    assert 'unknown field "spec.modus"' in refused.stderr


def test_a_dry_run_checks_everything_and_stores_nothing(api, core, make_config_map):
    status, answer = api.request("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", make_config_map("c"))
    assert (status, answer["metadata"]["name"]) == (201, "c")
    assert core.list_namespaced_config_map("default").items == []
