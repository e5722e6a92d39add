"""A file processed while the camera paused, then grown, is processed again under the same keys."""

from __future__ import annotations

from support.synthetic import make_video, short_scenario
from support.worker_harness import assert_events_match_truth, detect_args, event_documents, log_lines, run_worker


def test_a_grown_file_overwrites_its_events_and_adds_none_twice(worker_env, tmp_path):
    outside, videos = tmp_path / "outside", tmp_path / "videos"
    outside.mkdir()
    videos.mkdir()
    truth = make_video(outside / "whole.mkv", short_scenario(), seed=11)
    whole = (outside / "whole.mkv").read_bytes()
    growing = videos / "cam.mkv"
    growing.write_bytes(whole[: len(whole) * 6 // 10])  # what the camera had written before it paused
    args = detect_args(videos, str(tmp_path / "events"), tmp_path / "state")

    first = run_worker(args, worker_env)
    lines = log_lines(first.stderr)
    outcomes = [line["outcome"] for line in lines if line.get("file") == "cam.mkv" and "outcome" in line]
    assert first.returncode == 1 and outcomes == ["truncated"], first.stderr[-3000:]  # Batch reports the short file
    early = event_documents(tmp_path / "events")
    assert early, "events before the pause were found"

    growing.write_bytes(whole)  # the camera appended the rest
    second = run_worker(args, worker_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [line["file"] for line in log_lines(second.stderr) if line["msg"] == "file started"] == ["cam.mkv"]

    final = event_documents(tmp_path / "events")
    assert set(early) <= set(final)  # the early events were overwritten in place, not copied
    assert_events_match_truth(list(final.values()), truth)  # and each object interval is there exactly once
