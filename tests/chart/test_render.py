"""The chart rendered by real Helm: which objects, valid for Kubernetes, secure, wired to the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import promql_parser
import pytest
import yaml
from edge_inference_api import telemetry
from support.helm import CHART_DIR, EVERYTHING_ON, NAMESPACE, find_objects, render_chart, render_manifests

REPO_ROOT = Path(__file__).resolve().parents[2]
# The oldest and newest Kubernetes minors the chart supports: ValidatingAdmissionPolicy v1 is GA
# from 1.30; 1.37 is the newest schema kubernetes-validate 1.37.0 ships.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]
# Prometheus Operator kinds are CRDs, not in the Kubernetes schema: checked structurally below.
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

DEFAULT_KINDS = {
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Deployment",
    "Service",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "Pod",  # the `helm test` hook
}
OPTIONAL_KINDS = {"Secret", "PersistentVolumeClaim", "Job", "ConfigMap", "NetworkPolicy", *MONITORING_KINDS}


def _kinds(objects: list[dict]) -> set[str]:
    return {o["kind"] for o in objects}


def _operator_deployment(objects: list[dict]) -> dict:
    return find_objects(objects, "Deployment", "edge-inference-operator")[0]


def _pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for o in objects:
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            specs.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
    return specs


def test_defaults_render_the_operator_and_nothing_optional() -> None:
    assert _kinds(render_chart()) == DEFAULT_KINDS


def test_everything_on_renders_every_optional_part() -> None:
    assert _kinds(render_chart(EVERYTHING_ON)) == DEFAULT_KINDS | OPTIONAL_KINDS


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_every_object_validates_against_the_kubernetes_schema(values: dict | None, kube_version: str) -> None:
    objects = render_chart(values, kube_version=f"v{kube_version}")
    checked = 0
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:
            continue
        kubernetes_validate.validate(obj, kube_version, strict=True)
        checked += 1
    assert checked == len([o for o in objects if o["kind"] not in MONITORING_KINDS]) > 0


def test_monitoring_objects_are_structurally_sound() -> None:
    """A minimal structural check of the Prometheus Operator objects (their CRDs are not installed here)."""
    objects = render_chart(EVERYTHING_ON)
    for obj in find_objects(objects, "ServiceMonitor") + find_objects(objects, "PodMonitor"):
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert isinstance(obj["spec"]["selector"]["matchLabels"], dict) and obj["spec"]["selector"]["matchLabels"]
        endpoints = obj["spec"].get("endpoints") or obj["spec"].get("podMetricsEndpoints")
        assert endpoints and all(e["port"] == "metrics" and e["path"] == "/metrics" for e in endpoints)
        assert all(re.fullmatch(r"([0-9]+(ms|s|m|h))+", e["interval"]) for e in endpoints)
    (rule,) = find_objects(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    for alert in alerts:
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, alert
        assert _metric_names_in(alert["expr"])  # parses as PromQL and selects something
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}
        assert "{{ $" in alert["annotations"]["summary"] or alert["annotations"]["summary"]
    names = {a["alert"] for a in alerts}
    assert {"EdgeInferenceOutboxGrowing", "EdgeInferenceNodesNotReady", "EdgeInferenceNoFramesAnalysed"} <= names


def _worker_metric_names() -> set[str]:
    """Names the worker exposes, as Prometheus sees them (counters get `_total`)."""
    gauges = {
        telemetry.OUTBOX_DEPTH,
        telemetry.OUTBOX_BYTES,
        telemetry.OUTBOX_OLDEST_AGE,
        telemetry.OUTBOX_FULL,
        telemetry.HEARTBEAT,
        telemetry.BATCH_COMPLETE,
    }
    counters = {
        value
        for name, value in vars(telemetry).items()
        if name.isupper() and isinstance(value, str) and value.startswith(telemetry.PREFIX) and value not in gauges
    }
    return gauges | {c + "_total" for c in counters}


def _metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, from its parsed syntax tree (a syntax error raises)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _operator_metric_names() -> set[str]:
    """Names the operator really exposes: its own registry, rendered in Prometheus' text format."""
    from edge_inference_operator.metrics import OperatorMetrics

    metrics = OperatorMetrics()
    metrics.reconciles.labels(result="ok").inc()
    metrics.errors.labels(kind="api").inc()
    text = metrics.exposition().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_alerts_and_dashboard_use_metric_names_that_exist() -> None:
    objects = render_chart(EVERYTHING_ON)
    (rule,) = find_objects(objects, "PrometheusRule")
    (dashboard_cm,) = find_objects(objects, "ConfigMap")
    dashboard = json.loads(dashboard_cm["data"]["edge-inference.json"])
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_metric_names_in(e) for e in exprs))
    known = _worker_metric_names() | _operator_metric_names() | {"up"}
    assert used - known == set()
    assert any(m.startswith("edge_inference_operator_") for m in used)
    assert {"edge_inference_outbox_events", "edge_inference_frames_analysed_total"} <= used


