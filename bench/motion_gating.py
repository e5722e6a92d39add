#!/usr/bin/env python3
"""Motion gating on static-heavy footage: speed, event recall and bandwidth, gated vs every frame, one run.

    python bench/motion_gating.py [--files 2] [--minutes 5] [--sample-fps 10] [--imgsz 640] [--sink s3|dir]

Footage: `static_heavy_scenario` (objects on screen about 10% of the time; the rest is background and sensor
noise). The same worker configuration runs twice over the same files, once with motion gating and once with
`--no-motion-gating` (every sampled frame through the detector), uploading to a real S3 server on loopback.
Printed:
- speed-up: sampled frames per second, gated / every frame (goal >= 5x);
- event recall of the gated run against the every-frame run (same file and class, overlapping video time;
  goal >= 0.99), and both runs' recall against the ground truth;
- bandwidth: bytes uploaded / bytes of video scanned, gated run (goal <= 1%).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from common import (
    machine,
    make_footage,
    match_events,
    neutral_weights_link,
    offline_ultralytics,
    run_worker,
    s3_server,
    stage_breakdown,
    temp_workdir,
    warm_up,
)

SPEEDUP_GOAL = 5.0
RECALL_GOAL = 0.99
BANDWIDTH_GOAL = 0.01


def truth_recall(videos: list[Path], events: list[dict]) -> tuple[int, int]:
    """(truth objects with an event of their class overlapping their on-screen time, truth objects)."""
    from support.synthetic import GroundTruth

    found = total = 0
    for video in videos:
        truth = GroundTruth.load(video)
        mine = [e for e in events if e["source"]["path"] == video.name]
        for obj in truth.objects:
            total += 1
            found += any(e["class"] == obj.class_name and e["videoTime"]["start"] <= obj.onscreen_end_s
                         and e["videoTime"]["end"] >= obj.onscreen_start_s for e in mine)
    return found, total


def _list_events(videos: list[Path], every: list[dict], gated: list[dict]) -> None:
    from support.synthetic import GroundTruth

    for video in videos:
        truth = GroundTruth.load(video)
        print(f"  {video.name}:")
        for obj in truth.objects:
            print(f"    truth {obj.class_name} on screen {obj.onscreen_start_s:.1f}-{obj.onscreen_end_s:.1f} s")
        for name, events in (("every-frame", every), ("gated", gated)):
            for e in sorted((e for e in events if e["source"]["path"] == video.name),
                            key=lambda e: e["videoTime"]["start"]):
                print(f"    {name} event {e['class']} {e['videoTime']['start']:.1f}-{e['videoTime']['end']:.1f} s, "
                      f"{e['frames']} frames, peak {e['confidence']['peak']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each file")
    parser.add_argument("--video-fps", type=int, default=10)
    parser.add_argument("--sample-fps", type=float, default=10.0, help="worker analysis rate (both runs)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sink", choices=["s3", "dir"], default="s3")
    parser.add_argument("--list-events", action="store_true", help="print each truth object and the events")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()

    work = temp_workdir("motion", args.keep)
    offline_ultralytics(work / "ultralytics")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from support.synthetic import static_heavy_scenario

    scenarios = [static_heavy_scenario(args.minutes * 60, fps=args.video_fps, seed=50 + i) for i in range(args.files)]
    videos = make_footage(work / "videos", scenarios, seed=500)
    video_bytes = sum(v.stat().st_size for v in videos)
    weights = neutral_weights_link(work)
    print(f"machine: {machine()}")
    print(f"footage: {len(videos)} x {args.minutes:g} min 640x360 {args.video_fps} fps H.264, "
          f"{video_bytes / 1e6:.1f} MB; worker samples {args.sample_fps:g} fps, imgsz {args.imgsz}, "
          f"torch threads {args.threads}, sink {args.sink}")
    flags = ["--model", str(weights), "--fps", str(args.sample_fps), "--image-size", str(args.imgsz),
             "--device", "cpu"]
    with (s3_server(work / "s3") if args.sink == "s3" else nullcontext(None)) as s3:
        warm_up(work, weights, flags, args.imgsz, s3=s3)
        every = run_worker(work / "videos", work / "every", [*flags, "--no-motion-gating"], s3=s3)
        gated = run_worker(work / "videos", work / "gated", flags, s3=s3)
    for name, run in (("every frame", every), ("gated", gated)):
        if run.exit_code != 0:
            print(f"{name} worker exited {run.exit_code}", file=sys.stderr)
            return 1
        found, total = truth_recall(videos, run.events)
        print(f"{name}: {run.frames_sampled:.0f} sampled frames ({run.frames_analysed:.0f} analysed, "
              f"{run.frames_skipped:.0f} skipped by motion, {run.frames_decoded:.0f} decoded) in {run.seconds:.1f} s "
              f"= {run.frames_sampled / run.seconds:.2f} fps; {len(run.events)} events; truth objects found "
              f"{found}/{total}; uploaded {run.bytes_uploaded / 1e3:.1f} kB")
        print(f"  time by stage: {stage_breakdown(run)}")
    speedup = (gated.frames_sampled / gated.seconds) / (every.frames_sampled / every.seconds)
    matched, missed = match_events(every.events, gated.events)
    recall = matched / len(every.events) if every.events else float("nan")
    bandwidth = gated.bytes_uploaded / gated.bytes_scanned if gated.bytes_scanned else float("nan")
    if args.list_events:
        _list_events(videos, every.events, gated.events)
    for event in missed:
        print(f"  every-frame event missed by the gated run: {event['source']['path']} {event['class']} "
              f"{event['videoTime']}")
    print(f"RESULT motion gating speed-up: {speedup:.2f}x (goal >= {SPEEDUP_GOAL:g}x: "
          f"{'MET' if speedup >= SPEEDUP_GOAL else 'MISSED'})")
    print(f"RESULT event recall gated vs every frame: {matched}/{len(every.events)} = {recall:.3f} "
          f"(goal >= {RECALL_GOAL}: {'MET' if recall >= RECALL_GOAL else 'MISSED'})")
    print(f"RESULT bandwidth: {gated.bytes_uploaded:.0f} B uploaded / {gated.bytes_scanned:.0f} B scanned = "
          f"{bandwidth:.4%} (goal <= {BANDWIDTH_GOAL:.0%}: {'MET' if bandwidth <= BANDWIDTH_GOAL else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
