"""`edge-inference run` as a pod runs it: WorkerConfig JSON in EDGE_INFERENCE_CONFIG, node name and
S3 credentials from the environment, custom weights fetched from S3 and verified by sha256, and exported
once by `edge-inference prepare-model` for the torch-free worker."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

from edge_inference_api.models import S3ModelSource, WorkerConfig
from edge_inference_worker.detector import PACKAGE_MODEL_DIR
from support.worker_harness import IMAGE_SIZE, assert_events_match_truth, event_keys, log_lines

WEIGHTS = PACKAGE_MODEL_DIR / "synthetic-yolov5n.pt"
TORCH_FREE = Path(__file__).resolve().parents[1] / "support" / "torch_free.py"  # as the CPU image runs it


def pod_config(s3, tmp_path, key: str, sha256: str, prefix: str) -> WorkerConfig:
    return WorkerConfig.model_validate({
        "job": {"namespace": "shop", "name": "doors"},
        "node": "set-by-the-operator",
        "mode": "Batch",
        "inputDir": str(tmp_path / "videos"),
        "model": {
            "name": "doors-detector.pt",
            "source": S3ModelSource(bucket=s3.bucket, key=key, sha256=sha256).model_dump(
                by_alias=True),
            "imageSize": IMAGE_SIZE,
            "device": "cpu",
        },
        "sink": s3.s3_sink(prefix=prefix).model_dump(by_alias=True),
        "stateDir": str(tmp_path / "state"),
        "metricsPort": 0,
    })


def run_pod(config: WorkerConfig, env: dict[str, str]) -> subprocess.CompletedProcess:
    pod_env = {**env, "EDGE_INFERENCE_CONFIG": config.model_dump_json(by_alias=True),
               "EDGE_INFERENCE_NODE_NAME": "edge-node-7"}
    return subprocess.run([sys.executable, "-m", "edge_inference_worker.cli"], env=pod_env, capture_output=True,
                          text=True, timeout=240)


def test_pod_run_with_weights_from_s3(short_clip, worker_env, s3_server_module, tmp_path):
    s3 = s3_server_module
    data = WEIGHTS.read_bytes()
    s3.client().put_object(s3.bucket, "models/good/doors-detector.pt", io.BytesIO(data), len(data))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "door.mp4").write_bytes(short_clip.path.read_bytes())
    sha256 = hashlib.sha256(data).hexdigest()
    config = pod_config(s3, tmp_path, "models/good/doors-detector.pt", sha256, "pods")
    result = run_pod(config, {**worker_env, **s3.credentials_env()})
    assert result.returncode == 0, result.stderr[-3000:]
    keys = event_keys(s3.list_keys("pods/"))
    assert len(keys) == 8 and all(k.startswith("pods/shop/doors/edge-node-7/") for k in keys)
    documents = [json.loads(s3.get(k)) for k in keys if k.endswith(".json")]
    assert_events_match_truth(documents, short_clip.truth)
    assert {d["model"]["name"] for d in documents} == {"doors-detector.pt"}
    assert {d["model"]["sha256"] for d in documents} == {sha256}
    assert (tmp_path / "state" / "models" / sha256 / "doors-detector.pt").read_bytes() == data  # cached
    started = [line for line in log_lines(result.stderr) if line["msg"] == "worker started"]
    assert started[0]["node"] == "edge-node-7" and started[0]["job"] == {"namespace": "shop", "name": "doors"}


def test_weights_with_the_wrong_sha256_are_refused(worker_env, s3_server_module, tmp_path):
    s3 = s3_server_module
    data = b"not the weights you are looking for"
    s3.client().put_object(s3.bucket, "models/bad/doors-detector.pt", io.BytesIO(data), len(data))
    (tmp_path / "videos").mkdir()
    config = pod_config(s3, tmp_path, "models/bad/doors-detector.pt", "0" * 64, "refused")
    result = run_pod(config, {**worker_env, **s3.credentials_env()})
    assert result.returncode == 3
    assert "cannot start: model s3://events/models/bad/doors-detector.pt" in result.stderr
    assert "expected 0000" in result.stderr and "Traceback" not in result.stderr


def test_pod_with_pt_weights_runs_torch_free_after_the_export_init_container(
    short_clip, worker_env, s3_server_module, tmp_path
):
    """The operator's pod: `prepare-model` (the export image, init container), then the torch-free worker."""
    s3 = s3_server_module
    data = WEIGHTS.read_bytes()
    s3.client().put_object(s3.bucket, "models/init/doors-detector.pt", io.BytesIO(data), len(data))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "door.mp4").write_bytes(short_clip.path.read_bytes())
    sha256 = hashlib.sha256(data).hexdigest()
    config = pod_config(s3, tmp_path, "models/init/doors-detector.pt", sha256, "init")
    env = {**worker_env, **s3.credentials_env(), "EDGE_INFERENCE_CONFIG": config.model_dump_json(by_alias=True),
           "EDGE_INFERENCE_NODE_NAME": "edge-node-7"}
    init = subprocess.run([sys.executable, "-m", "edge_inference_worker.cli", "prepare-model"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr[-3000:]
    assert (tmp_path / "state" / "models" / sha256 / "export").is_dir()
    worker = subprocess.run([sys.executable, str(TORCH_FREE)], env=env, capture_output=True, text=True, timeout=240)
    assert worker.returncode == 0, worker.stderr[-3000:]
    started = [line for line in log_lines(worker.stderr) if line["msg"] == "worker started"]
    assert started[0]["backend"] in ("openvino", "onnxruntime")
    documents = [json.loads(s3.get(k)) for k in event_keys(s3.list_keys("init/")) if k.endswith(".json")]
    assert {d["model"]["sha256"] for d in documents} == {sha256}
    assert_events_match_truth(documents, short_clip.truth)