def test_pod_monitor_selects_the_worker_pods_the_operator_labels() -> None:
    from edge_inference_operator import names

    (monitor,) = find_objects(render_chart(EVERYTHING_ON), "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        names.LABEL_APP_NAME: names.WORKER_APP_NAME,
        names.LABEL_MANAGED_BY: names.MANAGER,
    }
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == [names.METRICS_PORT_NAME]
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_operator_deployment_is_single_recreate_and_restricted() -> None:
    deployment = _operator_deployment(render_chart())
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["image"] == "ghcr.io/edge-inference/operator:0.1.0"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_every_container_runs_restricted() -> None:
    """Non-root, read-only root filesystem, no capabilities, no privilege escalation, RuntimeDefault seccomp."""
    specs = _pod_specs(render_chart(EVERYTHING_ON))
    assert len(specs) == 3  # operator, MinIO, MinIO bucket job
    for where, pod in specs:
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert container["resources"]["limits"]["memory"], where


def test_only_the_operator_gets_an_api_token() -> None:
    for where, pod in _pod_specs(render_chart(EVERYTHING_ON)):
        expected = where == "Deployment/edge-inference-operator"
        assert pod["automountServiceAccountToken"] is expected, where


def test_operator_settings_come_from_values() -> None:
    values = {
        "allowedHostPaths": ["/srv/cameras", "/mnt/nvr"],
        "stateHostPath": "/data/edge-state",
        "operator": {"metricsPort": 9090, "healthPort": 9091},
        "workerImages": {
            "cpu": {"tag": "1.2.3"},
            "nvidia": {"repository": "registry.local/worker-gpu"},
            "intel": {"repository": "registry.local/worker-openvino", "tag": "1"},
            "allowed": ["registry.local/worker:2"],
        },
    }
    (container,) = _operator_deployment(render_chart(values))["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/srv/cameras,/mnt/nvr",
        "EDGE_INFERENCE_WORKER_IMAGES": json.dumps(
            {
                "cpu": "ghcr.io/edge-inference/worker:1.2.3",
                "intel": "registry.local/worker-openvino:1",
                "nvidia": "registry.local/worker-gpu:0.1.0",
            },
            separators=(",", ":"),
        ),
        "EDGE_INFERENCE_EXPORT_IMAGE": "ghcr.io/edge-inference/worker-export:0.1.0",
        "EDGE_INFERENCE_ALLOWED_WORKER_IMAGES": "registry.local/worker:2",
        "EDGE_INFERENCE_WORKER_IMAGE_PULL_POLICY": "IfNotPresent",
        "EDGE_INFERENCE_WORKER_POD": json.dumps(
            {
                "annotations": {},
                "imagePullSecrets": [],
                "labels": {},
                "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "priorityClassName": "",
            },
            separators=(",", ":"),
        ),
        "EDGE_INFERENCE_STATE_HOST_PATH": "/data/edge-state",
        "EDGE_INFERENCE_METRICS_PORT": "9090",
        "EDGE_INFERENCE_LIVENESS_PORT": "9091",
        "EDGE_INFERENCE_RECONCILE_SECONDS": "10",
        "EDGE_INFERENCE_SCRAPE_TIMEOUT_SECONDS": "2",
        "EDGE_INFERENCE_SCRAPE_CONCURRENCY": "32",
        "EDGE_INFERENCE_STALE_AFTER_SECONDS": "60",
        "EDGE_INFERENCE_BACKLOG_AGE_SECONDS": "600",
        "EDGE_INFERENCE_BATCH_BACKOFF_LIMIT": "3",
        "EDGE_INFERENCE_BATCH_START_DEADLINE_SECONDS": "600",
    }
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090, "health": 9091}


