"""Fix 10: InferenceJobs get the CRD's defaults, lose unknown fields, and are validated against its schema."""

import datetime
import json

import kubernetes
import pytest
import yaml
from support.kube_emulator import (
    INFERENCEJOB_CRD,
    default_and_prune,
    human_age,
    json_path,
    schema_errors,
    serving_emulator,
)

JOBS = ("edgeinference.io", "v1alpha1", "default", "inferencejobs")
CRD = yaml.safe_load(INFERENCEJOB_CRD.read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_defaults_from_the_crd_file_are_applied_on_create(custom, job):
    created = custom.create_namespaced_custom_object(*JOBS, job)
    spec_schema = SCHEMA["properties"]["spec"]["properties"]
    assert created["spec"]["mode"] == spec_schema["mode"]["default"]
    assert created["spec"]["sampling"]["fps"] == spec_schema["sampling"]["properties"]["fps"]["default"]
    assert created["spec"]["input"]["include"] == spec_schema["input"]["properties"]["include"]["default"]


def test_defaults_are_applied_on_update_too(api, custom, job):
    custom.create_namespaced_custom_object(*JOBS, job)
    status, patched = api.request(
        "PATCH", "/apis/edgeinference.io/v1alpha1/namespaces/default/inferencejobs/lobby",
        {"spec": {"sampling": None}}, "application/merge-patch+json")
    assert status == 200
    assert patched["spec"]["sampling"]["fps"] == 2.0


def test_unknown_fields_are_pruned(custom, job):
    job["spec"]["colour"] = "blue"
    job["spec"]["input"]["extra"] = 1
    created = custom.create_namespaced_custom_object(*JOBS, job)
    assert "colour" not in created["spec"]
    assert "extra" not in created["spec"]["input"]


def spec_with(path: str, value):
    """A valid spec with ``value`` at the dotted ``path`` (None deletes the field)."""
    spec = {"input": {"hostPath": "/var/lib/cameras"},
            "output": {"endpoint": "minio.local:9000", "bucket": "events", "credentialsSecretRef": {"name": "s3"}}}
    *parents, leaf = path.split(".")
    target = spec
    for part in parents:
        target = target.setdefault(part, {})
    if value is None:
        del target[leaf]
    else:
        target[leaf] = value
    return spec


@pytest.mark.parametrize(("path", "value", "message"), [
    ("mode", "Sometimes", 'spec.mode: Unsupported value: "Sometimes": supported values: "Continuous", "Batch"'),
    ("mode", 3, 'spec.mode: Invalid value: "integer": spec.mode in body must be of type string'),
    ("input.hostPath", None, "spec.input.hostPath: Required value"),
    ("output", None, "spec.output: Required value"),
    ("model.confidence", 1.5, "spec.model.confidence: Invalid value: 1.5: spec.model.confidence in body should be "
                              "less than or equal to 1"),
    ("model.imageSize", 16, "spec.model.imageSize: Invalid value: 16: spec.model.imageSize in body should be "
                            "greater than or equal to 32"),
    ("output.bucket", "B", "spec.output.bucket: Invalid value: \"B\": spec.output.bucket in body should match"),
    ("accelerators", [], "spec.accelerators: Invalid value: 0: spec.accelerators in body should have at least 1"),
    ("input.hostPath", "", 'spec.input.hostPath: Invalid value: "": spec.input.hostPath in body should be at least'),
    ("sampling.motionGating", "yes", "spec.sampling.motionGating: Invalid value: \"string\": "
                                     "spec.sampling.motionGating in body must be of type boolean"),
])
def test_schema_violations_are_refused_with_422_invalid(custom, job, path, value, message):
    job["spec"] = spec_with(path, value)
    with pytest.raises(kubernetes.client.ApiException) as refused:
        custom.create_namespaced_custom_object(*JOBS, job)
    status = json.loads(refused.value.body)
    assert (refused.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('InferenceJob.edgeinference.io "lobby" is invalid: ')
    assert message in status["message"]
    assert status["details"]["causes"][0]["field"] == f"spec.{path}"


def test_an_invalid_status_write_is_refused(custom, job):
    custom.create_namespaced_custom_object(*JOBS, job)
    with pytest.raises(kubernetes.client.ApiException) as refused:
        custom.patch_namespaced_custom_object_status(*JOBS, "lobby", {"status": {"phase": "Sleeping"}})
    assert refused.value.status == 422


def test_kubectl_apply_reports_the_violation(api, job):
    job["spec"]["mode"] = "Sometimes"
    refused = api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    assert refused.returncode != 0
    assert 'spec.mode: Unsupported value: "Sometimes"' in refused.stderr


@pytest.mark.parametrize(("schema", "value", "errors"), [
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0, ["x: Invalid value: 0: x in body should be "
                                                                      "greater than 0"]),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0.1, []),
    ({"type": "integer"}, 2.0, []),  # JSON has one number type; 2.0 is an integer
    ({"type": "string", "nullable": True}, None, []),
    ({"type": "string"}, None, ['x: Invalid value: "null": x in body must be of type string: "null"']),
    ({"x-kubernetes-int-or-string": True}, "50%", []),
    ({"type": "array", "maxItems": 1, "items": {"type": "string"}}, ["a", 1],
     ["x: Too many: 2: must have at most 1 items", 'x[1]: Invalid value: "integer": x[1] in body must be of type '
                                                   'string: "integer"']),
    ({"type": "object", "additionalProperties": {"type": "string"}}, {"a": 1},
     ['x.a: Invalid value: "integer": x.a in body must be of type string: "integer"']),
])
def test_schema_keywords(schema, value, errors):
    assert schema_errors(schema, value, "x") == errors


