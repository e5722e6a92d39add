"""The worker runs an ONNX export of the model (what ultralytics loads with onnxruntime) as it runs the .pt."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest
from edge_inference_worker.detector import PACKAGE_MODEL_DIR
from support.worker_harness import (
    IMAGE_SIZE,
    MODEL,
    assert_events_match_truth,
    detect_args,
    event_documents,
    run_worker,
)

EXPORT = """
import sys
from ultralytics import YOLO
print(YOLO(sys.argv[1], task="detect").export(format="onnx", imgsz=int(sys.argv[2]), simplify=False))
"""


@pytest.fixture(scope="module")
def onnx_weights(tmp_path_factory, worker_env):
    """The bundled .pt exported to ONNX with ultralytics' own exporter (a subprocess: export changes globals)."""
    folder = tmp_path_factory.mktemp("onnx")
    # A name without "yolov5": ultralytics rewrites "...yolov5n.pt" to the "...u.pt" legacy name.
    source = folder / "synthetic.pt"
    shutil.copy(PACKAGE_MODEL_DIR / f"{MODEL}.pt", source)
    env = {**worker_env, "ORT_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [sys.executable, "-c", EXPORT, str(source), str(IMAGE_SIZE)],
        env=env, capture_output=True, text=True, timeout=300, cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    weights = folder / "synthetic.onnx"
    assert weights.stat().st_size > 0
    return weights


def test_events_from_the_onnx_export_match_the_ground_truth(onnx_weights, short_clip, worker_env, tmp_path):
    args = detect_args(short_clip.path.parent, str(tmp_path / "events"), tmp_path / "state")
    args[args.index("--model") + 1] = str(onnx_weights)
    result = run_worker(args, {**worker_env, "ORT_DISABLE_TELEMETRY": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    documents = list(event_documents(tmp_path / "events").values())
    digest = hashlib.sha256(onnx_weights.read_bytes()).hexdigest()
    assert documents and {doc["model"]["sha256"] for doc in documents} == {digest}  # the ONNX file ran
    assert_events_match_truth(documents, short_clip.truth)
