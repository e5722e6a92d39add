"""Weights that exist but cannot be used (issue 14, item 4): one clear line and exit 3, never a traceback.

Each of these used to pass the existence check and fail only when first used, with a 30-50 line
traceback and exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.worker_harness import detect_args, run_worker


def _text_file(path):
    path.write_text("this is not a model\n")


def _folder(path):
    path.mkdir()


def _folder_with_junk(path):
    path.mkdir()
    (path / "model.xml").write_text("<not-openvino/>")
    (path / "model.bin").write_bytes(b"\0" * 16)


CASES = {
    "text.onnx": _text_file,
    "folder.onnx": _folder,
    "empty_openvino_model": _folder,
    "junk_openvino_model": _folder_with_junk,
    "text.pt": _text_file,
    "folder.pt": _folder,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_unusable_weights_give_one_line_and_exit_3(name, worker_env, tmp_path):
    weights = tmp_path / name
    CASES[name](weights)
    (tmp_path / "videos").mkdir()
    args = detect_args(tmp_path / "videos", str(tmp_path / "events"), tmp_path / "state")
    args[args.index("--model") + 1] = str(weights)
    result = run_worker(args, worker_env, timeout=120)
    assert result.returncode == 3, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("edge-inference: cannot start:") and str(weights) in line


def test_prepare_model_on_unusable_pt_weights_gives_one_line_and_exit_3(worker_env, tmp_path):
    """The export init container: weights it cannot export are a model error too, never a traceback."""
    weights = tmp_path / "text.pt"
    _text_file(weights)
    (tmp_path / "videos").mkdir()
    config = {
        "inputDir": str(tmp_path / "videos"), "stateDir": str(tmp_path / "state"),
        "model": {"name": str(weights)}, "sink": {"type": "directory", "path": str(tmp_path / "events")},
    }
    env = {**worker_env, "EDGE_INFERENCE_CONFIG": json.dumps(config)}
    prepare = [sys.executable, "-m", "edge_inference_worker.cli", "prepare-model"]
    result = subprocess.run(prepare, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("edge-inference: cannot start: cannot export") and str(weights) in line
