"""One set of names and one version: the release workflow, docker-bake.hcl, the build script, the chart's
defaults, the Argo CD examples and the README name the same images, tags, registry and chart repository."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from support.helm import CHART_DIR, RELEASE_NAME, find_objects, render_chart
from support.release import (
    REPO_ROOT,
    bake_groups,
    bake_targets,
    bake_variables,
    build_script_images,
    load_script,
    project_version,
)

REGISTRY = "ghcr.io/edge-inference"
CHART_REPOSITORY = f"oci://{REGISTRY}/charts"
# Which image the chart's defaults run, per place in the chart.
CHART_IMAGES = {"operator", "worker", "worker-cuda", "worker-export"}


def _release_env() -> dict[str, str]:
    return yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())["env"]


def _build_script_images() -> dict[str, str]:
    """image tag -> Dockerfile, as scripts/build-images.sh would build every bake target."""
    return build_script_images(" ".join(bake_groups()["default"]))


def _chart_image_refs() -> set[str]:
    objects = render_chart()
    (container,) = find_objects(objects, "Deployment", RELEASE_NAME)[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    worker_images = set(json.loads(env["EDGE_INFERENCE_WORKER_IMAGES"]).values())
    return {container["image"], env["EDGE_INFERENCE_EXPORT_IMAGE"]} | worker_images


def test_bake_tags_every_image_registry_slash_target_colon_version() -> None:
    variables = bake_variables()
    assert variables["REGISTRY"] == REGISTRY == _release_env()["REGISTRY"]
    assert variables["VERSION"] == project_version()
    for target in bake_targets().values():
        assert target.tags == (f"{REGISTRY}/{target.name}:{project_version()}",), target.name


def test_build_script_builds_the_bake_targets_from_the_same_dockerfiles() -> None:
    expected = {t.tags[0]: t.dockerfile for t in bake_targets().values()}
    assert _build_script_images() == expected


def test_chart_defaults_run_released_images() -> None:
    released = {t.tags[0] for t in bake_targets().values()}
    refs = _chart_image_refs()
    assert refs <= released, refs - released
    assert {ref.split("/")[-1].split(":")[0] for ref in refs} == CHART_IMAGES


def test_chart_repository_is_named_the_same_everywhere() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    chart_ref = f"{CHART_REPOSITORY}/{chart['name']}"
    assert _release_env()["CHART_REPOSITORY"] == CHART_REPOSITORY
    app = yaml.safe_load((REPO_ROOT / "examples" / "argocd" / "application-operator.yaml").read_text())
    assert app["spec"]["source"]["repoURL"] == chart_ref
    assert load_script("gen_chart_readme.py").CHART_REPOSITORY == CHART_REPOSITORY
    assert f"oci://{load_script('release-notes.py').CHART_REF}" == chart_ref
    readme = (REPO_ROOT / "README.md").read_text()
    installs = re.findall(r"helm install \S+ (oci://\S+) --version (\S+)", readme)
    assert installs and set(installs) == {(chart_ref, project_version())}


@pytest.mark.parametrize(
    ("target", "platforms"),
    [
        ("operator", ("linux/amd64", "linux/arm64")),
        ("worker", ("linux/amd64", "linux/arm64")),
        ("worker-cuda", ("linux/amd64",)),
        ("worker-jetson", ("linux/arm64",)),
        ("worker-export", ("linux/amd64", "linux/arm64")),
    ],
)
def test_each_image_builds_for_its_platforms_with_sbom_and_provenance(target: str, platforms: tuple) -> None:
    built = bake_targets()[target]
    assert built.platforms == platforms
    assert "type=sbom" in built.attest and "type=provenance,mode=max" in built.attest


def test_every_bake_target_has_its_dockerfile_and_dockerignore() -> None:
    for target in bake_targets().values():
        dockerfile = REPO_ROOT / target.dockerfile
        assert dockerfile.is_file(), f"{target.name}: {target.dockerfile} is missing"
        assert dockerfile.with_name(dockerfile.name + ".dockerignore").is_file(), target.name


def test_worker_images_get_the_recorded_weights_checksum() -> None:
    targets = bake_targets()
    for name in ("worker", "worker-cuda", "worker-jetson"):
        assert set(targets[name].args) == {"YOLOV5NU_URL", "YOLOV5NU_SHA256"}, name
        url = targets[name].args["YOLOV5NU_URL"]
        assert url.endswith("/yolov5nu.pt")
        dockerfile = REPO_ROOT / targets[name].dockerfile
        declared = re.findall(r"^ARG YOLOV5NU_URL=(\S+)$", dockerfile.read_text(), re.M) if dockerfile.exists() else []
        assert declared in ([], [url]), f"{name}: the Dockerfile's default URL differs from docker-bake.hcl's"
    record = REPO_ROOT / "inference-image" / "yolov5nu.pt.sha256"
    if record.exists():  # written by the release workflow at the first fetch, never by hand
        assert re.fullmatch(r"[0-9a-f]{64}  yolov5nu\.pt\n", record.read_text())
