"""Where a job's weights come from, and `edge-inference prepare-model`, which exports PyTorch weights once.

The CPU image runs YOLO without torch, from ONNX or OpenVINO exports. Built-in models are exported
when the image is built (`edge-inference export-model`); a user's `.pt` weights are exported by
`edge-inference prepare-model`, which runs in the export image (ultralytics and torch) as an init
container with the worker's own configuration and state folder. It fetches the weights as the
worker does (sha256 checked), exports them, and keeps the exports on the node beside the weights,
keyed by their sha256 (`<state>/models/<sha256>/export/`); the worker then loads them from there.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edge_inference_api.models import S3Sink, WorkerConfig

from .checksums import sha256_of
from .config import S3Credentials
from .detector import (
    EXPORT_STEM,
    ModelError,
    export_folder,
    exports_in,
    first_line,
    model_dir,
    resolve_model,
)
from .modelstore import fetch_model

log = logging.getLogger(__name__)

# Dynamic shapes: one export serves every imageSize, and frames get the smaller rectangle letterbox.
# ONNX unsimplified: onnxslim is one more package, and ONNX Runtime optimises the graph when it loads it.
EXPORT_ARGUMENTS = {"onnx": {"simplify": False}, "openvino": {}}


def model_cache(config: WorkerConfig) -> Path:
    """The node's model cache: fetched weights and their exports, under the state folder."""
    return Path(config.state_dir) / "models"


def locate_weights(config: WorkerConfig, credentials: S3Credentials, environ: Mapping[str, str]) -> Path:
    """The job's weights: fetched from S3 (sha256 checked, cached) or built into the image.

    Raises ModelError or ModelFetchError with the one line the user sees.
    """
    spec = config.model
    if spec.source is None:
        return resolve_model(spec.name, model_dir(environ), spec.device, environ)
    endpoint = config.model_source_endpoint or (config.sink if isinstance(config.sink, S3Sink) else None)
    if endpoint is None:
        raise ModelError("model.source is set but there is no S3 endpoint to fetch it from")
    return fetch_model(spec.source, endpoint, credentials.access_key, credentials.secret_key, model_cache(config))


def prepare_model(config: WorkerConfig, credentials: S3Credentials, environ: Mapping[str, str]) -> Path | None:
    """Export the job's `.pt` weights into the node's cache unless done before; the export folder, or None.

    A built-in model name needs nothing: the worker image holds its exports (and this image may not
    hold the model at all).
    """
    if config.model.source is None and Path(config.model.name).suffix != ".pt":
        log.info("built-in model: its exports are in the worker image", extra={"fields": {"model": config.model.name}})
        return None
    weights = locate_weights(config, credentials, environ)
    if weights.suffix != ".pt":
        log.info("model needs no export", extra={"fields": {"weights": str(weights)}})
        return None
    folder = export_folder(model_cache(config), sha256_of(weights))
    if exports_in(folder, EXPORT_STEM):
        log.info("model already exported", extra={"fields": {"weights": str(weights), "export": str(folder)}})
        return folder
    export_weights(weights, folder, EXPORT_STEM)
    log.info("model exported", extra={"fields": {"weights": str(weights), "export": str(folder),
                                                 "formats": list(EXPORT_ARGUMENTS)}})
    return folder


def export_weights(weights: Path, folder: Path, stem: str) -> None:
    """`<folder>/<stem>.onnx` and `<folder>/<stem>_openvino_model/`, made by ultralytics with dynamic shapes.

    Made in a staging folder beside `folder` and renamed into place: a half-made export (a killed init
    container) is never seen by the worker. Needs ultralytics and torch (the export image).
    """
    from ultralytics import YOLO

    from .logs import route_ultralytics_logs

    route_ultralytics_logs()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    except OSError as exc:
        raise ModelError(f"cannot write exports to {folder.parent}: {exc.strerror or exc}") from None
    try:
        # A neutral file name: ultralytics renames "...yolov5n.pt" to a "...yolov5nu.pt" it then looks for.
        source = staging / "weights.pt"
        shutil.copyfile(weights, source)
        try:
            model = YOLO(str(source), task="detect")
            outputs = [Path(model.export(format=f, dynamic=True, device="cpu", **extra))
                       for f, extra in EXPORT_ARGUMENTS.items()]
        except Exception as exc:  # ultralytics raises many kinds for weights it cannot export
            raise ModelError(f"cannot export {weights}: {first_line(exc)}") from None
        source.unlink()
        for output in outputs:
            output.rename(staging / output.name.replace("weights", stem, 1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
