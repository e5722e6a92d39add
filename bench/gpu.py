#!/usr/bin/env python3
"""On a CUDA machine: the worker's frames per second over 16 concurrent 720p files vs the model's raw batched rate.

    python bench/gpu.py [--files 16] [--seconds 30] [--batch 16] [--imgsz 640] [--runtime onnxruntime|torch]

Footage: 16 synthetic 1280x720 10 fps H.264 files (`short_scenario` at 720p, looped to --seconds).
- Runtime: `onnxruntime` (default) is what the CUDA image runs: the weights exported to ONNX by the worker's
  own step (`edge-inference export-model`), on ONNX Runtime's CUDA provider (needs `onnxruntime-gpu`, as in
  requirements/worker-cuda.txt); `torch` runs the `.pt` through ultralytics on torch's CUDA.
- Worker: 16 `edge-inference detect` processes started together, one per file (16 cameras on one node, each
  with its own pod-like worker), device cuda, every frame analysed (sampling = video fps, motion gating off),
  batch --batch; fps = all frames analysed / wall time from start to the last one's exit (model load
  included, as a pod pays it).
- Raw: the same weights as a torch module on the GPU in half precision, forward passes on random batches of
  --batch 3x384x640 tensors (a 720p frame letterboxed to imgsz 640), CUDA-synchronised; no decode, no
  pre/post-processing.
Printed: both rates and worker / raw. Without CUDA (or, for onnxruntime, without its CUDA provider) it says so
and exits 2.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, make_footage, neutral_weights_link, offline_ultralytics, temp_workdir


def raw_forward_rate(weights: Path, batch: int, imgsz: int, seconds: float = 10.0) -> float:
    """Frames per second of bare half-precision forward passes on the GPU."""
    import torch
    from ultralytics import YOLO

    module = YOLO(str(weights)).model.to("cuda").half().eval()
    height = math.ceil(imgsz * 720 / 1280 / 32) * 32  # a 720p frame letterboxed to imgsz (stride 32)
    x = torch.rand(batch, 3, height, imgsz, device="cuda").half()
    with torch.inference_mode():
        for _ in range(10):
            module(x)
        torch.cuda.synchronize()
        frames = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            module(x)
            frames += batch
        torch.cuda.synchronize()
        return frames / (time.perf_counter() - started)


def cuda_missing(runtime: str) -> str | None:
    """Why this machine cannot run `runtime` on CUDA, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return f"torch.cuda.is_available() is False on this machine (torch {torch.__version__})"
    if runtime == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return (f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider: install the CUDA image's "
                    "set (requirements/worker-cuda.txt: onnxruntime-gpu)")
    return None


def worker_model(weights: Path, runtime: str, work: Path) -> Path:
    """The file the workers load: the `.pt` itself (torch) or its ONNX export (what the CUDA image ships)."""
    if runtime == "torch":
        return weights
    folder = work / "exported"
    subprocess.run([str(Path(sys.executable).parent / "edge-inference"), "export-model", str(weights), str(folder),
                    "--name", "bench"], cwd=REPO, check=True, capture_output=True)
    return folder / "bench.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=24.0, help="length of each file")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runtime", choices=("onnxruntime", "torch"), default="onnxruntime")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()

    import torch

    missing = cuda_missing(args.runtime)
    if missing:
        print(f"bench/gpu.py needs a CUDA GPU for {args.runtime}: {missing}; nothing was measured.", file=sys.stderr)
        return 2
    work = temp_workdir("gpu", args.keep)
    offline_ultralytics(work / "ultralytics")
    from support.synthetic import Scenario, short_scenario

    base = short_scenario(width=1280, height=720)
    scenario = Scenario("cam720p", 1280, 720, base.fps, args.seconds, base.objects)
    videos = make_footage(work / "videos", [scenario] * args.files, seed=700)
    weights = neutral_weights_link(work)
    model = worker_model(weights, args.runtime, work)
    print(f"machine: {machine()}; GPU {torch.cuda.get_device_name(0)}; worker runtime {args.runtime} ({model.name})")
    print(f"footage: {args.files} x {args.seconds:g} s 1280x720 {scenario.fps} fps H.264; batch {args.batch}, "
          f"imgsz {args.imgsz}")

    raw = raw_forward_rate(weights, args.batch, args.imgsz)
    print(f"raw batched forward (fp16, batch {args.batch}): {raw:.1f} frames/s")

    children = []
    started = time.perf_counter()
    for i, video in enumerate(videos):
        folder = work / "inputs" / f"cam{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / video.name
        if not link.exists():
            link.symlink_to(video)
        command = [str(Path(sys.executable).parent / "edge-inference"), "detect", str(folder),
                   "--out", str(work / "events" / f"cam{i:02d}"), "--state-dir", str(work / "state" / f"cam{i:02d}"),
                   "--model", str(model), "--device", "cuda", "--batch-size", str(args.batch),
                   "--image-size", str(args.imgsz), "--fps", str(scenario.fps), "--no-motion-gating"]
        children.append(subprocess.Popen(command, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))
    codes = [child.wait() for child in children]
    seconds = time.perf_counter() - started
    if any(codes):
        print(f"workers exited {codes}", file=sys.stderr)
        return 1
    frames = args.files * scenario.frame_count
    worker = frames / seconds
    print(f"worker: {args.files} processes, {frames} frames analysed in {seconds:.1f} s = {worker:.1f} frames/s")
    print(f"RESULT gpu: worker / raw batched forward = {worker / raw:.3f} ({worker:.1f} vs {raw:.1f} frames/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
