"""The worker without torch: what the CPU image runs.

- On an export, the worker never imports torch or ultralytics (checked in its own process).
- Where they cannot be imported at all, `.pt` weights are refused with the fix, until
  `edge-inference prepare-model` (the export image's init container) has exported them into the
  node's cache; then the same configuration runs from the cached export and finds the truth.
- A GPU given to the pod with CUDA not working is a loud start-up failure, never a quiet CPU run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from edge_inference_api.models import WorkerConfig
from edge_inference_worker.checksums import sha256_of
from edge_inference_worker.detector import EXPORT_STEM, PACKAGE_MODEL_DIR, export_folder
from support.worker_harness import (
    IMAGE_SIZE,
    MODEL,
    assert_events_match_truth,
    detect_args,
    event_documents,
    log_lines,
    run_worker,
)

TORCH_FREE = Path(__file__).resolve().parents[1] / "support" / "torch_free.py"
HEAVY = ("torch", "torchvision", "ultralytics")

IMPORTS_AFTER_RUN = """
import sys
from edge_inference_worker.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision", "ultralytics"})
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def _torch_free(args: list[str]) -> list[str]:
    """The worker's arguments, run as the torch-free image would (torch and ultralytics unimportable)."""
    assert args[1:3] == ["-m", "edge_inference_worker.cli"]
    return [sys.executable, str(TORCH_FREE), *args[3:]]


def test_worker_on_an_export_never_imports_torch(short_clip, worker_env, tmp_path):
    args = detect_args(short_clip.path.parent, str(tmp_path / "events"), tmp_path / "state")
    result = run_worker([sys.executable, "-c", IMPORTS_AFTER_RUN, *args[3:]], worker_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=\n" in result.stderr  # nothing of torch, torchvision or ultralytics was imported
    started = next(line for line in log_lines(result.stderr) if line["msg"] == "worker started")
    assert started["backend"] in ("openvino", "onnxruntime") and started["device"] == "cpu"
    assert_events_match_truth(list(event_documents(tmp_path / "events").values()), short_clip.truth)


def _pod_env(tmp_path: Path, worker_env: dict[str, str], weights: Path) -> dict[str, str]:
    config = WorkerConfig.model_validate({
        "job": {"namespace": "shop", "name": "doors"},
        "node": "edge-node-7",
        "mode": "Batch",
        "inputDir": str(tmp_path / "videos"),
        "model": {"name": str(weights), "imageSize": IMAGE_SIZE, "device": "auto"},
        "sink": {"type": "directory", "path": str(tmp_path / "events")},
        "stateDir": str(tmp_path / "state"),
        "metricsPort": 0,
    })
    return {**worker_env, "EDGE_INFERENCE_CONFIG": config.model_dump_json(by_alias=True)}


def test_pt_weights_run_torch_free_once_prepare_model_exported_them(short_clip, worker_env, tmp_path):
    weights = tmp_path / "weights" / "doors.pt"
    weights.parent.mkdir()
    shutil.copy(PACKAGE_MODEL_DIR / f"{MODEL}.pt", weights)
    (tmp_path / "videos").mkdir()
    shutil.copy(short_clip.path, tmp_path / "videos" / "door.mp4")
    env = _pod_env(tmp_path, worker_env, weights)
    worker = [sys.executable, str(TORCH_FREE)]

    refused = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("edge-inference: cannot start:") and "edge-inference prepare-model" in line

    # The export image's init container: same environment and state folder, torch available.
    prepare = [sys.executable, "-m", "edge_inference_worker.cli", "prepare-model"]
    prepared = subprocess.run(prepare, env=env, capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    folder = export_folder(tmp_path / "state" / "models", sha256_of(weights))
    assert (folder / f"{EXPORT_STEM}.onnx").is_file() and (folder / f"{EXPORT_STEM}_openvino_model").is_dir()
    again = subprocess.run(prepare, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "model already exported" in again.stderr

    result = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    started = next(line for line in log_lines(result.stderr) if line["msg"] == "worker started")
    assert started["backend"] in ("openvino", "onnxruntime")
    documents = list(event_documents(tmp_path / "events").values())
    assert {d["model"]["sha256"] for d in documents} == {sha256_of(weights)}  # the user's weights, exported
    assert_events_match_truth(documents, short_clip.truth)


def test_prepare_model_leaves_built_in_models_to_the_worker_image(worker_env, tmp_path):
    (tmp_path / "videos").mkdir()
    env = _pod_env(tmp_path, worker_env, tmp_path / "unused.pt")
    config = json.loads(env["EDGE_INFERENCE_CONFIG"])
    config["model"]["name"] = "yolov5nu"  # baked into the worker image, not into the export image
    env["EDGE_INFERENCE_CONFIG"] = json.dumps(config)
    prepare = [sys.executable, "-m", "edge_inference_worker.cli", "prepare-model"]
    result = subprocess.run(prepare, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line["msg"].startswith("built-in model") for line in log_lines(result.stderr))
    assert not (tmp_path / "state" / "models").exists()


def test_a_gpu_given_to_the_pod_without_working_cuda_fails_loudly(worker_env, tmp_path):
    (tmp_path / "videos").mkdir()
    args = detect_args(tmp_path / "videos", str(tmp_path / "events"), tmp_path / "state")
    args[args.index("--device") + 1] = "auto"
    # What NVIDIA's device plugin sets for a pod that holds a GPU; this machine has no working CUDA.
    message = tmp_path / "termination-log"  # where the kubelet reads the reason the operator shows
    env = {**worker_env, "NVIDIA_VISIBLE_DEVICES": "GPU-5c1d0b1e-7a53-4a6e-9f43-0d4b4b6f2a10",
           "EDGE_INFERENCE_TERMINATION_LOG": str(message)}
    for command in (args, _torch_free(args)):  # the torch path and the torch-free one
        message.unlink(missing_ok=True)
        result = run_worker(command, env, timeout=120)
        assert result.returncode == 3, result.stderr[-3000:]
        (line,) = result.stderr.strip().splitlines()
        assert "this pod was given a GPU" in line and "CUDA does not work" in line
        assert message.read_text() == line.removeprefix("edge-inference: ")
    plain = run_worker(args, worker_env, timeout=120)  # no GPU given: auto means the CPU
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert json.loads(plain.stderr.splitlines()[0])["device"] == "cpu"

