"""Fixtures for the worker tests: synthetic clips with ground truth (generated once per session,
PyAV, seconds each) and the environment of a worker subprocess (offline, one torch thread)."""

from __future__ import annotations

import os

import pytest
from edge_inference_worker.synthetic import make_video, short_scenario, static_heavy_scenario
from support.s3server import s3_server_module  # noqa: F401  (a fixture, for the S3 tests)
from support.worker_harness import Clip, detect_args, run_worker


@pytest.fixture(scope="session")
def worker_env(tmp_path_factory) -> dict[str, str]:
    """Environment of a worker subprocess: offline, one thread, settings and state in temp dirs."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(tmp_path_factory.mktemp("ultralytics")),
        "EDGE_INFERENCE_STATE_HOME": str(tmp_path_factory.mktemp("state-home")),
        "PYTHONUNBUFFERED": "1",
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
