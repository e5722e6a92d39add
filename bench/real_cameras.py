#!/usr/bin/env python3
"""What real cameras do to gating and memory: a car parked all day, and larger frames. Side by side, one run.

    python bench/real_cameras.py [--crossings 100] [--minutes 120] [--baseline-minutes 20] [--imgsz 640]
                                 [--memory-sizes 640x360,768x576,1920x1080] [--skip-gating] [--skip-memory]

Parked car (`parked_car_scenario`: a car parked in view for the whole file while `--crossings` people and
cars cross, one at a time). The same worker configuration runs in this process: motion gating with
stationary objects (the default) over the whole file; analysing every sampled frame (`--no-motion-gating`)
and motion gating with `--stationary-seconds 0` (what gating did before: the parked car keeps its event
open, so nothing is skipped) over its first `--baseline-minutes` (cut without re-encoding; analysing every
frame costs the same per frame whatever the content, and a full-length baseline would take most of an
hour on 2 CPUs). Printed, for the default run against the every-frame run:
- speed-up in sampled frames per second (goal >= 5x);
- recall of the crossing objects against the ground truth: an event of the object's class overlapping the
  time it was on screen (goal >= 0.99; fewer than 100 crossings cannot show 0.99);
- the events of the parked car (goal: one, or one per hour while it stays).

Memory: the real command line as a child process over one clip per frame size (60 s, two crossings, 10 fps,
sampled at 5 fps with gating, image size 640), peak RSS of each. Goal: the growth from the smallest to the
largest size is no more than the extra frame bytes the read-ahead budget allows (frames read ahead plus the
FRAMES_HELD_ELSEWHERE it reserves for the decoder and the images being worked on; see pipeline.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    REPO,
    machine,
    make_footage,
    neutral_weights_link,
    offline_ultralytics,
    run_worker,
    temp_workdir,
    warm_up,
)

SPEEDUP_GOAL = 5.0
RECALL_GOAL = 0.99
CHILD = """
import sys
from edge_inference_worker.cli import main
code = main(sys.argv[1:])
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print("PEAK_KB", int(status["VmHWM"].split()[0]), file=sys.stderr)
sys.exit(code)
"""


def cut_video(source: Path, target: Path, seconds: float) -> Path:
    """The first `seconds` of `source` (whole GOPs, packets copied: no re-encoding)."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            if packet.pts * packet.time_base >= seconds and packet.is_keyframe:
                break
            packet.stream = stream
            out.mux(packet)
    return target


def crossing_recall(video: Path, events: list[dict], until_s: float = float("inf")) -> tuple[int, int, list[dict]]:
    """(crossing objects found, crossing objects, events of the parked car) against the ground truth.

    Only objects on screen before `until_s` count (for a run over the first part of the file).
    """
    from support.synthetic import GroundTruth

    truth = GroundTruth.load(video)
    parked = truth.objects[0]
    crossers = [o for o in truth.objects[1:] if o.onscreen_end_s < until_s]
    first_crossing = min(o.onscreen_start_s for o in truth.objects[1:])
    parked_events = [e for e in events if e["class"] == parked.class_name
                     and (e.get("stationary") or e["videoTime"]["start"] < first_crossing)]
    found = sum(any(e["class"] == o.class_name and not e.get("stationary")
                    and e["videoTime"]["start"] <= o.onscreen_end_s and e["videoTime"]["end"] >= o.onscreen_start_s
                    for e in events) for o in crossers)
    return found, len(crossers), parked_events


