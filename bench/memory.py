#!/usr/bin/env python3
"""Peak RSS of the worker over a long run of many files: does memory stay flat as files are processed?

    python bench/memory.py [--files 120] [--sink s3|dir]
    python bench/memory.py --resolutions [--seconds 30]    # steady and peak RSS at 360p, 576p, 720p, 1080p

Runs the real command line (`edge-inference detect`, Batch) as a child process over many short synthetic
clips (each with one person or car crossing, so every file makes an event, a snapshot and an upload), samples
the child's RSS from /proc every 50 ms, and notes the RSS each time the worker logs "file done".
Printed: RSS after the first file and at each quarter, the peak, the slope over the second half of the run
(least squares, kB per file) and last-tenth vs first-tenth mean. Goal: flat (no growth with files processed).

--resolutions: the torch-free worker (the bundled model's exports, the backend the product picks on this CPU,
or with --runtime onnxruntime the ONNX file on ONNX Runtime, as the arm64 image runs it)
over one synthetic clip per frame size, imgsz 640, the default sampling (2 fps, motion gating); steady RSS is
the median of the samples over the second half of the file, peak the child's VmHWM. Goals (issue "A small,
fast worker for every edge device"): steady <= 300 MB at 360p and <= 400 MB at 1080p, peak <= 1.2x steady.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from common import REPO, machine, make_footage, neutral_weights_link, offline_ultralytics, s3_server, temp_workdir

DISTINCT_CLIPS = 4
SLOPE_LIMIT_KB_PER_FILE = 50.0  # what "flat" means here: under 5 MB of growth per 100 files


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


FLOOR_SCRIPT = """
import sys
import numpy as np
import torch
from ultralytics import YOLO
model = YOLO(sys.argv[1])
model.predict(np.zeros((360, 640, 3), np.uint8), imgsz=640, device="cpu", verbose=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0]))
"""


def floor_kb(weights: Path, env: dict[str, str]) -> tuple[int, int]:
    """(RSS, peak RSS) in kB of a bare Python that imports torch and ultralytics and runs the model once."""
    out = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(weights)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[-2]), int(out[-1])


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--sample-fps", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sink", choices=["s3", "dir"], default="s3")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--resolutions", action="store_true", help="steady and peak RSS per frame size instead")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length for --resolutions")
    parser.add_argument("--runtime", choices=["default", "onnxruntime"], default="default",
                        help="--resolutions: the product's pick on this CPU, or the ONNX file on ONNX Runtime (arm64)")
    args = parser.parse_args()

    work = temp_workdir("memory", args.keep)
    offline_ultralytics(work / "ultralytics")
    if args.resolutions:
        return by_resolution(work, args.seconds, args.threads, args.runtime)
    from support.synthetic import Scenario, crossing

    clips = []
    for i in range(DISTINCT_CLIPS):
        kind = ("person", 40, 115) if i % 2 == 0 else ("car", 170, 72)
        obj = crossing(kind[0], enter_s=1.0, crossing_s=5.0, frame_width=640, y_bottom=300 + 10 * i,
                       width=kind[1], height=kind[2], leftwards=bool(i % 3))
        clips.append(Scenario(f"clip{i}", 640, 360, 10, 8.0, (obj,)))
    sources = make_footage(work / "sources", clips, seed=900)
    videos = work / "videos"
    shutil.rmtree(videos, ignore_errors=True)
    videos.mkdir()
    for n in range(args.files):  # copies: each is its own file (own path, own file id, own events)
        shutil.copyfile(sources[n % DISTINCT_CLIPS], videos / f"cam-{n:04d}.mp4")
    weights = neutral_weights_link(work)
    print(f"machine: {machine()}")
    print(f"footage: {args.files} files of 8 s 640x360 10 fps H.264 (copies of {DISTINCT_CLIPS} clips, one object "
          f"each); worker samples {args.sample_fps:g} fps with motion gating; sink {args.sink}")

    with (s3_server(work / "s3") if args.sink == "s3" else nullcontext(None)) as s3:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
        command = [str(Path(sys.executable).parent / "edge-inference"), "detect", str(videos), "--model", str(weights),
                   "--fps", str(args.sample_fps), "--device", "cpu", "--state-dir", str(work / "state")]
        shutil.rmtree(work / "state", ignore_errors=True)
        if s3 is not None:
            env.update(s3.credentials_env())
            command += ["--out", f"s3://{s3.bucket}/memory-{time.monotonic_ns()}", "--s3-endpoint",
                        f"http://{s3.endpoint}", "--s3-insecure"]
        else:
            shutil.rmtree(work / "events", ignore_errors=True)
            command += ["--out", str(work / "events")]
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        samples: list[int] = []
        per_file: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                value = rss_kb(child.pid)
                if value:
                    samples.append(value)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for line in child.stderr:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("msg") == "file done":
                per_file.append(rss_kb(child.pid) or (samples[-1] if samples else 0))
        code = child.wait()
        done.set()
        sampler.join()
        seconds = time.perf_counter() - started
    if code != 0 or len(per_file) != args.files:
        print(f"worker exited {code} after {len(per_file)}/{args.files} files", file=sys.stderr)
        return 1
    floor, floor_peak = floor_kb(weights, env)
    n = len(per_file)
    quarters = ", ".join(f"file {i + 1}: {per_file[i] / 1024:.1f} MB" for i in sorted({0, n // 4, n // 2,
                                                                                          3 * n // 4, n - 1}))
    half = list(range(n // 2, n))
    growth = slope([float(i) for i in half], [float(per_file[i]) for i in half])
    tenth = max(1, n // 10)
    first, last = sum(per_file[:tenth]) / tenth, sum(per_file[-tenth:]) / tenth
    print(f"run: {n} files in {seconds:.1f} s, {len(samples)} RSS samples")
    print(f"RSS after {quarters}; peak {max(samples) / 1024:.1f} MB")
    print(f"floor for comparison: a bare Python that imports torch + ultralytics and runs this model once: RSS "
          f"{floor / 1024:.1f} MB (peak {floor_peak / 1024:.1f} MB); the worker holds "
          f"{(per_file[-1] - floor) / 1024:+.1f} MB more after the last file")
    print(f"RESULT memory: slope over the second half {growth:+.1f} kB/file; last tenth / first tenth mean RSS "
          f"{last / first:.3f} ({first / 1024:.1f} -> {last / 1024:.1f} MB); peak {max(samples) / 1024:.1f} MB; "
          f"flat (|slope| < {SLOPE_LIMIT_KB_PER_FILE:g} kB/file): "
          f"{'MET' if abs(growth) < SLOPE_LIMIT_KB_PER_FILE else 'MISSED'}")
    return 0


RESOLUTIONS = {"360p": (640, 360), "576p": (768, 576), "720p": (1280, 720), "1080p": (1920, 1080)}
STEADY_GOAL_MB = {"360p": 300, "1080p": 400}
PEAK_GOAL = 1.2


def status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def trace_child(command: list[str], env: dict[str, str]) -> tuple[int, list[tuple[float, int]], int, str]:
    """Run a worker child: (exit code, (time, RSS kB) samples once its file started, VmHWM kB, backend)."""
    child = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    peak = [0]
    file_started, done = threading.Event(), threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, hwm = status_kb(child.pid, "VmRSS"), status_kb(child.pid, "VmHWM")
            if rss and file_started.is_set():
                samples.append((time.monotonic(), rss))
            peak[0] = max(peak[0], hwm or 0)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    backend = "?"
    for line in child.stderr:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("msg") == "worker started":
            backend = entry.get("backend", "?")
        if entry.get("msg") == "file started":
            file_started.set()
    code = child.wait()
    done.set()
    sampler.join()
    return code, samples, peak[0], backend


def by_resolution(work: Path, seconds: float, threads: int, runtime: str) -> int:
    """Steady and peak RSS of the torch-free worker on one clip per frame size, side by side."""
    from support.synthetic import static_heavy_scenario

    models = work / "models"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1", EDGE_INFERENCE_MODEL_DIR=str(models))
    if not (models / "synthetic-yolov5n.onnx").exists():
        subprocess.run([sys.executable, "-m", "edge_inference_worker.cli", "export-model",
                        str(neutral_weights_link(work)), str(models), "--name", "synthetic-yolov5n"],
                       env=env, check=True, capture_output=True)
    print(f"machine: {machine()}")
    print(f"footage: {seconds:g} s static-heavy synthetic H.264 per size, 10 fps; worker: bundled model's export, "
          f"imgsz 640, default sampling (2 fps, motion gating), {threads} threads, directory sink")
    met = True
    for label, (width, height) in RESOLUTIONS.items():
        scenario = static_heavy_scenario(seconds, fps=10, width=width, height=height, moving_fraction=0.3, seed=11)
        (video,) = make_footage(work / f"videos-{label}", [scenario], seed=11)
        state = work / f"state-{label}"
        shutil.rmtree(state, ignore_errors=True)
        command = [sys.executable, "-m", "edge_inference_worker.cli", "detect", str(video.parent), "--out",
                   str(state / "events"), "--state-dir", str(state), "--model",
                   "synthetic-yolov5n" if runtime == "default" else str(models / "synthetic-yolov5n.onnx"),
                   "--image-size", "640", "--device", "cpu"]
        code, samples, peak_kb, backend = trace_child(command, env)
        if code != 0 or not samples:
            print(f"{label}: worker exited {code}", file=sys.stderr)
            return 1
        middle = samples[0][0] + (samples[-1][0] - samples[0][0]) / 2
        steady = statistics.median(rss for t, rss in samples if t >= middle) / 1024
        peak_mb = peak_kb / 1024
        goal = STEADY_GOAL_MB.get(label)
        ok = peak_mb <= PEAK_GOAL * steady and (goal is None or steady <= goal)
        met &= ok
        print(f"RESULT memory {label} ({width}x{height}, {backend}): steady {steady:.0f} MB, peak {peak_mb:.0f} MB "
              f"({peak_mb / steady:.2f}x steady); goals: steady <= {goal or '-'} MB, peak <= {PEAK_GOAL}x: "
              f"{'MET' if ok else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
