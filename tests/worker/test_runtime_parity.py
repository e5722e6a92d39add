"""The torch-free detector (runtime.py) against ultralytics' own predictor, on the same export and frames.

The bundled model, exported to ONNX and to OpenVINO by the image build's step, runs through both on
every 4th frame of the synthetic test footage, at image sizes 320 and 640: the ONNX file on ONNX Runtime
and on OpenVINO (the x86 CPU image has OpenVINO alone), the OpenVINO folder on OpenVINO. Each box of one side
must match one box of the other: IoU >= 0.9, the same class, confidence within 0.03; a box left
unmatched on either side may not be above 0.3 confidence.
"""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
from edge_inference_api.models import ModelSpec
from edge_inference_worker import runtime as runtimes
from edge_inference_worker.runtime import ExportedModelDetector
from support.worker_harness import MODEL

FRAME_STEP = 4
MIN_IOU = 0.9
MAX_CONFIDENCE_GAP = 0.03
UNMATCHED_CONFIDENCE = 0.3
CONFIDENCE = 0.25  # both sides' threshold: ultralytics' default, and the worker's
# case -> (export, the runtime that runs it)
CASES = {
    "onnx-on-onnxruntime": (f"{MODEL}.onnx", "onnxruntime"),
    "onnx-on-openvino": (f"{MODEL}.onnx", "openvino"),
    "ir-on-openvino": (f"{MODEL}_openvino_model", "openvino"),
}


@pytest.fixture(scope="module")
def frames(short_clip) -> list[np.ndarray]:
    with av.open(str(short_clip.path)) as container:
        decoded = [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if i % FRAME_STEP == 0]
    assert len(decoded) >= 50
    return decoded


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(ours: list[tuple], theirs: list[tuple]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Greedy one-to-one pairing by IoU within a class: (pairs, ours unmatched, theirs unmatched)."""
    candidates = sorted(
        ((_iou(a[2], b[2]), i, j) for i, a in enumerate(ours) for j, b in enumerate(theirs) if a[0] == b[0]),
        reverse=True,
    )
    pairs, used_ours, used_theirs = [], set(), set()
    for iou, i, j in candidates:
        if i not in used_ours and j not in used_theirs and iou > 0:
            pairs.append((ours[i], theirs[j], iou))
            used_ours.add(i)
            used_theirs.add(j)
    left_ours = [d for i, d in enumerate(ours) if i not in used_ours]
    left_theirs = [d for j, d in enumerate(theirs) if j not in used_theirs]
    return pairs, left_ours, left_theirs


@pytest.mark.parametrize("image_size", [320, 640])
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_free_boxes_match_ultralytics_predictions(
    case, image_size, frames, built_in_models, offline_env, monkeypatch
):
    os.environ.update({k: offline_env[k] for k in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR")})
    from ultralytics import YOLO

    name, runtime = CASES[case]
    export = built_in_models / name
    if runtime == "openvino":  # as in the x86 CPU image, where ONNX Runtime is not installed
        monkeypatch.setattr(runtimes, "installed", lambda r: r == "openvino")
    spec = ModelSpec(image_size=image_size, confidence=CONFIDENCE, device="cpu")
    detector = ExportedModelDetector(export, spec, [], {"OMP_NUM_THREADS": "1"})
    assert detector.backend == runtime
    reference = YOLO(str(export), task="detect")
    matched = 0
    for index, frame in enumerate(frames):
        ours = [(d.cls, d.confidence, d.box) for d in detector.detect([frame])[0]]
        result = reference.predict(frame, imgsz=image_size, conf=CONFIDENCE, iou=spec.iou, verbose=False)[0]
        theirs = [
            (result.names[int(c)], float(p), tuple(b))
            for b, p, c in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist(),
                               strict=True)
        ]
        pairs, left_ours, left_theirs = _match(ours, theirs)
        for a, b, iou in pairs:
            assert iou >= MIN_IOU, f"frame {index}: {a} vs {b}, IoU {iou:.3f}"
            assert abs(a[1] - b[1]) <= MAX_CONFIDENCE_GAP, f"frame {index}: {a} vs {b}"
        for side, left in (("torch-free", left_ours), ("ultralytics", left_theirs)):
            assert all(d[1] <= UNMATCHED_CONFIDENCE for d in left), f"frame {index}: {side} alone found {left}"
        matched += len(pairs)
    assert matched >= 40  # the footage has people and cars in most of these frames: both sides found them
