"""GitOps with Argo CD: the InferenceJob health check (real Lua, via lupa), the Applications, the jobs folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml
from edge_inference_api import conditions
from edge_inference_api.hostpaths import host_path_refusal
from edge_inference_api.models import API_GROUP, API_VERSION, KIND, InferenceJobSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
ARGOCD = REPO_ROOT / "examples" / "argocd"
LUA_FILE = ARGOCD / "health-inferencejob.lua"
HEALTH_KEY = f"resource.customizations.health.{API_GROUP}_{KIND}"
# Ready=False for these reasons needs a person: Argo CD shows Degraded. Any other reason resolves itself.
FAILURE_REASONS = {
    conditions.HOST_PATH_NOT_ALLOWED,
    conditions.INVALID_SPEC,
    conditions.SECRET_NOT_FOUND,
    conditions.NODES_FAILED,
    conditions.BATCH_FAILED,
}
ALL_REASONS = {v for k, v in vars(conditions).items() if k.isupper() and isinstance(v, str)} - {
    conditions.READY,
    conditions.PROGRESSING,
    conditions.DEGRADED,
}


def health(job: dict[str, Any]) -> dict[str, str]:
    """Run the health check as Argo CD does: a Lua chunk with the object in the global `obj`."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(job, recursive=True)
    result = lua.execute(LUA_FILE.read_text())
    return {"status": result["status"], "message": result["message"]}


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-26T05:00:00Z",
    }


def job(status: dict | None, *, mode: str = "Continuous", generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": "lobby", "namespace": "cameras", "generation": generation},
        "spec": {"mode": mode},
    }
    if status is not None:
        obj["status"] = status
    return obj


def status(phase: str, *conds: dict, observed: int = 2) -> dict[str, Any]:
    return {"phase": phase, "observedGeneration": observed, "conditions": list(conds)}


READY_ALL = cond("Ready", "True", conditions.ALL_NODES_READY, "3/3 nodes ready")
NOT_PROGRESSING = cond("Progressing", "False", conditions.AS_EXPECTED)
NOT_DEGRADED = cond("Degraded", "False", conditions.AS_EXPECTED)