def test_operator_settings_parse_in_the_operator() -> None:
    """The chart's environment is accepted by the operator's own settings model, every variable names
    one of its fields, and the chart's defaults are the operator's (apart from the allow-list it sets)."""
    from edge_inference_operator.settings import ENV_PREFIX, OperatorSettings

    (container,) = _operator_deployment(render_chart())["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert {name.removeprefix(ENV_PREFIX).lower() for name in env} <= set(OperatorSettings.model_fields)
    settings = OperatorSettings.from_env(env)
    assert settings == OperatorSettings(allowed_host_paths=("/var/lib/edge-video",))


def test_tuning_values_reach_the_operator() -> None:
    from edge_inference_operator.settings import OperatorSettings

    tuning = {"reconcileSeconds": 2.5, "staleAfterSeconds": 300, "batchBackoffLimit": 0}
    tuning["batchStartDeadlineSeconds"] = 60
    (container,) = _operator_deployment(render_chart({"operator": {"tuning": tuning}}))["spec"]["template"]["spec"][
        "containers"
    ]
    settings = OperatorSettings.from_env({e["name"]: e["value"] for e in container["env"]})
    assert (settings.reconcile_seconds, settings.stale_after_seconds, settings.batch_backoff_limit) == (2.5, 300, 0)
    assert settings.batch_start_deadline_seconds == 60


def test_metrics_service_selects_only_the_operator() -> None:
    objects = render_chart(EVERYTHING_ON)
    (service,) = find_objects(objects, "Service", "edge-inference-operator-metrics")
    selector = service["spec"]["selector"]
    selected = [
        o
        for o in objects
        if o["kind"] == "Deployment" and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert [o["metadata"]["name"] for o in selected] == ["edge-inference-operator"]


def test_chart_crds_equal_the_generated_ones() -> None:
    """The CRD the chart installs is crds/ byte for byte, apart from the labels/annotations it adds."""
    generated = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    copies = sorted((CHART_DIR / "files" / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == [p.name for p in generated] and generated
    for original, copy in zip(generated, copies, strict=True):
        assert copy.read_bytes() == original.read_bytes()
    rendered = find_objects(render_chart(), "CustomResourceDefinition")
    assert [yaml.safe_load(p.read_text())["spec"] for p in generated] == [c["spec"] for c in rendered]
    (text,) = [t for path, t in render_manifests().items() if path.endswith("crds.yaml")]
    without_metadata_additions = re.sub(r"metadata:\n(  (labels|annotations):\n(    .*\n)+)+", "metadata:\n", text)
    assert without_metadata_additions.strip() == "---\n" + generated[0].read_text().strip()


@pytest.mark.parametrize(
    ("crds", "kept"),
    [({"enabled": True, "keep": True}, True), ({"enabled": True, "keep": False}, False)],
)
def test_crd_keep_policy(crds: dict, kept: bool) -> None:
    (crd,) = find_objects(render_chart({"crds": crds}), "CustomResourceDefinition")
    annotations = crd["metadata"].get("annotations", {})
    assert (annotations.get("helm.sh/resource-policy") == "keep") is kept
    assert (annotations.get("argocd.argoproj.io/sync-options") == "Prune=false,Delete=false") is kept


def test_crds_can_be_left_out() -> None:
    assert not find_objects(render_chart({"crds": {"enabled": False, "keep": True}}), "CustomResourceDefinition")


def test_images_are_pinned_and_match_the_project_version() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    objects = render_chart(EVERYTHING_ON)
    images = [c["image"] for _, pod in _pod_specs(objects) for c in pod["containers"]]
    assert f"ghcr.io/edge-inference/operator:{version}" in images
    for image in images:
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", image
    assert any(i.startswith("quay.io/minio/minio:RELEASE.") for i in images)
    (container,) = _operator_deployment(objects)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["EDGE_INFERENCE_WORKER_IMAGES"]) == {
        "cpu": f"ghcr.io/edge-inference/worker:{version}",
        "nvidia": f"ghcr.io/edge-inference/worker-cuda:{version}",
    }
    assert env["EDGE_INFERENCE_EXPORT_IMAGE"] == f"ghcr.io/edge-inference/worker-export:{version}"


def test_minio_secret_carries_root_and_job_credential_keys() -> None:
    objects = render_chart(EVERYTHING_ON)
    (secret,) = find_objects(objects, "Secret")
    assert set(secret["data"]) == {"rootUser", "rootPassword", "accessKey", "secretKey"}
    assert secret["data"]["accessKey"] == secret["data"]["rootUser"]
    assert len(secret["data"]["rootPassword"]) >= 40  # base64 of 40 random characters
    (job,) = find_objects(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert 'mc mb --ignore-existing "local/edge-events"' in script


def test_minio_uses_an_existing_secret_when_given() -> None:
    objects = render_chart({"minio": {"enabled": True, "existingSecret": "my-minio"}})
    assert not find_objects(objects, "Secret")
    (minio,) = find_objects(objects, "Deployment", "edge-inference-operator-minio")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in minio["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs == {"my-minio"}


def test_notes_say_how_to_label_nodes_and_apply_a_job() -> None:
    from support.helm import render_notes

    notes = render_notes()
    assert "kubectl label node <node> edgeinference.io/camera-storage=true" in notes
    assert "edgeinference.io/accelerator=cpu" in notes
    assert "kubectl apply -f examples/inferencejob.yaml" in notes
    assert "create secret generic s3-credentials" in notes
    assert "/var/lib/edge-video" in notes
