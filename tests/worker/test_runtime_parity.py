"""The torch-free detector (runtime.py) against ultralytics' own predictor, on the same export and frames.

The bundled model, exported to ONNX and to OpenVINO by the image build's step, runs through both on
every 4th frame of the synthetic test footage, at image sizes 320 and 640: the ONNX file on ONNX Runtime
and on OpenVINO (the x86 CPU image has OpenVINO alone), the OpenVINO folder on OpenVINO. Each box of one side
must match one box of the other: IoU >= 0.9, the same class, confidence within 0.03; a box left
unmatched on either side may not be above 0.3 confidence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from edge_inference_api.models import ModelSpec
from support.worker_harness import MODEL

PARITY_RUN = Path(__file__).resolve().parents[1] / "support" / "parity_run.py"
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
def test_torch_free_boxes_match_ultralytics_predictions(case, image_size, short_clip, built_in_models, offline_env):
    name, runtime = CASES[case]
    command = [sys.executable, str(PARITY_RUN), str(built_in_models / name), str(image_size), runtime,
               str(short_clip.path), str(FRAME_STEP), str(CONFIDENCE), str(ModelSpec().iou)]
    result = subprocess.run(command, env=offline_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    frames = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(frames) >= 50
    matched = 0
    for index, (ours, theirs) in enumerate(frames):
        pairs, left_ours, left_theirs = _match([tuple(d) for d in ours], [tuple(d) for d in theirs])
        for a, b, iou in pairs:
            assert iou >= MIN_IOU, f"frame {index}: {a} vs {b}, IoU {iou:.3f}"
            assert abs(a[1] - b[1]) <= MAX_CONFIDENCE_GAP, f"frame {index}: {a} vs {b}"
        for side, left in (("torch-free", left_ours), ("ultralytics", left_theirs)):
            assert all(d[1] <= UNMATCHED_CONFIDENCE for d in left), f"frame {index}: {side} alone found {left}"
        matched += len(pairs)
    assert matched >= 40  # the footage has people and cars in most of these frames: both sides found them