SAMPLES = [
    pytest.param(job(None), "Progressing", "Waiting for the operator", id="no-status-yet"),
    pytest.param(job({}), "Progressing", "Waiting for the operator to act on generation 2", id="empty-status"),
    pytest.param(
        job(status("Running", READY_ALL, NOT_PROGRESSING, NOT_DEGRADED), mode="Continuous"),
        "Healthy",
        "Ready AllNodesReady: 3/3 nodes ready",
        id="continuous-ready",
    ),
    pytest.param(
        job(status("Running", READY_ALL, NOT_PROGRESSING, NOT_DEGRADED, observed=1)),
        "Progressing",
        "generation 2",
        id="observed-generation-behind",
    ),
    pytest.param(
        job(
            status(
                "Pending",
                cond("Ready", "False", conditions.WAITING_FOR_NODES, "0/2 nodes ready"),
                cond("Progressing", "True", conditions.WORKLOADS_CREATED, "0/2 nodes ready"),
                NOT_DEGRADED,
            )
        ),
        "Progressing",
        "Progressing WorkloadsCreated: 0/2 nodes ready",
        id="workloads-starting",
    ),
    pytest.param(
        job(
            status(
                "Pending",
                cond("Ready", "False", conditions.NO_MATCHING_NODES, "no node has the labels"),
                cond("Progressing", "True", conditions.WAITING_FOR_NODES, "starts when nodes get the labels"),
            )
        ),
        "Progressing",
        "WaitingForNodes",
        id="no-matching-nodes-yet",
    ),
    pytest.param(
        job(
            status(
                "Invalid",
                cond(
                    "Ready", "False", conditions.HOST_PATH_NOT_ALLOWED, "hostPath '/etc' is not under an allowed prefix"
                ),
                cond("Progressing", "False", conditions.HOST_PATH_NOT_ALLOWED),
            )
        ),
        "Degraded",
        "Phase Invalid; Ready HostPathNotAllowed: hostPath '/etc'",
        id="host-path-not-allowed",
    ),
    pytest.param(
        job(
            status(
                "Running",
                cond("Ready", "False", conditions.SECRET_NOT_FOUND, "Secret edge-s3 not found"),
                cond("Degraded", "True", conditions.SECRET_NOT_FOUND, "Secret edge-s3 not found"),
            )
        ),
        "Degraded",
        "Degraded SecretNotFound: Secret edge-s3 not found",
        id="secret-missing",
    ),
    pytest.param(
        job(
            status(
                "Running",
                READY_ALL,
                cond("Degraded", "True", conditions.OUTBOX_BACKLOG, "node-7 has 812 events waiting"),
            )
        ),
        "Degraded",
        "Degraded OutboxBacklog",
        id="ready-but-outbox-backlog",
    ),
    pytest.param(
        job(status("Running", cond("Ready", "False", conditions.NODES_FAILED, "worker failed on node-2"))),
        "Degraded",
        "Ready NodesFailed",
        id="ready-false-failure-reason-without-degraded",
    ),
    pytest.param(
        job(
            status(
                "Running",
                cond("Ready", "True", conditions.BATCH_RUNNING, "1/3 nodes done"),
                cond("Progressing", "True", conditions.BATCH_RUNNING, "1/3 nodes done"),
            ),
            mode="Batch",
        ),
        "Progressing",
        "Progressing BatchRunning: 1/3 nodes done",
        id="batch-running",
    ),
    pytest.param(
        job(
            status(
                "Succeeded",
                cond("Ready", "True", conditions.BATCH_SUCCEEDED, "3/3 nodes done"),
                cond("Progressing", "False", conditions.BATCH_SUCCEEDED),
            ),
            mode="Batch",
        ),
        "Healthy",
        "Ready BatchSucceeded: 3/3 nodes done",
        id="batch-succeeded",
    ),
    pytest.param(
        job(
            status(
                "Failed",
                cond("Ready", "False", conditions.BATCH_FAILED, "2 of 3 nodes failed"),
                cond("Progressing", "False", conditions.BATCH_FAILED),
            ),
            mode="Batch",
        ),
        "Degraded",
        "Phase Failed; Ready BatchFailed: 2 of 3 nodes failed",
        id="batch-failed",
    ),
    pytest.param(
        job(status("Running", cond("Ready", "Unknown", conditions.NODES_STALE))),
        "Progressing",
        "Ready NodesStale",
        id="ready-unknown",
    ),
    pytest.param(job(status("Running")), "Progressing", "Waiting for the Ready condition", id="no-conditions"),
    pytest.param(
        job(status("Running", READY_ALL), generation=None),
        "Healthy",
        "AllNodesReady",
        id="no-generation-in-metadata",
    ),
]


@pytest.mark.parametrize(("obj", "expected", "message"), SAMPLES)
def test_health_from_status(obj: dict, expected: str, message: str) -> None:
    result = health(obj)
    assert result["status"] == expected
    assert message in result["message"]


@pytest.mark.parametrize("reason", sorted(ALL_REASONS))
def test_every_ready_false_reason_has_a_decided_health(reason: str) -> None:
    """A new reason in conditions.py must be classified here (and in the Lua) on purpose."""
    result = health(job(status("Running", cond("Ready", "False", reason, "why"))))
    assert result["status"] == ("Degraded" if reason in FAILURE_REASONS else "Progressing")
    assert f"Ready {reason}: why" in result["message"]


def test_argocd_cm_snippet_is_the_lua_file() -> None:
    config_map = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == "argocd-cm"
    assert list(config_map["data"]) == [HEALTH_KEY]
    assert config_map["data"][HEALTH_KEY] == LUA_FILE.read_text()


def _applications() -> dict[str, dict]:
    apps = {}
    for path in sorted(ARGOCD.glob("application-*.yaml")):
        app = yaml.safe_load(path.read_text())
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        apps[app["metadata"]["name"]] = app
    return apps


