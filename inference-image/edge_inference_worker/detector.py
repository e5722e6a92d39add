"""The detector behind one small interface, with the ultralytics backend.

The model is loaded once. Built-in model names resolve to `<EDGE_INFERENCE_MODEL_DIR or this
package's models/>/<name>.pt`; `.pt`, `.onnx` and OpenVINO export folders load through ultralytics.
Pods are offline, so a missing model is a clear error, never a download.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from edge_inference_api.models import Device, ModelSpec

from .cpus import available_cpus
from .events import Detection

ENV_MODEL_DIR = "EDGE_INFERENCE_MODEL_DIR"
PACKAGE_MODEL_DIR = Path(__file__).parent / "models"
WEIGHT_SUFFIXES = (".pt", ".onnx", "_openvino_model")
# Classes that are only blurred are detected at this lower confidence: a face half hidden is
# still a face, and redaction errs on the side of blurring.
BLUR_CONFIDENCE = 0.1


class ModelError(Exception):
    """The model cannot be found or loaded, or does not know a configured class."""


class Detector(Protocol):
    """What the pipeline needs from a detector."""

    name: str
    sha256: str
    batch_size: int

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Boxes per image (BGR, any size), in that image's pixels, for the configured classes only."""
        ...


def model_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ[ENV_MODEL_DIR]) if environ.get(ENV_MODEL_DIR) else PACKAGE_MODEL_DIR


def resolve_model(name: str, directory: Path) -> Path:
    """Where the weights of a built-in model name (or an explicit weights path) are."""
    explicit = Path(name).expanduser()
    if explicit.suffix in (".pt", ".onnx") or name.endswith("_openvino_model") or "/" in name:
        candidates = [explicit] if explicit.is_absolute() or "/" in name else [directory / name, explicit]
    else:
        candidates = [directory / f"{name}.pt"]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise ModelError(
        f"model {name!r} not found (looked for {', '.join(str(c) for c in candidates)}); "
        f"the worker never downloads: bake the weights into the image or set model.source"
    )


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, or of an export folder's files in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def loadable_path(weights: Path) -> Path:
    """A path to `weights` that ultralytics loads as is.

    ultralytics rewrites any `...yolov5n.pt` path that has no letter "u" in it to `...yolov5nu.pt`
    (its legacy YOLOv5 names) and then looks for, or downloads, that other file. A link from a
    private folder whose name has a "u" keeps the file we resolved and hashed.
    """
    from ultralytics.utils.checks import check_yolov5u_filename

    if check_yolov5u_filename(str(weights), verbose=False) == str(weights):
        return weights
    link = Path(tempfile.mkdtemp(prefix="ultralytics-unrenamed-")) / weights.name
    link.symlink_to(weights)
    return link


def cpu_threads(environ: Mapping[str, str]) -> int:
    """Threads for CPU inference: OMP_NUM_THREADS if set, else the CPUs this container may use.

    torch defaults to every core of the host, which oversubscribes a pod limited by a CPU quota.
    """
    if environ.get("OMP_NUM_THREADS", "").isdigit() and int(environ["OMP_NUM_THREADS"]) > 0:
        return int(environ["OMP_NUM_THREADS"])
    return available_cpus()


def pick_device(device: Device) -> str:
    import torch

    if device == Device.CUDA or (device == Device.AUTO and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelError("device cuda requested but no CUDA device is visible")
        return "cuda:0"
    return "cpu"


class UltralyticsDetector:
    """ultralytics YOLO, loaded once; half precision and batches on CUDA, one frame at a time on CPU."""

    def __init__(
        self,
        weights: Path,
        spec: ModelSpec,
        blur_classes: Sequence[str],
        environ: Mapping[str, str],
        name: str | None = None,
    ) -> None:
        import torch
        from ultralytics import YOLO

        self.device = pick_device(spec.device)
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads(environ))
        self.name = name or spec.name
        self.sha256 = weights_sha256(weights)
        self.spec = spec
        try:
            self._model = YOLO(str(loadable_path(weights)), task="detect")
        except Exception as exc:  # ultralytics raises many kinds for a bad file; all mean "cannot load"
            raise ModelError(f"cannot load model {weights}: {exc}") from None
        names: dict[int, str] = dict(self._model.names)
        ids = {label: index for index, label in names.items()}
        unknown = sorted((set(spec.classes) | set(blur_classes)) - set(ids))
        if unknown:
            raise ModelError(f"classes {unknown} are not known to model {self.name} (it has {sorted(ids)})")
        self._names = names
        self._interest = frozenset(spec.classes)
        self._blur = frozenset(blur_classes)
        self._class_ids = sorted({ids[c] for c in self._interest | self._blur})
        self._confidence = min(spec.confidence, BLUR_CONFIDENCE) if self._blur else spec.confidence
        self._half = self.device.startswith("cuda")
        self.batch_size = spec.batch_size if self._half else 1

    def warm_up(self, width: int = 640, height: int = 360) -> None:
        """One forward pass on a blank frame, so the first real frame is not the slow one."""
        self.detect([np.zeros((height, width, 3), dtype=np.uint8)])

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        results = self._model.predict(
            list(images),
            imgsz=self.spec.image_size,
            conf=self._confidence,
            iou=self.spec.iou,
            classes=self._class_ids,
            device=self.device,
            **({"quantize": "fp16"} if self._half else {}),
            batch=len(images),
            verbose=False,
        )
        out = []
        for result in results:
            boxes = result.boxes
            xyxy = boxes.xyxy.cpu().numpy().tolist()
            confs = boxes.conf.cpu().numpy().tolist()
            classes = boxes.cls.cpu().numpy().astype(int).tolist()
            detections = []
            for box, conf, cls_id in zip(xyxy, confs, classes, strict=True):
                label = self._names[cls_id]
                if (label in self._interest and conf >= self.spec.confidence) or label in self._blur:
                    detections.append(Detection(label, round(float(conf), 4), tuple(round(v, 1) for v in box)))
            out.append(detections)
        return out
