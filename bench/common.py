"""Shared pieces of the benchmarks: synthetic footage, the worker run in-process, the bare ultralytics loop.

Every benchmark measures the things it compares side by side in one process and one run, on the same files
with the same model, and prints ratios; absolute numbers depend on the machine (printed by `machine()`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "inference-image" / "edge_inference_worker" / "models" / "synthetic-yolov5n.pt"
sys.path.insert(0, str(REPO / "tests"))  # support.s3server: the same real S3 server the tests use


def offline_ultralytics(config_dir: Path) -> None:
    """What the worker image bakes in: ultralytics never downloads or installs anything."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))


def machine() -> str:
    """One line about the machine the numbers came from."""
    import av
    import torch
    import ultralytics

    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    quota = "none"
    try:
        max_, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        quota = "none" if max_ == "max" else f"{int(max_) / int(period):g} CPUs"
    except (OSError, ValueError):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {len(os.sched_getaffinity(0))} usable cores (cgroup quota {quota}), load average {load}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
            f"PyAV {av.__version__}")


def minor_faults() -> int:
    """Minor page faults of this process so far (memory faulted in again after the allocator gave it back)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def make_footage(folder: Path, scenarios: list, seed: int, **video_options) -> list[Path]:
    """Render one video per scenario into `folder` (truth JSON beside each); returns the video paths."""
    from support.synthetic import make_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scenario in enumerate(scenarios):
        path = folder / f"{scenario.name}-{i:03d}.{video_options.get('container', 'mp4')}"
        make_video(path, scenario, seed=seed + i, **video_options)
        paths.append(path)
    return paths


def neutral_weights_link(folder: Path, weights: Path = MODEL) -> Path:
    """A link to the weights under a name ultralytics will not rewrite (see models/README.md, "yolov5u")."""
    link = folder / "bench-detector.pt"
    if not link.exists():
        link.symlink_to(weights.resolve())
    return link


@dataclass
class WorkerRun:
    """What one in-process worker run did, from its own Prometheus registry and its sink."""

    seconds: float
    exit_code: int
    frames_decoded: float
    frames_analysed: float
    frames_skipped: float
    bytes_scanned: float
    bytes_uploaded: float
    stage_seconds: dict[str, float]
    events: list[dict] = field(default_factory=list)
    startup_seconds: float = 0.0  # run() start -> "worker started" (sink check, model load, warm-up)
    files_seconds: float = 0.0  # first "file started" -> last "file done"
    drain_seconds: float = 0.0  # last "file done" -> run() returns (outbox delivering the last events)

    @property
    def frames_sampled(self) -> float:
        return self.frames_analysed + self.frames_skipped


@contextmanager
def s3_server(root: Path) -> Iterator[object]:
    """A real S3 server (SeaweedFS) on loopback for the worker to upload to."""
    from support.s3server import SeaweedS3Server

    with SeaweedS3Server(root) as server:
        yield server


def run_worker(input_dir: Path, workdir: Path, flags: list[str], s3=None) -> WorkerRun:
    """Run `edge-inference detect <input_dir> <flags>` in this process (Batch) and collect what it did.

    Events go to `s3` (a running `SeaweedS3Server`) when given, else to a directory sink. The timed part is
    the whole `Worker.run()`: model load and warm-up, every file, and waiting until the sink has every event.
    """
    from edge_inference_api import telemetry
    from edge_inference_worker.config import S3Credentials, parse_detect_flags
    from edge_inference_worker.worker import Worker

    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    shutil.rmtree(state, ignore_errors=True)
    environ = dict(os.environ)
    if s3 is not None:
        prefix = f"bench-{time.monotonic_ns()}"
        out = f"s3://{s3.bucket}/{prefix}"
        environ.update(s3.credentials_env())
        flags = [*flags, "--s3-endpoint", f"http://{s3.endpoint}", "--s3-insecure"]
        credentials = S3Credentials(s3.access_key, s3.secret_key)
    else:
        sink = workdir / "events"
        shutil.rmtree(sink, ignore_errors=True)
        out = str(sink)
        credentials = S3Credentials(None, None)
    config = parse_detect_flags([str(input_dir), "--out", out, "--state-dir", str(state), *flags], environ)
    worker = Worker(config, credentials, environ, threading.Event())
    marks = _LogMarks()
    logger = logging.getLogger("edge_inference_worker")
    level = logger.level
    logger.addHandler(marks)
    logger.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        exit_code = worker.run()
        seconds = time.perf_counter() - started
    finally:
        logger.removeHandler(marks)
        logger.setLevel(level)

    registry = worker.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    stages = {}
    for metric in registry.collect():
        if metric.name == telemetry.PREFIX + "stage_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_sum"):
                    stages[sample.labels["stage"]] = sample.value
    if s3 is not None:
        client = s3.client()
        events = [json.loads(client.get_object(s3.bucket, o.object_name).read())
                  for o in client.list_objects(s3.bucket, prefix=prefix + "/", recursive=True)
                  if o.object_name.endswith(".json")]
    else:
        events = [json.loads(p.read_text()) for p in sorted(Path(out).rglob("*.json"))]
    return WorkerRun(
        seconds=seconds,
        exit_code=exit_code,
        frames_decoded=value(telemetry.FRAMES_DECODED + "_total"),
        frames_analysed=value(telemetry.FRAMES_ANALYSED + "_total"),
        frames_skipped=value(telemetry.FRAMES_SKIPPED_MOTION + "_total"),
        bytes_scanned=value(telemetry.BYTES_SCANNED + "_total"),
        bytes_uploaded=value(telemetry.BYTES_UPLOADED + "_total"),
        stage_seconds=stages,
        events=events,
        startup_seconds=marks.first("worker started") - started,
        files_seconds=marks.last("file done") - marks.first("file started"),
        drain_seconds=started + seconds - marks.last("file done"),
    )


class _LogMarks(logging.Handler):
    """Remembers when the worker logged each message (perf_counter), to split a run into phases."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.marks: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.marks.append((record.getMessage(), time.perf_counter()))

    def first(self, message: str) -> float:
        return next(t for m, t in self.marks if m == message)

    def last(self, message: str) -> float:
        return [t for m, t in self.marks if m == message][-1]