def test_one_application_installs_the_chart_and_one_syncs_the_jobs() -> None:
    apps = _applications()
    assert set(apps) == {"edge-inference-operator", "edge-inference-jobs"}
    chart_app = apps["edge-inference-operator"]["spec"]
    chart = yaml.safe_load((REPO_ROOT / "charts/edge-inference-operator/Chart.yaml").read_text())
    # The released chart (the release workflow pushes it there), at the chart's own version.
    assert chart_app["source"]["repoURL"] == f"oci://ghcr.io/edge-inference/charts/{chart['name']}"
    assert chart_app["source"]["path"] == "."
    assert chart_app["source"]["targetRevision"] == chart["version"]
    assert chart_app["source"]["helm"]["releaseName"] == "edge-inference-operator"
    jobs_app = apps["edge-inference-jobs"]["spec"]
    assert jobs_app["source"]["repoURL"] == "https://github.com/edge-inference/edge-inference-operator.git"
    assert jobs_app["source"]["path"] == "examples/jobs"
    assert (REPO_ROOT / jobs_app["source"]["path"]).is_dir()
    assert "SkipDryRunOnMissingResource=true" in jobs_app["syncPolicy"]["syncOptions"]
    for app in apps.values():
        assert app["spec"]["destination"]["server"] == "https://kubernetes.default.svc"


def test_the_chart_values_in_the_application_pass_the_chart_schema() -> None:
    from support.helm import render_chart

    values = _applications()["edge-inference-operator"]["spec"]["source"]["helm"]["valuesObject"]
    assert render_chart(values)


def _synced_jobs() -> list[dict]:
    files = sorted((REPO_ROOT / "examples" / "jobs").glob("*.yaml"))
    assert len(files) >= 2
    return [yaml.safe_load(f.read_text()) for f in files]


def test_synced_jobs_are_valid_inference_jobs_under_the_default_allow_list() -> None:
    allowed = _applications()["edge-inference-operator"]["spec"]["source"]["helm"]["valuesObject"]["allowedHostPaths"]
    modes = set()
    for obj in _synced_jobs():
        assert obj["apiVersion"] == f"{API_GROUP}/{API_VERSION}" and obj["kind"] == KIND
        assert "namespace" not in obj["metadata"], "the Application's destination namespace applies"
        spec = InferenceJobSpec.model_validate(obj["spec"])
        assert host_path_refusal(spec.input.host_path, allowed) is None
        assert spec.output.credentials_secret_ref.name  # credentials by reference only
        modes.add(spec.mode.value)
    assert modes == {"Continuous", "Batch"}


def _cel_rules(schema: dict, value: Any, where: str) -> list[tuple[str, str, Any]]:
    """(where, rule, value) for every x-kubernetes-validations rule that applies to `value`."""
    found = [(where, v["rule"], value) for v in schema.get("x-kubernetes-validations", [])]
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                found += _cel_rules(child, value[name], f"{where}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += _cel_rules(schema["items"], item, f"{where}[{i}]")
    return found


def test_synced_jobs_pass_the_crd_schema_and_its_cel_rules() -> None:
    """What the API server checks at apply: the CRD's structural schema, then its CEL rules (run with real CEL)."""
    import jsonschema
    from cel_expr_python import cel
    from cel_expr_python.ext.ext_strings import ExtStrings
    from edge_inference_api.crd import build_crd

    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    env = cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ExtStrings()])
    rules = 0
    for obj in _synced_jobs():
        # OpenAPI v3.0 bounds (boolean exclusiveMinimum) are draft 4 semantics.
        jsonschema.Draft4Validator(root).validate(obj)
        for where, rule, value in _cel_rules(root["properties"]["spec"], obj["spec"], "spec"):
            assert env.compile(rule).eval(data={"self": value}).plain_value() is True, f"{where}: {rule}"
            rules += 1
    assert rules >= 4
