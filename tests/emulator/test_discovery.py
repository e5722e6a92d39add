"""Fix 11: API discovery tells clients each resource's scope, kind, verbs and short names."""

import asyncio
import json

import kubernetes
import pytest
import yaml

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@pytest.mark.parametrize(("group_version", "name", "namespaced", "kind", "short_names"), [
    ("v1", "namespaces", False, "Namespace", ["ns"]),
    ("v1", "nodes", False, "Node", ["no"]),
    ("v1", "pods", True, "Pod", ["po"]),
    ("v1", "secrets", True, "Secret", []),
    ("v1", "events", True, "Event", ["ev"]),
    ("v1", "configmaps", True, "ConfigMap", ["cm"]),
    ("v1", "services", True, "Service", ["svc"]),
    ("apps/v1", "daemonsets", True, "DaemonSet", ["ds"]),
    ("batch/v1", "jobs", True, "Job", []),
    ("events.k8s.io/v1", "events", True, "Event", ["ev"]),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions", False, "CustomResourceDefinition", ["crd", "crds"]),
    ("coordination.k8s.io/v1", "leases", True, "Lease", []),
    ("edgeinference.io/v1alpha1", "inferencejobs", True, "InferenceJob", ["ij"]),
])
def test_resources_are_discoverable(api, group_version, name, namespaced, kind, short_names):
    prefix = "/api/" if group_version == "v1" else "/apis/"
    status, listing = api.request("GET", prefix + group_version)
    assert (status, listing["kind"], listing["groupVersion"]) == (200, "APIResourceList", group_version)
    entry = next(r for r in listing["resources"] if r["name"] == name)
    assert (entry["namespaced"], entry["kind"], entry["shortNames"]) == (namespaced, kind, short_names)
    assert set(ALL_VERBS) - {"deletecollection"} <= set(entry["verbs"])


def test_the_status_subresource_of_inference_jobs_is_discoverable(api):
    listing = api.request("GET", "/apis/edgeinference.io/v1alpha1")[1]
    status_entry = next(r for r in listing["resources"] if r["name"] == "inferencejobs/status")
    assert (status_entry["kind"], status_entry["verbs"]) == ("InferenceJob", ["get", "patch", "update"])
    assert "shortNames" not in status_entry  # else kubectl would take `ij` for the subresource


def test_the_official_dynamic_client_finds_the_crd(api):
    dynamic = kubernetes.dynamic.DynamicClient(api.api_client())
    jobs = dynamic.resources.get(api_version="edgeinference.io/v1alpha1", kind="InferenceJob")
    assert (jobs.namespaced, jobs.name, jobs.short_names) == (True, "inferencejobs", ["ij"])
    assert jobs.subresources["status"]


def test_kubectl_uses_short_names_and_applies_manifests(api, job):
    applied = api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    assert applied.returncode == 0, applied.stderr
    assert api.kubectl("get", "ij", "-o", "name").stdout.split() == ["inferencejob.edgeinference.io/lobby"]
    assert "inferencejobs" in api.kubectl("api-resources", "--api-group=edgeinference.io").stdout


def test_the_crd_object_is_served_established_as_loaded_from_the_file(api):
    crd = json.loads(api.kubectl("get", "crd", "inferencejobs.edgeinference.io", "-o", "json").stdout)
    assert crd["spec"]["names"]["shortNames"] == ["ij"]
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}


def test_kubectl_get_prints_the_crd_printer_columns(api, job):
    assert api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job)).returncode == 0
    status = {"phase": "Running", "readyNodes": "1/2", "events": 3, "conditions": [
        {"type": "Ready", "status": "True", "reason": "AllReady", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    api.request("PATCH", "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs/lobby/status",
                {"status": status}, "application/merge-patch+json")

    header, row = api.kubectl("get", "ij", "-o", "wide").stdout.splitlines()
    assert header.split() == ["NAME", "MODE", "NODES", "EVENTS", "PHASE", "READY", "REASON", "AGE"]
    assert row.split()[:7] == ["lobby", "Continuous", "1/2", "3", "Running", "True", "AllReady"]
    assert row.split()[7].endswith("s")


async def test_kubectl_get_watch_prints_rows_of_later_objects(api, job):
    watching = asyncio.create_task(asyncio.to_thread(api.kubectl, "get", "ij", "--watch", "--request-timeout=2s"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(r.verb == "watch" for r in api.requests):
        assert loop.time() < deadline, "kubectl never opened its watch"
        await asyncio.sleep(0.02)
    assert api.request("POST", "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs", job)[0] == 201

    lines = (await watching).stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "MODE"]
    assert lines[1].split()[:2] == ["lobby", "Continuous"]


@pytest.mark.parametrize("path", ["/apis/nothing.example/v1", "/openapi/v3/apis/nothing.example/v1", "/nothing"])
def test_unknown_discovery_paths_are_404(api, path):
    assert api.request("GET", path)[0] == 404


def test_kubectl_describe_finds_the_events_of_a_job(api, job):
    assert api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job)).returncode == 0
    uid = api.request("GET", "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs/lobby")[1][
        "metadata"]["uid"]
    event = {"metadata": {"generateName": "lobby."}, "reason": "Accepted", "message": "job accepted",
             "type": "Normal", "source": {"component": "edge-inference-operator"}, "involvedObject": {
                 "apiVersion": "edgeinference.io/v1alpha1", "kind": "InferenceJob", "name": "lobby",
                 "namespace": "default", "uid": uid}}
    assert api.request("POST", "/api/v1/namespaces/default/events", event)[0] == 201

    described = api.kubectl("describe", "inferencejob", "lobby").stdout
    assert described.splitlines()[-1].split() == ["Normal", "Accepted", "<unknown>", "edge-inference-operator",
                                                  "job", "accepted"]
