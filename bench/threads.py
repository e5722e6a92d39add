#!/usr/bin/env python3
"""Thread oversubscription on a 2-CPU budget: decoder and torch thread settings, before vs after, one run.

    python bench/threads.py [--rounds 2] [--host-cores 16]

A pod limited to 2 CPUs on a big node sees every core of the host: left alone, torch sizes its pool to the
host's cores and FFmpeg's decoder (thread_count 0 = auto) does the same, so dozens of threads fight for 2
CPUs. The worker pins both (torch from OMP_NUM_THREADS / the cgroup quota, the decoder by `decoder_threads`).
This runs the worker's own decode -> detect loop (VideoReader + UltralyticsDetector, every frame analysed) on
this machine's cores with thread counts set as a `--host-cores` host would set them ("before") and as the
worker sets them ("after"), plus one-knob variants, alternating rounds.

The number that decides is CPU time per frame (user + system, all threads, from getrusage): under a CPU quota
the process gets `budget` CPU-seconds per second, so its frame rate is at most budget / (CPU s per frame), and
wasted spinning and switching shows up there. Wall-clock fps is printed too, but on a machine without a quota
shared with other work it rewards oversubscription (more threads take a bigger share of the neighbours' CPU).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

from common import machine, make_footage, neutral_weights_link, offline_ultralytics, temp_workdir


def os_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_loop(
    video: Path, detector, decoder_threads: int, torch_threads: int, fps: float
) -> tuple[int, float, float, int]:
    """(frames, wall seconds, CPU seconds, peak OS threads) of decode -> detect over one file."""
    import torch
    from edge_inference_worker.decode import VideoReader

    torch.set_num_threads(torch_threads)
    peak = [os_threads()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], os_threads())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    frames = 0
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    with VideoReader(video, threads=decoder_threads) as reader:
        for sample in reader.samples(fps):
            detector.detect([sample.image])
            frames += 1
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    stop.set()
    watcher.join()
    return frames, seconds, cpu, peak[0] - 1  # minus the watcher itself


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--host-cores", type=int, default=16, help="cores of the node the defaults would see")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()

    work = temp_workdir("threads", args.keep)
    offline_ultralytics(work / "ultralytics")
    from edge_inference_worker.config import parse_detect_flags
    from edge_inference_worker.cpus import available_cpus
    from edge_inference_worker.decode import decoder_threads
    from edge_inference_worker.detector import UltralyticsDetector, cpu_threads
    from support.synthetic import short_scenario

    budget = cpu_threads({})  # what the worker pins torch to here (affinity / cgroup quota)
    pinned = decoder_threads(available_cpus())  # what the worker gives the decoder here
    scenario = short_scenario(width=1280, height=720)
    video = make_footage(work / "videos", [scenario], seed=300)[0]
    weights = neutral_weights_link(work)
    config = parse_detect_flags([str(video.parent), "--out", str(work / "events"), "--model", str(weights),
                                 "--image-size", str(args.imgsz), "--device", "cpu"], {})
    detector = UltralyticsDetector(weights, config.model, [], {"OMP_NUM_THREADS": str(budget)})
    detector.warm_up()
    print(f"machine: {machine()}")
    print(f"footage: 1 x 24 s 1280x720 10 fps H.264, every frame decoded and detected at imgsz {args.imgsz}; "
          f"CPU budget {budget} (the worker's cpu_threads()); simulated host cores {args.host_cores}")
    host = args.host_cores
    configs = {
        f"before: decoder {host} threads, torch {host}": (host, host),
        f"decoder {pinned} (pinned), torch {host}": (pinned, host),
        f"decoder {host}, torch {budget} (pinned)": (host, budget),
        f"after (worker): decoder {pinned}, torch {budget}": (pinned, budget),
        f"decoder {budget}, torch {budget}": (budget, budget),
    }
    cpu_per_frame: dict[str, list[float]] = {name: [] for name in configs}
    wall_fps: dict[str, list[float]] = {name: [] for name in configs}
    threads_seen: dict[str, int] = {}
    for round_ in range(1, args.rounds + 1):
        for name, (decoder_count, torch_count) in configs.items():
            frames, seconds, cpu, peak = run_loop(video, detector, decoder_count, torch_count, scenario.fps)
            cpu_per_frame[name].append(cpu / frames)
            wall_fps[name].append(frames / seconds)
            threads_seen[name] = max(threads_seen.get(name, 0), peak)
            print(f"round {round_}: {name}: {frames} frames, {1000 * cpu / frames:.1f} CPU ms/frame, "
                  f"wall {frames / seconds:.2f} fps, {peak} OS threads")
    names = list(configs)
    quota_fps = {name: budget / statistics.median(values) for name, values in cpu_per_frame.items()}
    for name in names:
        print(f"  {name}: {1000 * statistics.median(cpu_per_frame[name]):.1f} CPU ms/frame -> at most "
              f"{quota_fps[name]:.2f} fps in a {budget}-CPU quota ({quota_fps[name] / quota_fps[names[0]]:.2f}x "
              f"before); wall {statistics.median(wall_fps[name]):.2f} fps; up to {threads_seen[name]} OS threads")
    before, after = names[0], names[3]
    print(f"RESULT threads: CPU time per frame {1000 * statistics.median(cpu_per_frame[before]):.1f} -> "
          f"{1000 * statistics.median(cpu_per_frame[after]):.1f} ms, fps in a {budget}-CPU quota "
          f"{quota_fps[after] / quota_fps[before]:.2f}x ({quota_fps[before]:.2f} -> {quota_fps[after]:.2f}); "
          f"OS threads {threads_seen[before]} -> {threads_seen[after]}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
