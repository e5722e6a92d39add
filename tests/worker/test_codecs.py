"""H.265 in Matroska and MJPEG in AVI decode and sample like H.264 in MP4: the same events come out."""

from __future__ import annotations

import pytest
from support.synthetic import make_video, short_scenario
from support.worker_harness import assert_events_match_truth, detect_args, event_documents, log_lines, run_worker

CLIPS = {"hevc.mkv": "hevc", "mjpeg.avi": "mjpeg"}


@pytest.fixture(scope="module")
def codec_run(worker_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("codecs")
    truths = {name: make_video(root / "videos" / name, short_scenario(), seed=21, codec=codec)
              for name, codec in CLIPS.items()}
    result = run_worker(detect_args(root / "videos", str(root / "events"), root / "state"), worker_env)
    return root, truths, result


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_events_match_the_truth_for_each_codec(codec_run, name):
    root, truths, result = codec_run
    assert result.returncode == 0, result.stderr[-3000:]
    started = [line for line in log_lines(result.stderr) if line["msg"] == "file started" and line["file"] == name]
    assert started[0]["codec"] == CLIPS[name] and (started[0]["width"], started[0]["height"]) == (640, 360)
    documents = [d for d in event_documents(root / "events").values() if d["source"]["path"] == name]
    assert_events_match_truth(documents, truths[name])
