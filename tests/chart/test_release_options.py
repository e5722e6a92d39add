"""The chart options a platform team expects (cert-manager's chart as the yardstick), rendered by real Helm
and validated against the Kubernetes schema: global, pull secrets as objects, an existing ServiceAccount,
pulling by digest, admin-set worker pod defaults, NetworkPolicy, user ClusterRoles, `helm test`, and this
chart as a dependency of an umbrella chart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from support.controlplane import fake_node, running_control_plane
from support.helm import (
    CHART_DIR,
    NAMESPACE,
    RELEASE_NAME,
    find_objects,
    install_chart,
    is_test_hook,
    operator_user,
    render_chart,
)

KUBE_VERSIONS = ["1.30.0", "1.37.0"]
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _operator_pod(objects: list[dict]) -> dict:
    return find_objects(objects, "Deployment", RELEASE_NAME)[0]["spec"]["template"]["spec"]


def _operator_env(objects: list[dict]) -> dict[str, str]:
    (container,) = _operator_pod(objects)["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_pull_secrets_are_objects_on_the_operator_and_the_test_pod() -> None:
    objects = render_chart({"imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}]})
    assert _operator_pod(objects)["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    (test_pod,) = find_objects(objects, "Pod")
    assert test_pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]


def test_operator_image_by_digest() -> None:
    objects = render_chart({"operator": {"image": {"digest": DIGEST}}})
    (container,) = _operator_pod(objects)["containers"]
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"ghcr.io/edge-inference/operator:{version}@{DIGEST}"
    (test_pod,) = find_objects(objects, "Pod")
    assert test_pod["spec"]["containers"][0]["image"] == container["image"]


def test_an_existing_service_account_is_used_and_bound() -> None:
    objects = render_chart({"serviceAccount": {"create": False, "name": "platform-operator"}})
    assert not find_objects(objects, "ServiceAccount")
    assert _operator_pod(objects)["serviceAccountName"] == "platform-operator"
    (binding,) = find_objects(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "platform-operator", "namespace": NAMESPACE}]


def test_worker_pod_values_reach_the_operator_settings() -> None:
    from edge_inference_operator.settings import OperatorSettings, WorkerPodDefaults

    worker_pods = {
        "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "edge-critical",
        "labels": {"team": "vision"},
        "annotations": {"example.com/owner": "video-ops"},
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 10001},
    }
    settings = OperatorSettings.from_env(_operator_env(render_chart({"workerPods": worker_pods})))
    assert settings.worker_pod == WorkerPodDefaults(
        image_pull_secrets=("regcred",),
        priority_class_name="edge-critical",
        labels={"team": "vision"},
        annotations={"example.com/owner": "video-ops"},
        pod_security_context={"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 10001},
    )


def test_chart_defaults_for_worker_pods_are_the_operators() -> None:
    from edge_inference_operator.settings import OperatorSettings, WorkerPodDefaults

    assert OperatorSettings.from_env(_operator_env(render_chart())).worker_pod == WorkerPodDefaults()


def test_a_reserved_worker_label_passes_the_schema_but_not_the_operator() -> None:
    """The operator is the one definition of its labels: it refuses to start, naming the key."""
    from edge_inference_operator.settings import OperatorSettings
    from pydantic import ValidationError

    env = _operator_env(render_chart({"workerPods": {"labels": {"edgeinference.io/job": "x"}}}))
    with pytest.raises(ValidationError, match="edgeinference.io/job"):
        OperatorSettings.from_env(env)


def test_network_policy_lets_the_operator_reach_only_dns_the_api_and_workers() -> None:
    from edge_inference_api.models import WORKER_METRICS_PORT
    from edge_inference_operator import names

    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    objects = render_chart({"networkPolicy": {"enabled": True, "metricsFrom": peers}})
    (policy,) = find_objects(objects, "NetworkPolicy")
    deployment = find_objects(objects, "Deployment", RELEASE_NAME)[0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    metrics_rule, health_rule = policy["spec"]["ingress"]
    assert metrics_rule == {"ports": [{"port": 8080, "protocol": "TCP"}], "from": peers}
    assert health_rule == {"ports": [{"port": 8081, "protocol": "TCP"}]}
    dns, api, workers = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert workers["to"][0]["podSelector"]["matchLabels"] == {
        names.LABEL_APP_NAME: names.WORKER_APP_NAME,
        names.LABEL_MANAGED_BY: names.MANAGER,
    }
    assert workers["ports"] == [{"port": WORKER_METRICS_PORT, "protocol": "TCP"}]


@pytest.mark.parametrize(("view", "edit"), [(True, False), (False, True), (True, True)])
def test_user_roles_aggregate_as_asked(view: bool, edit: bool) -> None:
    objects = render_chart({"rbac": {"userRoles": {"create": True, "aggregateToView": view, "aggregateToEdit": edit}}})
    view_role = find_objects(objects, "ClusterRole", f"{RELEASE_NAME}-view")[0]
    edit_role = find_objects(objects, "ClusterRole", f"{RELEASE_NAME}-edit")[0]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-{}"
    assert (view_role["metadata"]["labels"].get(aggregate.format("view")) == "true") is view
    assert (edit_role["metadata"]["labels"].get(aggregate.format("edit")) == "true") is edit
    assert aggregate.format("view") not in edit_role["metadata"]["labels"]
    assert {v for r in view_role["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    (jobs_rule,) = [r for r in edit_role["rules"] if r["resources"] == ["inferencejobs"]]
    assert {"create", "update", "patch", "delete"} <= set(jobs_rule["verbs"])
    # Nobody but the operator writes status.
    assert all(
        "inferencejobs/status" not in r["resources"] or set(r["verbs"]) <= {"get", "list", "watch"}
        for r in view_role["rules"] + edit_role["rules"]
    )


def test_user_roles_can_be_left_out() -> None:
    roles = find_objects(render_chart({"rbac": {"userRoles": {"create": False}}}), "ClusterRole")
    assert [r["metadata"]["name"] for r in roles] == [RELEASE_NAME]


def test_helm_test_pod_checks_crd_and_operator_readiness_with_the_operators_account() -> None:
    objects = render_chart()
    (pod,) = find_objects(objects, "Pod")
    assert is_test_hook(pod)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == _operator_pod(objects)["serviceAccountName"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["image"] == _operator_pod(objects)["containers"][0]["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    script = container["args"][0]
    compile(script, "helm-test", "exec")  # a syntax error fails here, not in the user's cluster
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CRD"] == "inferencejobs.edgeinference.io"
    deployment = find_objects(objects, "Deployment", RELEASE_NAME)[0]
    selector = dict(pair.split("=") for pair in env["SELECTOR"].split(","))
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert not find_objects(render_chart({"tests": {"enabled": False}}), "Pod")


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_new_option_renders_valid_objects(kube_version: str) -> None:
    values = {
        "imagePullSecrets": [{"name": "regcred"}],
        "operator": {"image": {"digest": DIGEST}},
        "serviceAccount": {"create": False, "name": "platform-operator"},
        "networkPolicy": {"enabled": True, "metricsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]},
        "rbac": {"userRoles": {"create": True, "aggregateToView": True, "aggregateToEdit": True}},
        "global": {"imageRegistry": "registry.local"},
    }
    objects = render_chart(values, kube_version=f"v{kube_version}")
    for obj in objects:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    assert {"NetworkPolicy", "Pod", "ClusterRole"} <= {o["kind"] for o in objects}


def _umbrella(tmp_path: Path) -> Path:
    """A parent chart with this one as a dependency (vendored under charts/, as `helm dependency build` leaves it)."""
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
    parent = tmp_path / "platform"
    shutil.copytree(CHART_DIR, parent / "charts" / CHART_DIR.name)
    chart = {
        "apiVersion": "v2",
        "name": "platform",
        "version": "1.0.0",
        "dependencies": [{"name": CHART_DIR.name, "version": version, "repository": f"file://{CHART_DIR}"}],
    }
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    values = {
        "global": {"imageRegistry": "registry.local", "imagePullSecrets": [{"name": "regcred"}]},
        CHART_DIR.name: {"allowedHostPaths": ["/srv/cameras"], "imagePullSecrets": [{"name": "regcred"}]},
    }
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    return parent


def test_umbrella_chart_with_global_values_renders(tmp_path: Path) -> None:
    parent = _umbrella(tmp_path)
    with helm.Chart.load(parent) as chart:
        chart.validate_schema(None)
        rendered = chart.render(name="platform", namespace=NAMESPACE)
    objects = [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    (deployment,) = find_objects(objects, "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EDGE_INFERENCE_ALLOWED_HOST_PATHS"] == "/srv/cameras"
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert deployment["metadata"]["name"] == f"platform-{CHART_DIR.name}"


def test_umbrella_chart_still_refuses_bad_values_of_this_chart(tmp_path: Path) -> None:
    parent = _umbrella(tmp_path)
    with helm.Chart.load(parent) as chart, pytest.raises(helm.HelmValuesError, match="replicas"):
        chart.validate_schema({CHART_DIR.name: {"operator": {"replicas": 2}}})
        chart.render(name="platform", namespace=NAMESPACE, values={CHART_DIR.name: {"operator": {"replicas": 2}}})


def _run_helm_test_script(kubeconfig: Path, timeout_seconds: str) -> subprocess.CompletedProcess[str]:
    """The `helm test` pod's script, run against a real control plane. The one substitution is the pod's
    in-cluster ServiceAccount mount, replaced by a kubeconfig."""
    (pod,) = find_objects(render_chart(), "Pod")
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    wrapper = "from kubernetes import config\nconfig.load_incluster_config = config.load_kube_config\n" + script
    env = {**os.environ, **_pod_env(), "KUBECONFIG": str(kubeconfig), "TIMEOUT_SECONDS": timeout_seconds}
    return subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=120, env=env)


def _pod_env() -> dict[str, str]:
    (pod,) = find_objects(render_chart(), "Pod")
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] != "TIMEOUT_SECONDS"}


def test_helm_test_script_passes_with_the_crd_and_a_ready_operator(tmp_path: Path) -> None:
    """Installed by Helm; run with the operator's own ServiceAccount token, as the test pod runs. With no
    node the operator's pod stays Pending (not Ready); once a kwok node runs it, the script passes."""
    with running_control_plane(tmp_path / "controlplane") as plane:
        install_chart(plane.kubeconfig)
        plane.kubectl_ok("wait", "--for=condition=Established", "crd/inferencejobs.edgeinference.io", "--timeout=60s")
        namespace, name = operator_user().split(":")[2:]
        kubeconfig = plane.token_kubeconfig(namespace, name, tmp_path / "operator.kubeconfig")
        not_ready = _run_helm_test_script(kubeconfig, "1")
        assert not_ready.returncode == 1, not_ready.stdout + not_ready.stderr
        assert "ok: CRD established" in not_ready.stdout and "FAILED: operator pod Ready" in not_ready.stdout
        plane.kubectl_ok("apply", "-f", "-", input=json.dumps(fake_node("system-1")))
        result = _run_helm_test_script(kubeconfig, "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["ok: CRD established", "ok: operator pod Ready"]


def test_helm_test_script_fails_without_the_crd(tmp_path: Path) -> None:
    with running_control_plane(tmp_path / "controlplane") as plane:
        result = _run_helm_test_script(plane.kubeconfig, "1")
    assert result.returncode == 1
    assert "FAILED: CRD established" in result.stdout and result.stderr == ""
