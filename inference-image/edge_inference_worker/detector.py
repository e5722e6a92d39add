"""The detector behind one small interface; which backend runs a model; the ultralytics (torch) backend.

The model is loaded once. A built-in model name resolves to its exports in
`<EDGE_INFERENCE_MODEL_DIR or this package's models/>` (`<name>_openvino_model/`, `<name>.onnx`, made
when the image is built) or to `<name>.pt`. Exports run torch-free (`runtime.py`); `.pt` weights run
from their cached export, or through ultralytics where torch is installed. Pods are offline, so a
missing model is a clear error, never a download.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from edge_inference_api.models import Device, ModelSpec

from .checksums import sha256_of
from .cpus import available_cpus
from .events import Detection, Interest

ENV_MODEL_DIR = "EDGE_INFERENCE_MODEL_DIR"
PACKAGE_MODEL_DIR = Path(__file__).parent / "models"
ENV_NVIDIA_DEVICES = "NVIDIA_VISIBLE_DEVICES"
# The file name of the exports `edge-inference prepare-model` caches for a `.pt` (weights.py).
EXPORT_STEM = "model"
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
    device: str  # "cpu" or "cuda:0"
    backend: str  # what runs the model: onnxruntime, openvino or torch

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Boxes per image (BGR, any size), in that image's pixels, for the configured classes only."""
        ...

    def warm_up(self, width: int = 640, height: int = 360) -> None:
        """One forward pass on a blank frame, so the first real frame is not the slow one."""
        ...


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (runtimes put whole stack dumps in theirs)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def model_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ[ENV_MODEL_DIR]) if environ.get(ENV_MODEL_DIR) else PACKAGE_MODEL_DIR


def resolve_model(
    name: str, directory: Path, device: Device = Device.AUTO, environ: Mapping[str, str] | None = None
) -> Path:
    """Where the weights of a built-in model name (its preferred export first), or an explicit weights path, are."""
    explicit = Path(name).expanduser()
    if explicit.suffix in (".pt", ".onnx", ".xml") or name.endswith("_openvino_model") or "/" in name:
        candidates = [explicit] if explicit.is_absolute() or "/" in name else [directory / name, explicit]
    else:
        candidates = [*export_order(exports_in(directory, name), device, environ), directory / f"{name}.pt"]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise ModelError(
        f"model {name!r} not found (looked for {', '.join(str(c) for c in candidates)}); "
        f"the worker never downloads: bake the weights into the image or set model.source"
    )


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


def gpu_requested(environ: Mapping[str, str]) -> bool:
    """Whether this pod was given a GPU: NVIDIA's device plugin sets NVIDIA_VISIBLE_DEVICES for one."""
    return environ.get(ENV_NVIDIA_DEVICES, "").strip().lower() not in ("", "void", "none")


def use_cuda(device: Device, environ: Mapping[str, str], cuda_works: Callable[[], bool]) -> bool:
    """Whether to run on CUDA; a ModelError when CUDA is required (asked for, or a GPU given) but does not work.

    `device: auto` in a pod that holds a GPU must not quietly fall back to the CPU: that pod would
    hold a GPU it never uses and run at a tenth of the speed.
    """
    if device == Device.CPU:
        return False
    if device == Device.CUDA and not cuda_works():
        raise ModelError("device cuda requested but CUDA does not work here (no visible device, or the driver "
                         "is too old for this image's CUDA)")
    if device == Device.AUTO and gpu_requested(environ) and not cuda_works():
        raise ModelError(f"this pod was given a GPU ({ENV_NVIDIA_DEVICES}={environ[ENV_NVIDIA_DEVICES]}) but CUDA "
                         f"does not work (driver too old for this image's CUDA, or no NVIDIA runtime); "
                         f"refusing to run on the CPU instead")
    return device == Device.CUDA or cuda_works()


class ClassFilter:
    """The model's class names against the configured classes: which ids to keep, at what confidence."""

    def __init__(self, names: Mapping[int, str], spec: ModelSpec, blur_classes: Sequence[str], model: str) -> None:
        ids = {label: index for index, label in names.items()}
        unknown = sorted((set(spec.classes) | set(blur_classes)) - set(ids))
        if unknown:
            raise ModelError(f"classes {unknown} are not known to model {model} (it has {sorted(ids)})")
        self.names = dict(names)
        self._interest = Interest(frozenset(spec.classes), spec.confidence)
        self._blur = frozenset(blur_classes)
        self.ids = sorted({ids[c] for c in self._interest.classes | self._blur})
        # Blurred classes are asked for at the lower confidence; the others are cut back to theirs below.
        self.threshold = min(spec.confidence, BLUR_CONFIDENCE) if self._blur else spec.confidence

    def detections(
        self, boxes: Sequence[Sequence[float]], confidences: Sequence[float], classes: Sequence[int]
    ) -> list[Detection]:
        """Detections of the configured classes, rounded as the event documents store them."""
        out = []
        for box, conf, cls_id in zip(boxes, confidences, classes, strict=True):
            label = self.names[int(cls_id)]
            if self._interest.wants(label, conf) or label in self._blur:
                x1, y1, x2, y2 = (round(float(v), 1) for v in box)
                out.append(Detection(label, round(float(conf), 4), (x1, y1, x2, y2)))
        return out


