"""One side-by-side detection run for tests/worker/test_runtime_parity.py, in a process of its own.

    python tests/support/parity_run.py EXPORT IMAGE_SIZE RUNTIME VIDEO FRAME_STEP CONFIDENCE IOU

Prints one JSON list per analysed frame: [torch-free detections, ultralytics' detections], each a list of
[class, confidence, [x1, y1, x2, y2]]. RUNTIME "openvino" with an ONNX file hides ONNX Runtime from the
torch-free side while it loads, as in the amd64 CPU image. A process of its own: OpenVINO's thread pools
left in a pytest process crashed the Helm SDK's Go runtime that tests/images loads later in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":
    export, size, runtime, video, step, confidence, iou = sys.argv[1:]
    import av
    from edge_inference_api.models import ModelSpec
    from edge_inference_worker.runtime import ExportedModelDetector

    spec = ModelSpec(image_size=int(size), confidence=float(confidence), iou=float(iou), device="cpu")
    if runtime == "openvino":  # the torch-free side picks its runtime as the amd64 image, without ONNX Runtime
        sys.modules["onnxruntime"] = None  # type: ignore[assignment]
    detector = ExportedModelDetector(Path(export), spec, [], {"OMP_NUM_THREADS": "1"})
    sys.modules.pop("onnxruntime", None)  # ultralytics' side runs an ONNX file on ONNX Runtime
    assert detector.backend == runtime, f"{export} ran on {detector.backend}, not {runtime}"
    from ultralytics import YOLO

    reference = YOLO(export, task="detect")
    with av.open(video) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % int(step):
                continue
            image = frame.to_ndarray(format="bgr24")
            ours = [[d.cls, d.confidence, list(d.box)] for d in detector.detect([image])[0]]
            boxes = reference.predict(image, imgsz=int(size), conf=float(confidence), iou=float(iou),
                                      verbose=False)[0].boxes
            names = reference.names
            theirs = [[names[int(c)], float(p), b]
                      for b, p, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)]
            print(json.dumps([ours, theirs]))
