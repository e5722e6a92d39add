"""Helpers for running the worker as a subprocess and judging its events against ground truth.

Used by tests/worker (and usable by benchmarks): the worker runs as the real console entry point
(`python -m edge_inference_worker.cli`) with the committed synthetic detector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.net import http_get, loopback_url
from support.synthetic import GroundTruth

MODEL = "synthetic-yolov5n"
IMAGE_SIZE = 320  # what the bundled model was trained at
COOLDOWN = 3.0
MIN_FRAMES = 3
FPS = 2.0


@dataclass(frozen=True)
class Clip:
    path: Path
    truth: GroundTruth


def offline_environment(config_dir: Path) -> dict[str, str]:
    """The environment of a worker subprocess: offline (ultralytics' settings in `config_dir`), one thread."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "ORT_DISABLE_TELEMETRY": "1",
        "YOLO_CONFIG_DIR": str(config_dir),
        "PYTHONUNBUFFERED": "1",
    }


def detect_args(input_dir: Path, out: str, state_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edge_inference_worker.cli",
        "detect",
        str(input_dir),
        "--out",
        out,
        "--state-dir",
        str(state_dir),
        "--model",
        MODEL,
        "--image-size",
        str(IMAGE_SIZE),
        "--device",
        "cpu",
        "--fps",
        str(FPS),
        "--min-frames",
        str(MIN_FRAMES),
        "--cooldown",
        str(COOLDOWN),
        "--node",
        "node-a",
        "--namespace",
        "ns",
        "--job",
        "job1",
        *extra,
    ]


def run_worker(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def log_lines(stderr: str) -> list[dict]:
    """Every JSON log line (the worker writes nothing else on stderr)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def event_keys(keys: list[str]) -> list[str]:
    """The keys of events (JPEG and JSON), without the event index's objects (`<prefix>/_index/...`)."""
    return [key for key in keys if "/_index/" not in f"/{key}"]


def event_documents(out_dir: Path) -> dict[str, dict]:
    """Event JSON documents in a directory sink, by key (relative path without .json); the index left out."""
    return {
        str(p.relative_to(out_dir))[: -len(".json")]: json.loads(p.read_text())
        for p in sorted(out_dir.rglob("*.json"))
        if "_index" not in p.relative_to(out_dir).parts
    }


def truth_intervals(truth: GroundTruth, cooldown: float = COOLDOWN) -> list[tuple[str, float, float]]:
    """Per class, the truth presence intervals merged where the gap is shorter than the cooldown
    (the worker rightly makes one event of them)."""
    merged: list[tuple[str, float, float]] = []
    for cls in sorted({o.class_name for o in truth.objects}):
        spans = sorted((o.start_s, o.end_s) for o in truth.objects if o.class_name == cls)
        current = list(spans[0])
        for start, end in spans[1:]:
            if start - current[1] < cooldown:
                current[1] = max(current[1], end)
            else:
                merged.append((cls, *current))
                current = [start, end]
        merged.append((cls, *current))
    return merged


def assert_events_match_truth(documents: list[dict], truth: GroundTruth) -> None:
    """Every truth interval is found by exactly one event of its class; no event lies outside one."""
    expected = truth_intervals(truth)
    slack = 1.0 / FPS
    for cls, start, end in expected:
        hits = [
            d
            for d in documents
            if d["class"] == cls and d["videoTime"]["start"] <= end + slack and d["videoTime"]["end"] >= start - slack
        ]
        assert len(hits) == 1, f"{cls} {start}-{end}: expected one event, got {[d['videoTime'] for d in hits]}"
        # It starts once the object is on screen and within min_frames samples of it being half in.
        assert start - 1.0 <= hits[0]["videoTime"]["start"] <= start + (MIN_FRAMES + 1) / FPS
    for doc in documents:
        cls, span = doc["class"], doc["videoTime"]
        onscreen = [(o.onscreen_start_s, o.onscreen_end_s) for o in truth.objects if o.class_name == cls]
        # First and last sighting both while an object of that class was on screen: no phantom.
        for t in (span["start"], span["end"]):
            assert any(s - slack <= t <= e + slack for s, e in onscreen), f"phantom {cls} event at {span}"
    assert len(documents) == len(expected)


def metric_value(port: int, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample from the worker's /metrics, or None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = http_get(loopback_url(port, "/metrics"))
    if status != 200:
        return None
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and (labels is None or all(sample.labels.get(k) == v for k, v in labels.items())):
                return sample.value
    return None


def ledger_entry(state_dir: Path, fid: str) -> dict | None:
    """The worker's ledger entry for a file id, as written (atomically) on disk."""
    path = state_dir / "ledger" / f"{fid}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass
class InProcessRun:
    """What one in-process worker run did: the worker (results, registry), its exit code and log records."""

    worker: object  # edge_inference_worker.worker.Worker
    code: int
    records: list

    def lines(self, msg: str) -> list:
        """Log records whose message is exactly `msg`."""
        return [r for r in self.records if r.getMessage() == msg]

    def outcome_lines(self, rel: str) -> list:
        """Log records that report an outcome for the file `rel`."""
        return [r for r in self.records if getattr(r, "fields", {}).get("file") == rel and "outcome" in r.fields]

    def metric(self, name: str, **labels: str) -> float:
        return self.worker.registry.get_sample_value(name, labels) or 0.0


class LogCapture:
    """Collects the worker's log records (INFO and up) while a block runs."""

    def __init__(self) -> None:
        import logging

        self.records: list = []
        self._handler = logging.Handler(logging.INFO)
        self._handler.emit = self.records.append
        self._logger = logging.getLogger("edge_inference_worker")

    def __enter__(self) -> LogCapture:
        import logging

        self._level = self._logger.level
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._level)


def detect_flags(input_dir: Path, out: str, state_dir: Path, *extra: str) -> list[str]:
    """The `detect` flags of `detect_args`, without the interpreter and subcommand (for in-process runs)."""
    return detect_args(input_dir, out, state_dir, *extra)[4:]


def run_in_process(flags: list[str], environ: dict[str, str], stop=None, credentials=None) -> InProcessRun:
    """Parse `detect` flags and run a Worker in this process (Batch, or Continuous until `stop` is set)."""
    import threading

    from edge_inference_worker.config import S3Credentials, parse_detect_flags
    from edge_inference_worker.worker import Worker

    config = parse_detect_flags(flags, environ)
    worker = Worker(config, credentials or S3Credentials(None, None), environ, stop or threading.Event())
    with LogCapture() as capture:
        code = worker.run()
    return InProcessRun(worker, code, capture.records)