def pick_device(device: Device, environ: Mapping[str, str]) -> str:
    """torch's device for the ultralytics detector."""
    import torch

    return "cuda:0" if use_cuda(device, environ, torch.cuda.is_available) else "cpu"


def torch_available() -> bool:
    """Whether this image has torch and ultralytics (the export image and the dev venv do; the CPU image not)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "ultralytics"))


class UltralyticsDetector:
    """ultralytics YOLO, loaded once; half precision and batches on CUDA, one frame at a time on CPU."""

    backend = "torch"

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

        from .logs import route_ultralytics_logs

        route_ultralytics_logs()
        self.device = pick_device(spec.device, environ)
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads(environ))
        self.name = name or spec.name
        self.sha256 = sha256_of(weights)
        self.spec = spec
        try:
            self._model = YOLO(str(loadable_path(weights)), task="detect")
        except Exception as exc:  # ultralytics raises many kinds for a bad file; all mean "cannot load"
            raise ModelError(f"cannot load model {weights}: {first_line(exc)}") from None
        self._classes = ClassFilter(dict(self._model.names), spec, blur_classes, self.name)
        self._half = self.device.startswith("cuda")
        self.batch_size = spec.batch_size if self._half else 1

    def warm_up(self, width: int = 640, height: int = 360) -> None:
        """One forward pass on a blank frame, so the first real frame is not the slow one."""
        self.detect([np.zeros((height, width, 3), dtype=np.uint8)])

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        results = self._model.predict(
            list(images),
            imgsz=self.spec.image_size,
            conf=self._classes.threshold,
            iou=self.spec.iou,
            classes=self._classes.ids,
            device=self.device,
            **({"quantize": "fp16"} if self._half else {}),
            batch=len(images),
            verbose=False,
        )
        out = []
        for result in results:
            boxes = result.boxes
            out.append(self._classes.detections(
                boxes.xyxy.cpu().numpy().tolist(),
                boxes.conf.cpu().numpy().tolist(),
                boxes.cls.cpu().numpy().astype(int).tolist(),
            ))
        return out


def export_folder(cache_dir: Path, sha256: str) -> Path:
    """Where `edge-inference prepare-model` keeps the exports of the PyTorch weights with this sha256."""
    return cache_dir / sha256 / "export"


def exports_in(folder: Path, stem: str) -> list[Path]:
    """The runnable exports of model `stem` in `folder` (ONNX file, OpenVINO folder), in no order."""
    candidates = [folder / f"{stem}.onnx", folder / f"{stem}_openvino_model"]
    return [c for c in candidates if c.exists()]


def export_order(exports: Sequence[Path], device: Device, environ: Mapping[str, str] | None) -> list[Path]:
    """The exports this image can run, best first: ONNX on a GPU, else by the faster runtime of this CPU,
    a model in the runtime's own format before one it converts."""
    from .runtime import ONNX, backend_of, preferred_backends, runtime_for

    gpu = device == Device.CUDA or gpu_requested(environ or {})
    order = (ONNX,) if gpu else preferred_backends()
    runnable = [(runtime_for(e, gpu), e) for e in exports]
    ranked = [(order.index(r), r != backend_of(e), e) for r, e in runnable if r in order]
    return [e for *_, e in sorted(ranked)]


def load_detector(
    weights: Path,
    spec: ModelSpec,
    blur_classes: Sequence[str],
    environ: Mapping[str, str],
    export_cache: Path,
    name: str | None = None,
) -> Detector:
    """The detector for `weights`, warmed up; every way a model fails to load or run is a ModelError.

    Exports run torch-free. PyTorch weights run on ultralytics for a GPU where this image has torch, else
    from their cached export (`edge-inference prepare-model` made it), else on ultralytics where this image
    has torch, else they are refused with the fix.
    """
    from .runtime import ExportedModelDetector, backend_of

    detector: Detector
    if backend_of(weights) is not None:
        detector = ExportedModelDetector(weights, spec, blur_classes, environ, name)
    elif weights.suffix == ".pt" and weights.is_file():
        sha256 = sha256_of(weights)
        exports = export_order(exports_in(export_folder(export_cache, sha256), EXPORT_STEM), spec.device, environ)
        gpu = spec.device == Device.CUDA or gpu_requested(environ)
        if gpu and torch_available():  # torch with CUDA: half precision and batches (the dev venv, bench/gpu.py)
            detector = UltralyticsDetector(weights, spec, blur_classes, environ, name)
        elif exports:
            detector = ExportedModelDetector(exports[0], spec, blur_classes, environ, name, sha256)
        elif torch_available():
            detector = UltralyticsDetector(weights, spec, blur_classes, environ, name)
        else:
            raise ModelError(f"{weights} is PyTorch weights and this image runs without torch: export them first "
                             f"with `edge-inference prepare-model` (the operator's export init container does)")
    else:
        raise ModelError(f"{weights} is not a model file: expected a .pt, a .onnx or an OpenVINO model folder")
    try:
        detector.warm_up()
    except ModelError:
        raise
    except Exception as exc:  # a file that loads but cannot run (wrong input, corrupt weights)
        raise ModelError(f"model {weights} fails on a frame: {first_line(exc)}") from None
    return detector
