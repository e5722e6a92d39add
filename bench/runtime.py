#!/usr/bin/env python3
"""The torch-free runtime: worker fps against bare ultralytics on the same backend, and start-up against torch.

    python bench/runtime.py [--seconds 30] [--rounds 2] [--threads 2] [--startup-rounds 3]

Models: `yolov5nu`, the real architecture built offline from ultralytics' yolov5nu.yaml with random weights
(speed does not depend on the weights), and the bundled synthetic-yolov5n. Each is exported to ONNX and to
OpenVINO by the worker's own step (`edge-inference export-model`: what the image build runs).
Footage: 768x576 10 fps synthetic H.264, image size 640, every frame analysed.

- fps: the worker (`edge-inference detect` in this process, sampling at the video's 10 fps, motion gating
  off; timed from its first "file started" to its last "file done") against `YOLO(export).predict(source,
  stream=True)` on the very same export file (timed over the stream, after a warm-up frame), for two
  exports of each backend: the worker's own (dynamic shapes, what the images ship) and ultralytics' default
  (`YOLO(pt).export(format)`: fixed 640x640). Rounds alternate (bare, worker, bare, worker) so that load
  from other processes hits both alike; the ratio is the median of the rounds' ratios, for fps and for
  this process's CPU time per frame (robust when other jobs load the machine). The `.pt` through
  ultralytics (torch) is printed once per model.
- start-up: a child `edge-inference detect` over a 1 s clip, from spawn to "worker started" (imports, model
  load, one warm-up frame analysed) and to its exit; the torch-free exports against the `.pt` on the torch
  path (what the worker ran before), alternating.

Goals (issue "A small, fast worker for every edge device"): worker >= 0.95x bare ultralytics on the same
backend; start-up at least 3x faster than the torch path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import MODEL, REPO, machine, make_footage, offline_ultralytics, run_worker, temp_workdir

FPS_GOAL = 0.95
STARTUP_GOAL = 3.0
IMGSZ = 640
BACKENDS = {"openvino": "{}_openvino_model", "onnxruntime": "{}.onnx"}

DEFAULT_EXPORT = """
import sys
from ultralytics import YOLO
model = YOLO(sys.argv[1], task="detect")
print(model.export(format=sys.argv[2], imgsz=640, **({"simplify": False} if sys.argv[2] == "onnx" else {})))
"""

BUILD_YOLOV5NU = """
import sys
from ultralytics import YOLO
from ultralytics.utils import ROOT, YAML
model = YOLO("yolov5nu.yaml")  # ultralytics' own config, random weights: nothing is downloaded
model.model.names = dict(enumerate(YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"].values()))
model.save(sys.argv[1])
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_inference_worker.cli", *args]


def prepare_models(work: Path, env: dict[str, str]) -> dict[str, Path]:
    """name -> folder with `<name>.pt` and its ONNX and OpenVINO exports."""
    folder = work / "models"
    folder.mkdir(parents=True, exist_ok=True)
    random = folder / "yolov5nu.pt"
    if not random.exists():
        subprocess.run([sys.executable, "-c", BUILD_YOLOV5NU, str(random)], env=env, cwd=folder, check=True,
                       capture_output=True)
    bundled = folder / "synthetic-yolov5n.pt"
    if not bundled.exists():
        bundled.symlink_to(MODEL)
    for weights in (random, bundled):
        name = weights.stem
        if not (folder / f"{name}.onnx").exists():
            subprocess.run(cli("export-model", str(weights), str(folder), "--name", name), env=env, cwd=folder,
                           check=True, capture_output=True)
        # ultralytics' default exports, under its own names (a name without "yolov5n": see models/README.md).
        static = folder / "default" / name.replace("yolov5n", "v5n")
        static.mkdir(parents=True, exist_ok=True)
        if not (static / "weights.onnx").exists():
            shutil.copyfile(weights, static / "weights.pt")
            for model_format in ("onnx", "openvino"):
                subprocess.run([sys.executable, "-c", DEFAULT_EXPORT, str(static / "weights.pt"), model_format],
                               env=env, cwd=static, check=True, capture_output=True)
    return {"yolov5nu": folder, "synthetic-yolov5n": folder}


def exports_of(folder: Path, name: str, backend: str) -> dict[str, Path]:
    """The two exports of a model for one backend: the worker's (dynamic) and ultralytics' default (640x640)."""
    default = folder / "default" / name.replace("yolov5n", "v5n") / BACKENDS[backend].format("weights")
    return {"worker's export": folder / BACKENDS[backend].format(name), "ultralytics' default export": default}


@dataclass(frozen=True)
class Speed:
    """One run: frames per wall-clock second over the frames, and this process's CPU ms per frame over the
    whole run (model load included on both sides). CPU time says what a frame costs even when other jobs on
    the machine stretch the wall clock."""

    fps: float
    cpu_ms: float


def bare_speed(weights: Path, video: Path) -> Speed:
    """ultralytics' own streaming loop over the video, every frame, after a warm-up frame (not in the fps)."""
    import numpy as np
    from ultralytics import YOLO

    cpu = time.process_time()
    model = YOLO(str(weights), task="detect")
    model.predict(np.zeros((576, 768, 3), np.uint8), imgsz=IMGSZ, device="cpu", verbose=False)
    frames = 0
    started = time.perf_counter()
    for _ in model.predict(source=str(video), stream=True, imgsz=IMGSZ, conf=0.25, device="cpu", verbose=False):
        frames += 1
    return Speed(frames / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / frames)


def worker_speed(model: Path, videos: Path, work: Path) -> Speed:
    flags = ["--model", str(model), "--image-size", str(IMGSZ), "--device", "cpu", "--fps", "10",
             "--no-motion-gating"]
    cpu = time.process_time()
    run = run_worker(videos, work, flags)
    assert run.exit_code == 0, f"worker exited {run.exit_code}"
    return Speed(run.frames_analysed / run.files_seconds, 1000 * (time.process_time() - cpu) / run.frames_analysed)


def startup_seconds(model: Path, clip_dir: Path, work: Path, env: dict[str, str]) -> tuple[float, float]:
    """(spawn -> "worker started", spawn -> exit) of a child worker over a 1 s clip."""
    state = work / f"state-{time.monotonic_ns()}"
    command = cli("detect", str(clip_dir), "--out", str(state / "events"), "--state-dir", str(state), "--model",
                  str(model), "--image-size", str(IMGSZ), "--device", "cpu")
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    ready = None
    for line in child.stderr:
        if ready is None and line.startswith("{") and json.loads(line).get("msg") == "worker started":
            ready = time.perf_counter() - started
    code = child.wait()
    assert code == 0 and ready is not None, f"worker exited {code}"
    return ready, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the 768x576 clip")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--startup-rounds", type=int, default=3, help="0: no start-up comparison")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), ORT_DISABLE_TELEMETRY="1")
    work = temp_workdir("runtime", args.keep)
    offline_ultralytics(work / "ultralytics")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    from support.synthetic import Scenario, static_heavy_scenario

    scenario = static_heavy_scenario(args.seconds, fps=10, moving_fraction=0.6, seed=3, width=768, height=576)
    (video,) = make_footage(work / "videos", [scenario], seed=3)
    (clip,) = make_footage(work / "clip", [Scenario("clip", 768, 576, 10, 1.0)], seed=4)
    models = prepare_models(work, env)
    print(f"machine: {machine()}")
    print(f"footage: {video.name}, 768x576 10 fps, {args.seconds:g} s; imgsz {IMGSZ}; every frame; "
          f"{args.threads} threads; rounds alternate bare/worker, median of {args.rounds}")
    for name, folder in models.items():
        torch_speed = bare_speed(folder / f"{name}.pt", video)
        print(f"{name}: .pt through ultralytics (torch), bare: {torch_speed.fps:.1f} fps, {torch_speed.cpu_ms:.0f} "
              f"CPU ms per frame")
        for backend in BACKENDS:
            for which, export in exports_of(folder, name, backend).items():
                pairs = [(bare_speed(export, video), worker_speed(export, video.parent, work / "worker"))
                         for _ in range(args.rounds)]
                ratio = statistics.median(w.fps / b.fps for b, w in pairs)
                cpu_ratio = statistics.median(b.cpu_ms / w.cpu_ms for b, w in pairs)
                print(f"RESULT fps {name} {backend}, {which}: worker / bare ultralytics, median of the rounds' "
                      f"ratios: fps {ratio:.3f}, CPU per frame {cpu_ratio:.3f} (rounds: worker fps "
                      f"{[round(w.fps, 1) for _, w in pairs]}, bare {[round(b.fps, 1) for b, _ in pairs]}; CPU ms per "
                      f"frame worker {[round(w.cpu_ms) for _, w in pairs]}, bare {[round(b.cpu_ms) for b, _ in pairs]})"
                      f"; >= {FPS_GOAL}: {'MET' if ratio >= FPS_GOAL else 'MISSED'}")
    if args.startup_rounds:  # 0 skips the start-up comparison
        for name, folder in models.items():
            free, torch_path = [], []
            for _ in range(args.startup_rounds):
                free.append(startup_seconds(folder / BACKENDS["openvino"].format(name), clip.parent, work, env))
                torch_path.append(startup_seconds(folder / f"{name}.pt", clip.parent, work, env))
            finished = statistics.median(t for _, t in torch_path), statistics.median(t for _, t in free)
            started = statistics.median(r for r, _ in torch_path), statistics.median(r for r, _ in free)
            ratio = started[0] / started[1]
            print(f"RESULT start-up {name}: to the first frame analysed (worker started) torch {started[0]:.2f} s, "
                  f"torch-free {started[1]:.2f} s, {ratio:.2f}x faster; to exit after a 1 s clip torch "
                  f"{finished[0]:.2f} s, torch-free {finished[1]:.2f} s ({finished[0] / finished[1]:.2f}x); "
                  f">= {STARTUP_GOAL}x: {'MET' if ratio >= STARTUP_GOAL else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
