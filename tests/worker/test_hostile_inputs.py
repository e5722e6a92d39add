"""Bad input never crashes the worker: each hostile file gets its specific outcome, log line and count.

One in-process Batch run over a folder holding every kind of hostile file next to a good clip;
the table below then checks each file's outcome, and the counters on the worker's own registry.
"""

from __future__ import annotations

import logging
import os
import threading

import pytest
from edge_inference_worker.config import S3Credentials, parse_detect_flags
from edge_inference_worker.exit_codes import EXIT_FILES_FAILED
from edge_inference_worker.files import VideoFile, file_id
from edge_inference_worker.ledger import Ledger
from edge_inference_worker.pipeline import process_file
from edge_inference_worker.worker import Worker
from support.synthetic import make_video, short_scenario
from support.worker_harness import IMAGE_SIZE, MODEL, event_documents

# file -> (outcome, words the log line / summary reason must contain)
TABLE = {
    "good.mp4": ("done", ""),
    "empty.mp4": ("empty", "zero-byte file"),
    "cut-index.mp4": ("corrupt", "moov atom not found"),  # mp4 cut before its index: nothing decodes
    "cut-stream.mkv": ("truncated", "stream ends at"),  # mkv cut mid-stream: events before the cut kept
    "random.mp4": ("corrupt", "cannot open"),  # an mp4 signature, then noise
    "notes.mp4": ("non_video", "cannot open"),  # text, no container signature
    "folder.mp4": ("unreadable", "not a regular file (directory)"),
    "pipe.mkv": ("unreadable", "not a regular file (fifo)"),  # opening it would block forever
    "dangling.mp4": ("unreadable", "dangling symlink"),
    "escape.mp4": ("symlink_escape", "outside the input folder"),
    "sub/escape-dir.mp4": ("symlink_escape", "outside the input folder"),
}
TERMINAL = {"done", "empty", "corrupt", "truncated", "non_video"}


@pytest.fixture(scope="module")
def hostile_run(short_clip, worker_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    videos, outside = root / "videos", root / "outside"
    videos.mkdir()
    (videos / "sub").mkdir()
    outside.mkdir()
    good = short_clip.path.read_bytes()
    (videos / "good.mp4").write_bytes(good)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "cut-index.mp4").write_bytes(good[: len(good) // 3])
    make_video(outside / "whole.mkv", short_scenario(), seed=11)
    mkv = (outside / "whole.mkv").read_bytes()
    (videos / "cut-stream.mkv").write_bytes(mkv[: len(mkv) * 6 // 10])
    (videos / "random.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(40_000))
    (videos / "notes.mp4").write_text("not a video\n" * 200)
    (videos / "folder.mp4").mkdir()
    os.mkfifo(videos / "pipe.mkv")
    (videos / "dangling.mp4").symlink_to(videos / "gone.mp4")
    (videos / "escape.mp4").symlink_to(outside / "whole.mkv")
    (outside / "dir.mp4").mkdir()
    (videos / "sub" / "escape-dir.mp4").symlink_to(outside / "dir.mp4")
    config = parse_detect_flags(
        [str(videos), "--out", str(root / "events"), "--state-dir", str(root / "state"), "--model", MODEL,
         "--image-size", str(IMAGE_SIZE), "--device", "cpu", "--node", "n1"],
        worker_env,
    )
    worker = Worker(config, S3Credentials(None, None), worker_env, threading.Event())
    handler = _Capture()
    logger = logging.getLogger("edge_inference_worker")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        code = worker.run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return root, worker, code, handler.records


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(("rel", "expected"), sorted(TABLE.items()))
def test_each_hostile_file_gets_its_outcome(hostile_run, rel, expected):
    root, worker, _, records = hostile_run
    outcome, words = expected
    assert worker.results[rel][0] == outcome
    assert words in worker.results[rel][1]
    lines = [r for r in records if getattr(r, "fields", {}).get("file") == rel and "outcome" in r.fields]
    assert len(lines) == 1 and lines[0].fields["outcome"] == outcome  # one specific line per file
    if outcome != "done":
        assert lines[0].levelno == logging.WARNING and words in lines[0].getMessage()


def test_a_file_gone_before_it_is_opened_is_vanished_not_fatal(hostile_run):
    root, worker, _, _ = hostile_run
    gone = VideoFile(root / "videos" / "rotated-away.mp4", "rotated-away.mp4", 1000, 0)
    result = process_file(worker.services, gone)
    assert (result.outcome, result.reason) == ("vanished", "file disappeared before it was opened")


def test_counters_by_outcome(hostile_run):
    _, worker, _, _ = hostile_run
    expected: dict[str, int] = {}
    for outcome, _ in TABLE.values():
        expected[outcome] = expected.get(outcome, 0) + 1
    for outcome, count in expected.items():
        assert worker.registry.get_sample_value("edge_inference_files_total", {"outcome": outcome}) == count


def test_the_batch_goes_on_and_exits_1_with_a_summary(hostile_run):
    root, _, code, records = hostile_run
    assert code == EXIT_FILES_FAILED
    (summary,) = [r for r in records if r.getMessage().startswith("batch finished with failures")]
    assert set(summary.fields["failed"]) == set(TABLE) - {"good.mp4"}
    # The good clip's four events and the events before the cut in the truncated file all arrived.
    documents = event_documents(root / "events")
    by_file = {}
    for doc in documents.values():
        by_file.setdefault(doc["source"]["path"], []).append(doc)
    assert len(by_file["good.mp4"]) == 4
    assert by_file["cut-stream.mkv"] and all(d["videoTime"]["end"] < 24 * 0.6 for d in by_file["cut-stream.mkv"])


def test_content_outcomes_are_remembered_and_others_retried(hostile_run):
    root, _, _, _ = hostile_run
    ledger = Ledger(root / "state" / "ledger")
    videos = root / "videos"
    for rel, (outcome, _) in TABLE.items():
        path = videos / rel
        if not path.is_file() or path.is_symlink():
            continue
        entry = ledger.get(file_id(rel))
        if outcome in TERMINAL:
            assert entry is not None and entry.outcome == outcome, rel
