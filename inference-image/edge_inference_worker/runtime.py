"""The torch-free detector: ultralytics' YOLO exports run on ONNX Runtime or OpenVINO.

Pre- and post-processing follow ultralytics' predictor step for step, so the boxes match what
`YOLO(export).predict()` returns (tests/worker/test_runtime_parity.py holds them to it):
- letterbox: OpenCV resize (bilinear) and a grey (114) border, centred; a model exported with
  dynamic shapes gets the smallest stride-multiple rectangle, a fixed one its exported size;
- `cv2.dnn.blobFromImage`: BGR to RGB, HWC to NCHW, 0-255 to 0-1;
- NMS per class with `cv2.dnn.NMSBoxesBatched` on the best class of each box, as ultralytics'
  `non_max_suppression` (multi_label off, max_det 300);
- boxes scaled back to the frame as `ultralytics.utils.ops.scale_boxes` does.
Nothing here imports torch or ultralytics: this is what the CPU image runs.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import yaml
from edge_inference_api.models import ModelSpec

from .checksums import sha256_of
from .detector import ClassFilter, ModelError, cpu_threads, first_line, use_cuda
from .events import Detection

log = logging.getLogger(__name__)

ONNX = "onnxruntime"
OPENVINO = "openvino"
OPENVINO_SUFFIX = "_openvino_model"
PAD_VALUE = 114  # ultralytics' LetterBox grey
MAX_DETECTIONS = 300  # ultralytics' max_det
CUDA_PROVIDER = "CUDAExecutionProvider"
NVIDIA_CONTROL_DEVICE = Path("/dev/nvidiactl")


def backend_of(path: Path) -> str | None:
    """The format of an export at `path`, named by the runtime it is native to; None if not an export."""
    if path.suffix == ".onnx":
        return ONNX
    if path.name.endswith(OPENVINO_SUFFIX) or path.suffix == ".xml":
        return OPENVINO
    return None


def preferred_backends() -> tuple[str, ...]:
    """Runtimes in the order to prefer them on this machine's CPU.

    On x86 OpenVINO is the faster one (docs/benchmarks.md, "Torch-free runtime"); elsewhere (arm64)
    ONNX Runtime is what the images carry, and OpenVINO's ARM plugin was not measured.
    """
    if platform.machine().lower() in ("x86_64", "amd64"):
        return (OPENVINO, ONNX)
    return (ONNX, OPENVINO)


@dataclass(frozen=True)
class Letterbox:
    """Where one frame sits inside the model's input: scale per axis and the left/top border."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def letterbox(image: np.ndarray, shape: tuple[int, int], stride: int, rect: bool) -> tuple[np.ndarray, Letterbox]:
    """`image` resized into `shape` (h, w) keeping its aspect ratio, padded grey; `rect` pads only to `stride`."""
    height, width = image.shape[:2]
    ratio = min(shape[0] / height, shape[1] / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    dw, dh = shape[1] - new_w, shape[0] - new_h
    if rect:
        dw, dh = dw % stride, dh % stride
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, Letterbox(new_w / width, new_h / height, left, top)


def to_frame(boxes: np.ndarray, box: Letterbox, height: int, width: int) -> np.ndarray:
    """xyxy boxes in model-input pixels -> the original frame's pixels, clipped to it."""
    out = boxes.astype(np.float64, copy=True)
    out[:, [0, 2]] = ((out[:, [0, 2]] - box.pad_x) / box.gain_x).clip(0, width)
    out[:, [1, 3]] = ((out[:, [1, 3]] - box.pad_y) / box.gain_y).clip(0, height)
    return out


def select_boxes(
    output: np.ndarray, class_ids: Sequence[int], confidence: float, iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy, confidence, class) kept from one image's raw YOLO output (4 + classes rows, one column per anchor)."""
    candidates = output.T
    scores = candidates[:, 4:]
    classes = scores.argmax(1)
    conf = scores[np.arange(len(scores)), classes]
    keep = (conf > confidence) & np.isin(classes, class_ids)
    xywh, conf, classes = candidates[keep, :4], conf[keep], classes[keep]
    corner = np.column_stack((xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 1] - xywh[:, 3] / 2, xywh[:, 2], xywh[:, 3]))
    chosen = cv2.dnn.NMSBoxesBatched(corner.tolist(), conf.tolist(), classes.tolist(), confidence, iou)
    kept = np.asarray(chosen, dtype=np.int64).reshape(-1)[:MAX_DETECTIONS]
    xyxy = np.column_stack((corner[:, 0], corner[:, 1], corner[:, 0] + corner[:, 2], corner[:, 1] + corner[:, 3]))
    return xyxy[kept], conf[kept], classes[kept]


