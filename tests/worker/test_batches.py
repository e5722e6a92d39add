"""Frames batched several to a forward pass (the CUDA path's batching, here on the CPU) give the
same events as the truth: motion gating, grouping and checkpoints work per aligned batch."""

from __future__ import annotations

import threading

from edge_inference_worker.config import S3Credentials, parse_detect_flags
from edge_inference_worker.exit_codes import EXIT_OK
from edge_inference_worker.worker import Worker
from support.worker_harness import IMAGE_SIZE, MODEL, assert_events_match_truth, event_documents


class BatchingWorker(Worker):
    """The real worker and detector, with the detector set to take 4 frames per forward pass."""

    def _load_detector(self, state):
        detector = super()._load_detector(state)
        detector.batch_size = 4
        return detector


def test_batched_frames_find_the_truth(short_clip, worker_env, tmp_path):
    config = parse_detect_flags(
        [str(short_clip.path.parent), "--out", str(tmp_path / "events"), "--state-dir", str(tmp_path / "state"),
         "--model", MODEL, "--image-size", str(IMAGE_SIZE), "--device", "cpu"],
        worker_env,
    )
    worker = BatchingWorker(config, S3Credentials(None, None), worker_env, threading.Event())
    assert worker.run() == EXIT_OK
    assert worker.services.detector.batch_size == 4
    assert_events_match_truth(list(event_documents(tmp_path / "events").values()), short_clip.truth)
    inference = worker.registry.get_sample_value("edge_inference_inference_seconds_count")
    analysed = worker.registry.get_sample_value("edge_inference_frames_analysed_total")
    assert inference < analysed  # several frames per forward pass