def test_nested_defaults_apply_inside_defaulted_objects():
    schema = {"type": "object", "properties": {"outer": {"type": "object", "default": {}, "properties": {
        "inner": {"type": "integer", "default": 7}}}}}
    pruned: list[str] = []
    assert default_and_prune(schema, {"stray": 1}, pruned=pruned) == {"outer": {"inner": 7}}
    assert pruned == ["stray"]


def test_the_project_crd_is_accepted_when_applied_with_kubectl(tmp_path):
    """A real server decodes the CRD strictly: e.g. exclusiveMinimum must be a boolean in apiextensions/v1."""
    with serving_emulator(tmp_path, crd_files=()) as bare:
        applied = bare.kubectl("apply", "-f", str(INFERENCEJOB_CRD))
        assert applied.returncode == 0, applied.stderr
        assert bare.kubectl("get", "inferencejobs").returncode == 0  # served as soon as it is created


def test_a_crd_that_would_not_decode_is_refused(api):
    crd = yaml.safe_load(INFERENCEJOB_CRD.read_text())
    crd["metadata"]["name"] = "broken.edgeinference.io"
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": 0.0, "const": 1}}}
    status, answer = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert (status, answer["reason"]) == (422, "Invalid")
    assert "properties[n].exclusiveMinimum: Invalid value: 0.0: must be of type bool" in answer["message"]
    assert 'properties[n].const: unknown field "const"' in answer["message"]


@pytest.mark.parametrize(("path", "values"), [
    (".spec.mode", ["Batch"]),
    (".status.conditions[?(@.type==\"Ready\")].status", ["True"]),
    (".status.conditions[1].type", ["Degraded"]),
    (".status.missing", []),
])
def test_printer_column_json_paths(path, values):
    obj = {"spec": {"mode": "Batch"}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}]}}
    assert json_path(obj, path) == values


@pytest.mark.parametrize(("seconds", "age"), [
    (5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (7300, "121m"), (4 * 3600 + 60, "4h1m"),
    (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"), (3 * 365 * 86400 + 86400, "3y1d"),
])
def test_ages_read_like_kubectl(seconds, age):
    now = datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC)
    created = (now - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_age(created, now) == age


@pytest.mark.parametrize(("host_path", "message"), [
    ("relative/video", "hostPath must be absolute"),
    ("/srv/video/../../etc", "hostPath must not contain '.' or '..' segments"),
    ("/srv//video", "hostPath must not contain empty segments ('//')"),
])
def test_the_crds_cel_rules_refuse_at_apply(api, job, host_path, message):
    job["spec"]["input"]["hostPath"] = host_path
    refused = api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    assert refused.returncode != 0
    assert f'spec.input.hostPath: Invalid value: "string": {message}' in refused.stderr


def test_an_object_stored_before_the_rules_can_still_be_written_unchanged(api, custom, job):
    """CRD validation ratcheting: unchanged invalid fields are forgiven, changed ones are not."""
    job["spec"]["input"]["hostPath"] = "/srv/video/../../etc"
    stored = api.store_unchecked(job)
    assert stored["spec"]["mode"] == "Continuous"  # defaulted all the same

    patched = custom.patch_namespaced_custom_object_status(*JOBS, "lobby", {"status": {"phase": "Invalid"}})
    assert patched["status"] == {"phase": "Invalid"}
    custom.patch_namespaced_custom_object(*JOBS, "lobby", {"metadata": {"labels": {"team": "a"}}})

    with pytest.raises(kubernetes.client.ApiException) as refused:
        custom.patch_namespaced_custom_object(*JOBS, "lobby", {"spec": {"input": {"hostPath": "/srv/../x"}}})
    assert refused.value.status == 422