def select_end_to_end(
    output: np.ndarray, class_ids: Sequence[int], confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same from a model that ran its own NMS (rows of x1, y1, x2, y2, confidence, class)."""
    keep = (output[:, 4] > confidence) & np.isin(output[:, 5].astype(np.int64), class_ids)
    rows = output[keep][:MAX_DETECTIONS]
    return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)


@dataclass(frozen=True)
class ExportInfo:
    """What ultralytics wrote beside the weights: class names, stride, and whether NMS is inside."""

    names: dict[int, str]
    stride: int
    end_to_end: bool


def export_info(metadata: Mapping[str, object], where: Path) -> ExportInfo:
    """Parse ultralytics' export metadata (strings in ONNX, YAML values in OpenVINO's metadata.yaml)."""

    def value(key: str) -> object:
        raw = metadata.get(key)
        return ast.literal_eval(raw) if isinstance(raw, str) else raw

    names = value("names")
    if not isinstance(names, dict) or not names:
        raise ModelError(f"{where} has no class names in its metadata: export it with ultralytics (`yolo export`)")
    args = value("args")
    nms_inside = bool(value("end2end")) or (isinstance(args, dict) and bool(args.get("nms")))
    stride = value("stride") or 32
    if not isinstance(stride, int):
        raise ModelError(f"{where} has the stride {stride!r} in its metadata, not a whole number of pixels")
    return ExportInfo({int(k): str(v) for k, v in names.items()}, stride, nms_inside)


class OnnxRuntimeSession:
    """An ONNX export on ONNX Runtime: CUDA provider when asked for, else the CPU one."""

    backend = ONNX

    def __init__(self, path: Path, threads: int, cuda: bool) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Pool threads spin between ops, ONNX Runtime's default: on idle cores a sleeping pool lost fps, under
        # load it saved CPU (docs/benchmarks.md, "Torch-free runtime", runs 2 to 4, for the numbers).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        providers = [CUDA_PROVIDER, "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        if cuda:  # CUDA and cuDNN come from NVIDIA's wheels (Dockerfile.cuda), not from the system's library path
            onnxruntime.preload_dlls()
        self._session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        if cuda and self._session.get_providers()[0] != CUDA_PROVIDER:
            # ONNX Runtime falls back to the CPU quietly when the CUDA libraries do not load.
            raise ModelError(f"CUDA was requested but ONNX Runtime could not use it (providers: "
                             f"{self._session.get_providers()}; is the NVIDIA driver new enough?)")
        self.device = "cuda:0" if cuda else "cpu"
        self._input = self._session.get_inputs()[0]
        self.input_shape = self._input.shape
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, blob: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input.name: blob})[0]


class OpenVinoSession:
    """An OpenVINO IR export (the `*_openvino_model` folder ultralytics writes), or an ONNX file, on the CPU.

    OpenVINO reads ONNX itself: the x86 CPU image carries OpenVINO alone (docs/benchmarks.md, closure).
    """

    backend = OPENVINO
    device = "cpu"

    def __init__(self, path: Path, threads: int) -> None:
        import openvino

        core = openvino.Core()
        if path.suffix == ".onnx":
            model = core.read_model(str(path))
            # ultralytics' metadata_props, which OpenVINO keeps as the model's "framework" information.
            keys = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
            self.metadata = {key: model.get_rt_info(["framework", key]).astype(str) for key in keys}
        else:
            xml = path if path.suffix == ".xml" else _single(path.glob("*.xml"), path)
            _check_ir(xml)
            model = core.read_model(str(xml), str(xml.with_suffix(".bin")))
            metadata = xml.parent / "metadata.yaml"
            self.metadata = yaml.safe_load(metadata.read_text()) if metadata.is_file() else {}
        self.input_shape = [d.get_length() if d.is_static else "dynamic" for d in model.input().get_partial_shape()]
        # LATENCY (one request, all threads on it) is what ultralytics compiles with; threads follow the CPU quota.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        self._compiled = core.compile_model(model, "CPU", config)

    def run(self, blob: np.ndarray) -> np.ndarray:
        return self._compiled(blob)[0]


def _check_ir(xml: Path) -> None:
    """Refuse an .xml that is not OpenVINO IR before OpenVINO tries every other format's reader on it
    (each of which prints its own complaint to stderr)."""
    try:
        root = ElementTree.parse(xml).getroot().tag
    except (ElementTree.ParseError, OSError) as exc:
        raise ModelError(f"cannot load model {xml}: not an OpenVINO IR file ({first_line(exc)})") from None
    if root != "net":
        raise ModelError(f"cannot load model {xml}: not an OpenVINO IR file (its root element is <{root}>, not <net>)")


def _single(found: Iterable[Path], folder: Path) -> Path:
    files = sorted(found)
    if len(files) != 1:
        raise ModelError(f"cannot load model {folder}: it should hold one OpenVINO .xml model, it holds {len(files)}")
    return files[0]


class ExportedModelDetector:
    """A YOLO export (ONNX or OpenVINO), loaded once; one frame per forward pass on the CPU."""

    def __init__(
        self,
        export: Path,
        spec: ModelSpec,
        blur_classes: Sequence[str],
        environ: Mapping[str, str],
        name: str | None = None,
        sha256: str | None = None,
    ) -> None:
        self.name = name or spec.name
        self.sha256 = sha256 or sha256_of(export)
        self.spec = spec
        self._session = open_session(export, spec, environ)
        self.backend = self._session.backend
        self.device = self._session.device
        info = export_info(self._session.metadata, export)
        self._classes = ClassFilter(info.names, spec, blur_classes, self.name)
        self._end_to_end = info.end_to_end
        self._stride = info.stride
        height, width = self._session.input_shape[2:]
        self._rect = not (isinstance(height, int) and isinstance(width, int))
        self._shape = (spec.image_size, spec.image_size) if self._rect else (int(height), int(width))
        if not self._rect and self._shape != (spec.image_size, spec.image_size):
            log.warning("model was exported at a fixed size; it runs at that size, not imageSize",
                        extra={"fields": {"model": str(export), "width": width, "height": height,
                                          "imageSize": spec.image_size}})
        self.batch_size = 1

    def warm_up(self, width: int = 640, height: int = 360) -> None:
        """One forward pass on a blank frame, so the first real frame is not the slow one."""
        self.detect([np.zeros((height, width, 3), dtype=np.uint8)])

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Boxes per image (BGR, any size), in that image's pixels, for the configured classes only."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        padded, placed = letterbox(image, self._shape, self._stride, self._rect)
        blob = cv2.dnn.blobFromImage(padded, scalefactor=1 / 255, swapRB=True)
        output = self._session.run(blob)[0]
        ids, threshold = self._classes.ids, self._classes.threshold
        if self._end_to_end:
            xyxy, conf, classes = select_end_to_end(output, ids, threshold)
        else:
            xyxy, conf, classes = select_boxes(output, ids, threshold, self.spec.iou)
        boxes = to_frame(xyxy, placed, image.shape[0], image.shape[1])
        return self._classes.detections(boxes.tolist(), conf.tolist(), classes.tolist())


def installed(runtime: str) -> bool:
    """Whether this image has the runtime (the x86 CPU image has OpenVINO only, the others ONNX Runtime only)."""
    return importlib.util.find_spec(runtime) is not None


def runtime_for(export: Path, gpu: bool = False) -> str | None:
    """The installed runtime that runs `export`: ONNX Runtime for ONNX where it is installed (always on a GPU),
    else OpenVINO, which reads ONNX and its own IR; None if none here can."""
    model_format = backend_of(export)
    if model_format == ONNX and (gpu or installed(ONNX)):
        return ONNX if installed(ONNX) else None
    if model_format in (ONNX, OPENVINO) and installed(OPENVINO):
        return OPENVINO
    return None


def open_session(export: Path, spec: ModelSpec, environ: Mapping[str, str]) -> OnnxRuntimeSession | OpenVinoSession:
    """The runtime for `export`; any failure to read or compile it is a ModelError (one line, exit 3)."""
    cuda = use_cuda(spec.device, environ, cuda_works=_onnxruntime_has_cuda)
    runtime = runtime_for(export, gpu=cuda)
    if backend_of(export) is None:
        raise ModelError(f"{export} is not an ONNX file or an OpenVINO model folder")
    if runtime is None or (cuda and runtime != ONNX):
        where = "on a GPU (ONNX Runtime's CUDA provider runs ONNX files only)" if cuda else "in this image"
        raise ModelError(f"no runtime for {export} {where}")
    # The runtime's thread pool owns the cores; OpenCV's own pool, for the per-frame resize and blob, only
    # contends with it (ultralytics turns it off too). Why and how much: docs/benchmarks.md, run 5.
    cv2.setNumThreads(0)
    try:
        if runtime == ONNX:
            return OnnxRuntimeSession(export, cpu_threads(environ), cuda)
        return OpenVinoSession(export, cpu_threads(environ))
    except ModelError:
        raise
    except Exception as exc:  # each runtime raises its own kinds for a bad file; all mean "cannot load"
        raise ModelError(f"cannot load model {export}: {first_line(exc)}") from None


def _onnxruntime_has_cuda() -> bool:
    """ONNX Runtime was built with CUDA (onnxruntime-gpu) and the NVIDIA runtime put a GPU in this container."""
    if not installed(ONNX):
        return False
    import onnxruntime

    return CUDA_PROVIDER in onnxruntime.get_available_providers() and NVIDIA_CONTROL_DEVICE.exists()