def bare_predict(files: list[Path], weights: Path, imgsz: int, conf: float) -> tuple[int, float]:
    """The baseline: ultralytics' own `predict(source, stream=True)` over each file, every frame analysed.

    Returns (frames, seconds), model load included (as the worker's time includes its own).
    """
    from ultralytics import YOLO

    started = time.perf_counter()
    model = YOLO(str(weights))
    frames = 0
    for path in files:
        for _ in model.predict(source=str(path), stream=True, imgsz=imgsz, conf=conf, device="cpu", verbose=False):
            frames += 1
    return frames, time.perf_counter() - started


def temp_workdir(name: str, keep: Path | None) -> Path:
    """A fresh working folder: `keep` if given (kept for inspection), else under the system temp dir."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return keep
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


def stage_breakdown(run: WorkerRun) -> str:
    """Seconds per pipeline stage, largest first, with the share of the run's wall time."""
    parts = [f"{stage} {seconds:.1f} s ({seconds / run.seconds:.0%})"
             for stage, seconds in sorted(run.stage_seconds.items(), key=lambda kv: -kv[1])]
    accounted = sum(run.stage_seconds.values())
    parts.append(f"not in a stage {run.seconds - accounted:.1f} s ({(run.seconds - accounted) / run.seconds:.0%}): "
                 f"start-up (S3 check, model load, warm-up) {run.startup_seconds:.2f} s, outbox drain after the last "
                 f"file {run.drain_seconds:.2f} s, the rest between stages "
                 f"{run.seconds - accounted - run.startup_seconds - run.drain_seconds:.2f} s")
    return ", ".join(parts)


def match_events(reference: list[dict], candidate: list[dict], slack_s: float = 0.0) -> tuple[int, list[dict]]:
    """How many reference events have a candidate of the same file and class overlapping in video time.

    Returns (matched, unmatched reference events).
    """
    unmatched = []
    matched = 0
    for ref in reference:
        start, end = ref["videoTime"]["start"] - slack_s, ref["videoTime"]["end"] + slack_s
        if any(c["source"]["path"] == ref["source"]["path"] and c["class"] == ref["class"]
               and c["videoTime"]["start"] <= end and c["videoTime"]["end"] >= start for c in candidate):
            matched += 1
        else:
            unmatched.append(ref)
    return matched, unmatched


def warm_up(work: Path, weights: Path, flags: list[str], imgsz: int, s3=None) -> None:
    """One untimed pass of the worker and of the bare loop over a 2 s clip.

    The first pass in a process pays for lazy imports and ultralytics' predictor set-up; without this the
    side measured first would carry that cost alone.
    """
    from support.synthetic import Scenario

    clip = make_footage(work / "warm-up" / "videos", [Scenario("warm-up", 640, 360, 10, 2.0)], seed=1)
    run_worker(clip[0].parent, work / "warm-up" / "worker", flags, s3=s3)
    bare_predict(clip, weights, imgsz, conf=0.25)
