"""`make demo`: events from video into a bucket, on a kind cluster or on this machine alone.

Where a working Docker engine (`docker info`) and `kind` exist, this runs scripts/kind-demo.sh (a
kind cluster, the images, the chart with MinIO, examples/inferencejob.yaml) and stops there.

Otherwise it runs the same job on an embedded default: this machine as a single edge node.
  1. sample CCTV-like video is generated (tests/support/synthetic.py) into a temp folder:
     camera 1 a busy 24 s street scene, camera 2 two minutes of mostly static footage;
  2. a local S3 server process starts (SeaweedFS on loopback, as in the tests);
  3. the worker runs once over the video:
       edge-inference detect <videos> --out s3://events/demo --model synthetic-yolov5n
     (the small bundled detector, trained on footage like this, so no network is needed);
  4. the events in the bucket are listed with the bytes of video scanned vs the bytes uploaded.
Exit status: 0 when events arrived, 1 when none did, 2 when a step could not run.

    python scripts/demo.py [--cameras N] [--seconds S] [--keep] [--embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the S3 server launcher is shared with the tests

BUCKET = "events"
PREFIX = "demo"
MODEL = "synthetic-yolov5n"
MODEL_IMAGE_SIZE = 320  # the size the bundled detector was trained at
WORKER_TIMEOUT_SECONDS = 900
NO_CLUSTER_NOTICE = (
    "No cluster was used: this ran on this machine as a single edge node; the full path "
    "(kind cluster, images, Helm chart with MinIO, examples/inferencejob.yaml) needs a working Docker engine and kind."
)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def cluster_tools_present() -> bool:
    """True when `kind` is installed and a Docker engine answers."""
    if shutil.which("kind") is None or shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run_kind_demo() -> int:
    script = REPO / "scripts" / "kind-demo.sh"
    if not script.is_file():
        say(f"Docker and kind are here, but {script.relative_to(REPO)} is missing")
        return 2
    say("Docker and kind found: running the cluster demo (scripts/kind-demo.sh)")
    return subprocess.run(["bash", str(script)], cwd=REPO).returncode


def generate_video(folder: Path, cameras: int, seconds: float) -> list[Path]:
    """Synthetic CCTV clips: camera 1 a busy street (24 s at most), the others mostly static footage."""
    from support.synthetic import make_video, short_scenario, static_heavy_scenario

    busy = short_scenario()
    scenarios = [busy if seconds >= busy.duration_s else _shortened(busy, seconds)]
    scenarios += [static_heavy_scenario(seconds, seed=camera) for camera in range(2, cameras + 1)]
    videos = []
    for camera, scenario in enumerate(scenarios, start=1):
        path = folder / f"camera-{camera}" / f"{scenario.name}.mp4"
        make_video(path, scenario, seed=camera)
        videos.append(path)
    return videos


def _shortened(scenario, seconds: float):
    """The scenario cut to `seconds`, keeping only the objects that finish crossing by then."""
    from dataclasses import replace

    objects = tuple(o for o in scenario.objects if o.path[-1][0] <= seconds)
    return replace(scenario, duration_s=float(seconds), objects=objects, name=f"{scenario.name}-{seconds:g}s")


def run_worker(videos: Path, workdir: Path, s3, log_path: Path) -> int:
    """The worker CLI over the folder, events to the local S3 server; its JSON log goes to a file."""
    command = [
        sys.executable, "-m", "edge_inference_worker.cli", "detect", str(videos),
        "--out", f"s3://{BUCKET}/{PREFIX}",
        "--s3-endpoint", f"http://{s3.endpoint}",
        "--model", MODEL,
        "--image-size", str(MODEL_IMAGE_SIZE),
        "--device", "cpu",
        "--node", socket.gethostname().split(".")[0].lower() or "local",
        "--state-dir", str(workdir / "state"),
    ]  # fmt: skip
    env = {**os.environ, **s3.credentials_env(), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    env.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics"))
    say("running: edge-inference " + " ".join(command[3:]))
    with open(log_path, "wb") as log:
        try:
            return subprocess.run(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=WORKER_TIMEOUT_SECONDS
            ).returncode
        except subprocess.TimeoutExpired:
            say(f"the worker did not finish within {WORKER_TIMEOUT_SECONDS} s")
            return 124


def list_events(s3) -> tuple[list[dict], int]:
    """The event records in the bucket (parsed JSON, with their key) and the bytes of every object."""
    client = s3.client()
    events, uploaded = [], 0
    for obj in client.list_objects(BUCKET, prefix=PREFIX + "/", recursive=True):
        uploaded += obj.size or 0
        if obj.object_name.endswith(".json"):
            record = json.loads(s3.get(obj.object_name))
            events.append({"key": obj.object_name, **record})
    return events, uploaded


def _source_and_time(event: dict) -> tuple[str, float]:
    return event.get("source", {}).get("path", ""), event.get("videoTime", {}).get("start", 0.0)


def describe(event: dict) -> str:
    video_time = event.get("videoTime", {})
    confidence = event.get("confidence", {})
    source = event.get("source", {})
    return (
        f"{event.get('class', '?'):<7} {source.get('path', '?'):<32} "
        f"{video_time.get('start', 0):6.1f}-{video_time.get('end', 0):5.1f} s  "
        f"peak {confidence.get('peak', 0):.2f}  {event['key']}"
    )


def bundled_model() -> Path:
    """Where the worker looks for the built-in model (the same rule as the worker's)."""
    folder = os.environ.get("EDGE_INFERENCE_MODEL_DIR") or REPO / "inference-image" / "edge_inference_worker" / "models"
    return Path(folder) / f"{MODEL}.pt"


def embedded_demo(args: argparse.Namespace) -> int:
    from support.s3server import SeaweedS3Server

    if not bundled_model().is_file():
        say(f"the bundled model {bundled_model()} is missing (it is trained by scripts/train_detector.py)")
        return 2
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="edge-inference-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    why = "--embedded" if args.embedded else "no working Docker engine and kind here"
    say(f"{why}: running on this machine as one edge node (in {workdir})")
    succeeded = False
    try:
        started = time.monotonic()
        videos = generate_video(workdir / "videos", args.cameras, args.seconds)
        scanned = sum(path.stat().st_size for path in videos)
        elapsed = time.monotonic() - started
        say(f"generated {len(videos)} sample video file(s), {scanned / 1e6:.2f} MB, in {elapsed:.1f} s")
        with SeaweedS3Server(workdir / "s3", bucket=BUCKET) as s3:
            say(f"local S3 server (SeaweedFS) at http://{s3.endpoint}, bucket {BUCKET}")
            started = time.monotonic()
            log_path = workdir / "worker.log"
            code = run_worker(workdir / "videos", workdir, s3, log_path)
            say(f"worker exited with {code} after {time.monotonic() - started:.1f} s (log: {log_path})")
            if code != 0:
                print(_tail(log_path), flush=True)
            events, uploaded = list_events(s3)
        say(f"{len(events)} event(s) in s3://{BUCKET}/{PREFIX}/:")
        for event in sorted(events, key=_source_and_time):
            print("  " + describe(event))
        ratio = uploaded / scanned if scanned else 0.0
        say(
            f"video scanned: {scanned:,} bytes; uploaded: {uploaded:,} bytes "
            f"({ratio:.2%} of the video; {1 - ratio:.2%} never left the node)"
        )
        print(NO_CLUSTER_NOTICE, flush=True)
        if not events:
            say(f"no events arrived (the worker's log: {log_path})")
            return 1
        succeeded = True
        return 0
    finally:
        if args.keep or args.workdir or not succeeded:
            say(f"kept {workdir} (videos, worker log, S3 data)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", action="store_true", help="skip the cluster path even if Docker and kind exist")
    parser.add_argument("--cameras", type=int, default=2, help="sample video files to generate (one per camera)")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="length of the mostly static clips (the busy one: 24 s at most)"
    )
    parser.add_argument("--workdir", help="keep everything in this folder instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not args.embedded and cluster_tools_present():
        return run_kind_demo()
    try:
        return embedded_demo(args)
    except Exception as error:  # one clear line instead of a traceback for a step that could not run
        say(f"the demo could not run: {type(error).__name__}: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
