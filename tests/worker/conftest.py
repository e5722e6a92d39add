"""Fixtures for the worker tests: synthetic clips with ground truth (generated once per session,
PyAV, seconds each), the bundled model exported as the image build exports it, and the environment
of a worker subprocess (offline, one thread, the exported models as its built-in ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from edge_inference_worker.detector import PACKAGE_MODEL_DIR
from support.s3server import s3_server_module  # noqa: F401  (a fixture, for the S3 tests)
from support.synthetic import make_video, short_scenario, static_heavy_scenario
from support.worker_harness import MODEL, Clip, detect_args, offline_environment, run_worker


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory) -> dict[str, str]:
    """Offline, one thread, ultralytics' settings in a temp dir."""
    return offline_environment(tmp_path_factory.mktemp("ultralytics"))


@pytest.fixture(scope="session")
def built_in_models(tmp_path_factory, offline_env) -> Path:
    """The image's model folder: the bundled .pt and its ONNX and OpenVINO exports, made by the image
    build's own step (`edge-inference export-model`)."""
    folder = tmp_path_factory.mktemp("models")
    (folder / f"{MODEL}.pt").symlink_to(PACKAGE_MODEL_DIR / f"{MODEL}.pt")
    result = subprocess.run(
        [sys.executable, "-m", "edge_inference_worker.cli", "export-model", str(PACKAGE_MODEL_DIR / f"{MODEL}.pt"),
         str(folder), "--name", MODEL],
        env=offline_env, capture_output=True, text=True, timeout=300, cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="session")
def worker_env(tmp_path_factory, offline_env, built_in_models) -> dict[str, str]:
    """Environment of a worker subprocess: offline, one thread, state in temp dirs, the exported built-in models."""
    return {
        **offline_env,
        "EDGE_INFERENCE_MODEL_DIR": str(built_in_models),
        "EDGE_INFERENCE_STATE_HOME": str(tmp_path_factory.mktemp("state-home")),
    }


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory) -> Clip:
    """24 s, 640x360, 10 fps: person, car, 4 s of nothing, then a person and a car together."""
    path = tmp_path_factory.mktemp("short") / "cam1" / "short.mp4"
    return Clip(path, make_video(path, short_scenario(), seed=7))


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Clip:
    """90 s of mostly static footage with crossings spread over it (for crashes mid-file)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    scenario = static_heavy_scenario(90.0, fps=10, moving_fraction=0.35, seed=5)
    return Clip(path, make_video(path, scenario, seed=5))


@pytest.fixture(scope="session")
def directory_run(short_clip, worker_env, tmp_path_factory):
    """The short clip through the standalone command into a folder: (base folder, args, result)."""
    base = tmp_path_factory.mktemp("dir-run")
    args = detect_args(short_clip.path.parent.parent, str(base / "events"), base / "state")
    result = run_worker(args, worker_env)
    return base, args, result