def gating(args: argparse.Namespace, work: Path) -> bool:
    from support.synthetic import parked_car_scenario

    scenario = parked_car_scenario(args.minutes * 60, crossings=args.crossings, fps=args.video_fps, seed=14)
    started = time.perf_counter()
    (video,) = make_footage(work / "videos", [scenario], seed=14, container="mp4")
    cut = cut_video(video, work / "baseline" / video.name, args.baseline_minutes * 60)
    print(f"footage: {args.minutes:g} min 640x360 {args.video_fps} fps H.264 ({video.stat().st_size / 1e6:.1f} MB, "
          f"rendered in {time.perf_counter() - started:.0f} s): a car parked throughout, {args.crossings} crossings; "
          f"worker samples {args.sample_fps:g} fps, imgsz {args.imgsz}, torch threads {args.threads}, directory sink")
    weights = neutral_weights_link(work)
    flags = ["--model", str(weights), "--fps", str(args.sample_fps), "--image-size", str(args.imgsz),
             "--device", "cpu"]
    warm_up(work, weights, flags, args.imgsz)
    runs = {
        "every frame (first part)": run_worker(cut.parent, work / "every", [*flags, "--no-motion-gating"]),
        "gated, no stationary rule (first part)": run_worker(cut.parent, work / "plain",
                                                             [*flags, "--stationary-seconds", "0"]),
        "gated": run_worker(video.parent, work / "gated", flags),
    }
    rates = {}
    for name, run in runs.items():
        if run.exit_code != 0:
            print(f"{name} worker exited {run.exit_code}", file=sys.stderr)
            return False
        found, total, parked = crossing_recall(video, run.events, until_s=run.frames_sampled / args.sample_fps)
        rates[name] = run.frames_sampled / run.seconds
        print(f"{name}: {run.frames_sampled:.0f} sampled frames ({run.frames_analysed:.0f} analysed, "
              f"{run.frames_skipped:.0f} skipped) in {run.seconds:.1f} s = {rates[name]:.1f} fps; {len(run.events)} "
              f"events; crossings found {found}/{total}; parked-car events {len(parked)} "
              f"{[(e['videoTime']['start'], e['videoTime']['end'], e.get('stationary')) for e in parked]}")
    found, total, parked = crossing_recall(video, runs["gated"].events)
    speedup = rates["gated"] / rates["every frame (first part)"]
    recall = found / total
    print(f"RESULT parked car, gating speed-up: {speedup:.2f}x (goal >= {SPEEDUP_GOAL:g}x: "
          f"{'MET' if speedup >= SPEEDUP_GOAL else 'MISSED'}); without the stationary rule "
          f"{rates['gated, no stationary rule (first part)'] / rates['every frame (first part)']:.2f}x")
    print(f"RESULT parked car, recall of crossing objects: {found}/{total} = {recall:.3f} (goal >= {RECALL_GOAL}: "
          f"{'MET' if recall >= RECALL_GOAL else 'MISSED'})")
    print(f"RESULT parked car, its events: {len(parked)} (goal: one: {'MET' if len(parked) == 1 else 'MISSED'})")
    return True


def budgeted_bytes(width: int, height: int) -> int:
    """Frame bytes the read-ahead budget allows at this size (8-bit 4:2:0): read ahead, plus held elsewhere."""
    from edge_inference_worker.pipeline import read_ahead_limit

    limit = read_ahead_limit(batch_size=1, gated=True)
    size = width * height * 3 // 2
    ahead = min(limit.max_items, max(limit.min_items, (limit.budget_bytes - limit.reserve_items * size) // size))
    return (ahead + limit.reserve_items) * size


def memory(args: argparse.Namespace, work: Path) -> bool:
    from support.synthetic import Scenario, crossing

    sizes = [tuple(int(n) for n in size.split("x")) for size in args.memory_sizes.split(",")]
    weights = neutral_weights_link(work)
    peaks = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=os.pathsep.join(sys.path))
    for width, height in sizes:
        objects = (
            crossing("person", enter_s=5, crossing_s=6, frame_width=width, y_bottom=0.7 * height,
                     width=int(0.06 * width), height=int(0.3 * height)),
            crossing("car", enter_s=30, crossing_s=5, frame_width=width, y_bottom=0.95 * height,
                     width=int(0.25 * width), height=int(0.1 * width), leftwards=True),
        )
        folder = work / f"memory-{width}x{height}"
        make_footage(folder, [Scenario(f"m{width}x{height}", width, height, 10, 60.0, objects)], seed=3)
        command = [sys.executable, "-c", CHILD, "detect", str(folder), "--out", str(work / f"events-{width}"),
                   "--state-dir", str(work / f"state-{width}"), "--model", str(weights), "--image-size", "640",
                   "--device", "cpu", "--fps", "5"]
        child = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        peak = [line for line in child.stderr.splitlines() if line.startswith("PEAK_KB")]
        if child.returncode != 0 or not peak:
            print(f"memory child for {width}x{height} exited {child.returncode}: {child.stderr[-2000:]}",
                  file=sys.stderr)
            return False
        peaks[(width, height)] = int(peak[0].split()[1]) * 1024
        print(f"{width}x{height}: peak RSS {peaks[(width, height)] / 2**20:.1f} MiB; the budget allows "
              f"{budgeted_bytes(width, height) / 2**20:.1f} MiB of frames")
    small, large = sizes[0], sizes[-1]
    growth = peaks[large] - peaks[small]
    allowed = budgeted_bytes(*large) - budgeted_bytes(*small)
    print(f"RESULT memory growth {small[0]}x{small[1]} -> {large[0]}x{large[1]}: {growth / 2**20:+.1f} MiB, the "
          f"read-ahead budget allows {allowed / 2**20:+.1f} MiB more frame bytes: "
          f"{'MET' if growth <= allowed else 'MISSED'}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crossings", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=120.0, help="length of the parked-car file")
    parser.add_argument("--baseline-minutes", type=float, default=20.0, help="first part, for the baselines")
    parser.add_argument("--video-fps", type=int, default=2)
    parser.add_argument("--sample-fps", type=float, default=2.0)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-sizes", default="640x360,768x576,1920x1080")
    parser.add_argument("--skip-gating", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()

    work = temp_workdir("real-cameras", args.keep)
    offline_ultralytics(work / "ultralytics")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print(f"machine: {machine()}")
    if not args.skip_memory and not memory(args, work):
        return 1
    if not args.skip_gating and not gating(args, work):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
