#!/usr/bin/env python3
"""Overhead of the worker end to end vs a bare ultralytics predict loop, same files, same model, one run.

    python bench/overhead.py [--files 2] [--rounds 5] [--imgsz 640] [--sink s3|dir]

The worker (decode with PyAV, detect, group events, snapshot, outbox, upload to a real S3 server on loopback
or a directory) analyses every frame (sampling rate = the videos' frame rate, motion gating off). The
baseline is `YOLO(weights).predict(source=file, stream=True)` over the same files. Rounds alternate
(baseline, worker, baseline, worker, ...) so load from other processes hits both alike.
Goal: worker fps >= 0.95 x baseline fps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from common import (
    bare_predict,
    machine,
    make_footage,
    minor_faults,
    neutral_weights_link,
    offline_ultralytics,
    run_worker,
    s3_server,
    stage_breakdown,
    temp_workdir,
    warm_up,
)

GOAL = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2, help="24 s 640x360 10 fps clips")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=640, help="inference size, both sides (worker default 640)")
    parser.add_argument("--sink", choices=["s3", "dir"], default="s3")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args()

    work = temp_workdir("overhead", args.keep)
    offline_ultralytics(work / "ultralytics")
    import torch
    from support.synthetic import short_scenario

    fps = short_scenario().fps
    videos = make_footage(work / "videos", [short_scenario()] * args.files, seed=100)
    weights = neutral_weights_link(work)
    print(f"machine: {machine()}")
    print(f"footage: {len(videos)} x 24 s 640x360 {fps} fps H.264; imgsz {args.imgsz}; torch threads {args.threads}; "
          f"sink {args.sink}")
    flags = ["--model", str(weights), "--fps", str(fps), "--no-motion-gating", "--image-size", str(args.imgsz),
             "--device", "cpu"]
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the worker sizes torch's pool from this, like in a pod
    # The worker tunes glibc malloc for its process (edge_inference_worker/malloc_tuning.py); running in this
    # process, it tunes it for the bare loop too from the warm-up on, so the ratio compares the pipelines alone.
    print("malloc: tuned for both sides from the warm-up on (the worker sets it process-wide)")
    ratios, bare_fps, worker_fps = [], [], []
    with _sink(args.sink, work) as s3:
        torch.set_num_threads(args.threads)
        warm_up(work, weights, flags, args.imgsz, s3=s3)
        for round_ in range(1, args.rounds + 1):
            torch.set_num_threads(args.threads)
            faults = minor_faults()
            frames, seconds = bare_predict(videos, weights, args.imgsz, conf=0.25)
            bare_faults = (minor_faults() - faults) / frames
            bare = frames / seconds
            faults = minor_faults()
            run = run_worker(work / "videos", work / "worker", flags, s3=s3)
            worker_faults = (minor_faults() - faults) / max(1.0, run.frames_analysed)
            if run.exit_code != 0:
                print(f"worker exited {run.exit_code}", file=sys.stderr)
                return 1
            mine = run.frames_analysed / run.seconds
            bare_fps.append(bare)
            worker_fps.append(mine)
            ratios.append(mine / bare)
            print(f"round {round_}: bare predict {frames} frames in {seconds:.1f} s = {bare:.2f} fps | worker "
                  f"{run.frames_analysed:.0f} frames analysed ({run.frames_decoded:.0f} decoded) "
                  f"in {run.seconds:.1f} s "
                  f"= {mine:.2f} fps, {len(run.events)} events uploaded | ratio {mine / bare:.3f}; "
                  f"worker between first file start and last file done {run.frames_analysed / run.files_seconds:.2f} "
                  f"fps (ratio {run.frames_analysed / run.files_seconds / bare:.3f})")
            print(f"  worker time by stage: {stage_breakdown(run)}")
            print(f"  minor page faults per frame: bare {bare_faults:.0f}, worker {worker_faults:.0f}")
    ratio = statistics.median(ratios)
    print(f"ratios per round: {', '.join(f'{r:.3f}' for r in ratios)} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"RESULT overhead: worker/bare fps ratio median {ratio:.3f} over {args.rounds} rounds "
          f"(bare {statistics.median(bare_fps):.2f} fps, worker {statistics.median(worker_fps):.2f} fps); "
          f"goal >= {GOAL}: {'MET' if ratio >= GOAL else 'MISSED'}")
    return 0


def _sink(kind: str, work: Path):
    from contextlib import nullcontext

    return s3_server(work / "s3") if kind == "s3" else nullcontext(None)


if __name__ == "__main__":
    sys.exit(main())
