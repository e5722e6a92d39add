"""Which export of a model runs, on which runtime: a table over the images' runtimes, CPUs and GPUs."""

from __future__ import annotations

import pytest
from edge_inference_api.models import Device
from edge_inference_worker import runtime
from edge_inference_worker.detector import ModelError, export_order, use_cuda

IR, ONNX_FILE = "m_openvino_model", "m.onnx"


@pytest.mark.parametrize(
    ("machine", "installed", "device", "environ", "expected"),
    [
        # x86 with both (the dev venv): OpenVINO's own IR first, then the ONNX file (on ONNX Runtime).
        ("x86_64", {"openvino", "onnxruntime"}, Device.AUTO, {}, [IR, ONNX_FILE]),
        # the amd64 CPU image: OpenVINO alone runs both, its own format first.
        ("x86_64", {"openvino"}, Device.AUTO, {}, [IR, ONNX_FILE]),
        # the arm64 CPU and Jetson images: ONNX Runtime alone, which cannot read IR.
        ("aarch64", {"onnxruntime"}, Device.AUTO, {}, [ONNX_FILE]),
        # a GPU asked for, or given to the pod: ONNX on ONNX Runtime (CUDA provider) only.
        ("x86_64", {"openvino", "onnxruntime"}, Device.CUDA, {}, [ONNX_FILE]),
        ("x86_64", {"onnxruntime"}, Device.AUTO, {"NVIDIA_VISIBLE_DEVICES": "GPU-1"}, [ONNX_FILE]),
        ("x86_64", {"openvino"}, Device.CUDA, {}, []),
        ("x86_64", set(), Device.AUTO, {}, []),
    ],
)
def test_export_order(machine, installed, device, environ, expected, monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    monkeypatch.setattr(runtime, "installed", lambda name: name in installed)
    exports = [tmp_path / ONNX_FILE, tmp_path / IR]
    assert [e.name for e in export_order(exports, device, environ)] == expected


@pytest.mark.parametrize(
    ("device", "environ", "cuda_works", "expected"),
    [
        (Device.CPU, {"NVIDIA_VISIBLE_DEVICES": "all"}, False, False),  # cpu is cpu, GPU or not
        (Device.AUTO, {}, False, False),
        (Device.AUTO, {}, True, True),
        (Device.AUTO, {"NVIDIA_VISIBLE_DEVICES": "void"}, False, False),  # the plugin's "no GPU"
        (Device.AUTO, {"NVIDIA_VISIBLE_DEVICES": "GPU-1"}, True, True),
        (Device.AUTO, {"NVIDIA_VISIBLE_DEVICES": "GPU-1"}, False, ModelError),  # given a GPU: never a quiet CPU run
        (Device.CUDA, {}, False, ModelError),
        (Device.CUDA, {}, True, True),
    ],
)
def test_use_cuda(device, environ, cuda_works, expected):
    if expected is ModelError:
        with pytest.raises(ModelError):
            use_cuda(device, environ, lambda: cuda_works)
    else:
        assert use_cuda(device, environ, lambda: cuda_works) is expected
