"""The README's k3s quickstart, checked against what it relies on: a non-root kubeconfig, Helm stated as a
prerequisite, the released OCI chart, the job it applies (valid, allowed, on a model the released images
hold) and the names the chart really gives the MinIO Service, Secret and images."""

from __future__ import annotations

import re

import yaml
from edge_inference_api.models import LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE, InferenceJobSpec
from support.helm import CHART_DIR, NAMESPACE, RELEASE_NAME, find_objects, render_chart
from support.release import REPO_ROOT, project_version


def _quickstart() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    return readme.split("## Quickstart on k3s", 1)[1].split("\n## ", 1)[0]


def _commands() -> str:
    return _quickstart().split("```bash", 1)[1].split("\n```", 1)[0]


def _applied_job() -> dict:
    return yaml.safe_load(_commands().split("<<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0])


def test_kubeconfig_is_readable_without_root_and_helm_is_a_prerequisite() -> None:
    commands = _commands()
    assert "sudo k3s kubectl config view --raw > ~/.kube/config" in commands
    assert "export KUBECONFIG=~/.kube/config" in commands
    assert "--write-kubeconfig-mode" in _quickstart()
    assert "/etc/rancher/k3s/k3s.yaml" not in commands.split("export KUBECONFIG", 1)[1]
    prerequisites = _quickstart().split("**Prerequisites:**", 1)[1].split("\n\n", 1)[0]
    assert "Helm" in prerequisites and "k3s v1.30" in prerequisites


def test_chart_comes_from_the_release_and_is_tested() -> None:
    commands = _commands()
    assert (
        f"helm install {RELEASE_NAME} oci://ghcr.io/edge-inference/charts/edge-inference-operator "
        f"--version {project_version()}" in commands
    )
    assert not re.search(r"helm install \S+ \.?/?charts/", commands)  # no checkout needed
    assert f"helm test {RELEASE_NAME} --namespace {NAMESPACE}" in commands
    assert f"--namespace {NAMESPACE}" in commands


def test_node_labels_are_the_ones_the_operator_selects() -> None:
    assert f"{LABEL_CAMERA_STORAGE}=true {LABEL_ACCELERATOR}=cpu" in _commands()


def test_the_applied_job_is_valid_allowed_and_uses_a_baked_in_model() -> None:
    job = _applied_job()
    spec = InferenceJobSpec.model_validate(job["spec"])
    allowed = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["allowedHostPaths"]
    assert any(spec.input.host_path.startswith(prefix + "/") for prefix in allowed)
    assert f"sudo mkdir -p {spec.input.host_path}" in _commands()
    # The released CPU worker bakes yolov5nu in at build time (fetched, sha256-checked).
    assert spec.model.name == "yolov5nu"
    assert "yolov5nu" in (REPO_ROOT / "inference-image" / "Dockerfile").read_text()
    assert [a.type for a in spec.accelerators] == ["cpu"]


def test_minio_names_match_what_the_chart_renders() -> None:
    objects = render_chart({"minio": {"enabled": True}})
    (service,) = find_objects(objects, "Service", f"{RELEASE_NAME}-minio")
    (secret,) = find_objects(objects, "Secret", f"{RELEASE_NAME}-minio")
    assert {"accessKey", "secretKey"} <= set(secret["data"])
    port = service["spec"]["ports"][0]["port"]
    job = _applied_job()
    assert job["spec"]["output"]["endpoint"] == f"{service['metadata']['name']}.{NAMESPACE}:{port}"
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["minio"]
    assert job["spec"]["output"]["bucket"] in values["buckets"]
    commands = _commands()
    assert f"get secret {secret['metadata']['name']}" in commands
    assert f"--image={values['mcImage']['repository']}:{values['mcImage']['tag']}" in commands
    assert f"@{service['metadata']['name']}:{port}" in commands


def test_air_gap_section_imports_the_released_images_into_k3s() -> None:
    air_gap = _quickstart().split("**Air-gapped nodes.**", 1)[1]
    assert "sudo k3s ctr images import" in air_gap
    assert "/etc/rancher/k3s/registries.yaml" in air_gap
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for image in (values["minio"]["image"], values["minio"]["mcImage"]):
        assert f"{image['repository']}:{image['tag']}" in air_gap
    images = set(re.findall(r'"(ghcr\.io/edge-inference/[a-z-]+):\$\{VERSION\}"', air_gap))
    assert images == {values["operator"]["image"]["repository"], values["workerImages"]["cpu"]["repository"]}
    assert f"VERSION={project_version()}" in air_gap


def test_the_checkout_path_for_development_is_kept() -> None:
    quickstart = _quickstart()
    assert "make images" in quickstart and "charts/edge-inference-operator" in quickstart
