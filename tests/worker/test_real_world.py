"""What real cameras, disks and operators do to the worker (issue 14), each reproduced with made files.

Odd names from bytes, upper-case extensions, truncated and half-written AVIs, renamed and moved
files, a failed file after a configuration fix, a file that grew, and a restart. Runs are in-process
(the real Worker, the bundled model, a directory sink) so each can look at results and metrics.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from edge_inference_worker.cli import main as cli_main
from edge_inference_worker.config import ConfigError, parse_detect_flags
from edge_inference_worker.files import file_id
from edge_inference_worker.ledger import Ledger
from edge_inference_worker.logs import JsonFormatter
from support.synthetic import make_video, render_frames, short_scenario
from support.waiting import wait_until
from support.worker_harness import LogCapture, detect_flags, event_documents, run_in_process

FILES = "edge_inference_files_total"


@pytest.fixture(scope="module")
def avi_bytes(tmp_path_factory) -> bytes:
    """The short scenario as H.264 in AVI (what many DVRs write)."""
    path = tmp_path_factory.mktemp("avi") / "whole.avi"
    make_video(path, short_scenario(), seed=7, codec="h264", container="avi")
    return path.read_bytes()


def paused_recording(folder: Path, container: str) -> tuple[bytes, bytes]:
    """(what a writer had on disk half-way through, the finished file): FFmpeg's own muxer, paused."""
    path = folder / f"writing.{container}"
    scenario = short_scenario()
    with av.open(str(path), "w", format={"avi": "avi", "mkv": "matroska"}[container]) as output:
        stream = output.add_stream("libx264", rate=Fraction(scenario.fps))
        stream.width, stream.height, stream.pix_fmt = scenario.width, scenario.height, "yuv420p"
        stream.codec_context.gop_size = 2 * scenario.fps
        for index, (rgb, _) in enumerate(render_frames(scenario, 7)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, scenario.fps)
            output.mux(stream.encode(frame))
            if index == scenario.frame_count * 3 // 4:  # what it had flushed so far
                half = path.read_bytes()
        output.mux(stream.encode(None))
    return half, path.read_bytes()


@pytest.fixture(scope="module")
def paused_avi(tmp_path_factory) -> tuple[bytes, bytes]:
    return paused_recording(tmp_path_factory.mktemp("paused-avi"), "avi")


def distinct(data: bytes, tag: str, tmp_path: Path) -> bytes:
    """The same video remuxed with `tag` in its metadata: other bytes (another file), the same frames."""
    source, target = tmp_path / f"src-{tag}.mkv", tmp_path / f"dst-{tag}.mkv"
    source.write_bytes(data)
    with av.open(str(source)) as inp, av.open(str(target), "w", format="matroska") as out:
        out.metadata["comment"] = tag
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target.read_bytes()


def _folder(tmp_path: Path, files: dict[str | bytes, bytes]) -> Path:
    videos = tmp_path / "videos"
    for name, data in files.items():
        path = Path(os.fsdecode(os.path.join(os.fsencode(videos), os.fsencode(name))))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return videos


def _flags(tmp_path: Path, videos: Path, *extra: str) -> list[str]:
    return detect_flags(videos, str(tmp_path / "events"), tmp_path / "state", *extra)


def _by_file(out: Path) -> dict[str, list[dict]]:
    documents: dict[str, list[dict]] = {}
    for doc in event_documents(out).values():
        documents.setdefault(doc["source"]["path"], []).append(doc)
    return documents


class _Background:
    """A Continuous worker in a thread of this process, stopped (and joined) on exit."""

    def __init__(self, flags: list[str], environ: dict[str, str]) -> None:
        from edge_inference_worker.config import S3Credentials
        from edge_inference_worker.worker import Worker

        self.stop = threading.Event()
        self.worker = Worker(parse_detect_flags(flags, environ), S3Credentials(None, None), environ, self.stop)
        self.capture = LogCapture()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="worker-under-test")

    def _run(self) -> None:
        self.code = self.worker.run()

    def __enter__(self) -> _Background:
        self.capture.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.capture.__exit__()
        assert not self.thread.is_alive()

    def outcomes(self, name: str) -> list[str]:
        return [r.fields["outcome"] for r in list(self.capture.records)
                if getattr(r, "fields", {}).get("file") == name and "outcome" in r.fields]


# ------------------------------------------------------------------------------- 1: names from bytes

ODD = b"cam\xff\xfe-night.mp4"  # Latin-1 from an old DVR: not valid UTF-8
ODD_SHOWN = "cam\\xff\\xfe-night.mp4"


def test_a_name_that_is_not_utf8_is_processed_and_keyed_safely(short_clip, worker_env, tmp_path):
    clip = short_clip.path.read_bytes()
    videos = _folder(tmp_path, {ODD: clip, "good.mp4": clip})
    run = run_in_process(_flags(tmp_path, videos), worker_env)
    assert run.code == 0
    assert run.metric(FILES, outcome="done") == 2
    documents = _by_file(tmp_path / "events")
    assert sorted(documents) == [ODD_SHOWN, "good.mp4"]  # shown with escapes, never as lone surrogates
    assert len(documents[ODD_SHOWN]) == 4
    assert {d["source"]["fileId"] for d in documents[ODD_SHOWN]} == {file_id(os.fsdecode(ODD))}
    for record in run.records:  # every log line is plain UTF-8 JSON
        json.loads(JsonFormatter().format(record).encode("utf-8", "strict"))
    assert run.outcome_lines(ODD_SHOWN)[0].fields["outcome"] == "done"


def test_watch_mode_survives_a_name_that_is_not_utf8(short_clip, worker_env, tmp_path):
    videos = _folder(tmp_path, {ODD: short_clip.path.read_bytes()})
    flags = _flags(tmp_path, videos, "--watch", "--settle-seconds", "0", "--poll-seconds", "0.2")
    with _Background(flags, worker_env) as background:
        wait_until(lambda: background.outcomes(ODD_SHOWN) or background.code is not None, 120, "the odd name")
        assert background.code is None, "the watcher died"
        assert background.outcomes(ODD_SHOWN) == ["done"]
    assert background.code == 0


# ------------------------------------------------------------------------------- 6: extensions


def test_upper_case_extensions_are_processed_and_other_video_is_skipped_once(short_clip, avi_bytes, worker_env,
                                                                             tmp_path):
    clip = short_clip.path.read_bytes()
    videos = _folder(tmp_path, {"CAM1.AVI": avi_bytes, "GOPR0001.MP4": clip, "clip.webm": b"\x1a\x45\xdf\xa3",
                                "notes.txt": b"not video"})
    run = run_in_process(_flags(tmp_path, videos), worker_env)
    assert run.code == 0  # a skipped file is not a failure
    assert sorted(_by_file(tmp_path / "events")) == ["CAM1.AVI", "GOPR0001.MP4"]
    assert run.metric(FILES, outcome="skipped") == 1
    (line,) = run.outcome_lines("clip.webm")
    assert line.fields["outcome"] == "skipped" and "include" in line.getMessage()
    assert not run.outcome_lines("notes.txt")


# ------------------------------------------------------------------------------- 3: truncated AVI


@pytest.mark.parametrize("cut", ["half", "20k"])
def test_a_truncated_avi_is_not_done(avi_bytes, worker_env, tmp_path, cut):
    data = avi_bytes[: len(avi_bytes) // 2] if cut == "half" else avi_bytes[:20_000]
    videos = _folder(tmp_path, {"cam.avi": data})
    run = run_in_process(_flags(tmp_path, videos), worker_env)
    assert run.code == 1
    assert run.worker.results["cam.avi"][0] == "truncated", run.worker.results


def test_a_paused_avi_in_watch_mode_is_incomplete_then_finished(paused_avi, worker_env, tmp_path):
    half, whole = paused_avi
    videos = _folder(tmp_path, {"dvr/ch1.avi": half})
    flags = _flags(tmp_path, videos, "--watch", "--settle-seconds", "0.5", "--poll-seconds", "0.2")
    with _Background(flags, worker_env) as background:
        wait_until(lambda: background.outcomes("dvr/ch1.avi"), 120, "the half-written file")
        assert background.outcomes("dvr/ch1.avi") == ["truncated"]
        (videos / "dvr" / "ch1.avi").write_bytes(whole)  # the writer resumed and closed the file
        wait_until(lambda: len(background.outcomes("dvr/ch1.avi")) == 2, 120, "the finished file")
        assert background.outcomes("dvr/ch1.avi") == ["truncated", "done"]
    documents = _by_file(tmp_path / "events")["dvr/ch1.avi"]
    assert len(documents) == 4  # each object once: the early events were overwritten, not copied


# ------------------------------------------------------------------------------- 5: failed, then fixed


def test_an_invalid_node_is_refused_at_start(worker_env, tmp_path, capsys):
    videos = _folder(tmp_path, {})
    videos.mkdir()
    assert cli_main(["detect", *_flags(tmp_path, videos, "--node", "..")]) == 2
    assert "node" in capsys.readouterr().err
    for bad in ("a/b", "."):
        with pytest.raises(ConfigError, match="node"):
            parse_detect_flags(_flags(tmp_path, videos, "--node", bad), worker_env)


def test_keys_longer_than_s3_allows_are_refused_at_start(worker_env, tmp_path):
    videos = _folder(tmp_path, {})
    videos.mkdir()
    with pytest.raises(ConfigError, match="1024"):
        parse_detect_flags(_flags(tmp_path, videos, "--node", "n" * 300, "--job", "j" * 300, "--namespace",
                                  "s" * 300, "--out", f"s3://bucket/{'p' * 200}", "--s3-endpoint", "h:1"),
                           worker_env)


def test_a_failed_file_is_retried_when_the_configuration_changes_or_after_the_back_off(short_clip, worker_env,
                                                                                         tmp_path):
    clips = {name: distinct(short_clip.path.read_bytes(), name, tmp_path) for name in ("fixed", "recent", "long-ago")}
    videos = _folder(tmp_path, {f"{name}.mkv": data for name, data in clips.items()})
    flags = _flags(tmp_path, videos)
    from edge_inference_worker.worker import settings_digest

    digest = settings_digest(parse_detect_flags(flags, worker_env))
    ledger = Ledger(tmp_path / "state" / "ledger")
    now = time.time()
    # What an earlier run left: one failure under another configuration, two under this one.
    earlier = (("fixed", "stale", now), ("recent", digest, now), ("long-ago", digest, now - 7 * 86400))
    for name, settings, when in earlier:
        rel = f"{name}.mkv"
        ledger.finish(file_id(rel), rel, len(clips[name]), "failed", settings=settings, finished_at=when)
    run = run_in_process(flags, worker_env)
    results = run.worker.results
    assert results["fixed.mkv"][0] == "done"
    assert results["long-ago.mkv"][0] == "done"
    assert results["recent.mkv"][0] == "failed" and "retried after" in results["recent.mkv"][1]


# ------------------------------------------------------------------------------- 7: renamed, moved, linked


def test_a_moved_or_renamed_file_is_not_processed_again(short_clip, worker_env, tmp_path):
    clip = short_clip.path.read_bytes()
    videos = _folder(tmp_path, {"cam1/seg-001.mp4": clip})
    first = run_in_process(_flags(tmp_path, videos), worker_env)
    assert first.code == 0
    before = event_documents(tmp_path / "events")
    assert len(before) == 4
    archive = videos / "archive" / "2026-11-29"
    archive.mkdir(parents=True)
    (videos / "cam1" / "seg-001.mp4").rename(archive / "cam1-seg-001.mp4")  # what recorders do every night
    second = run_in_process(_flags(tmp_path, videos), worker_env)
    assert second.code == 0
    assert not second.lines("file started")
    assert event_documents(tmp_path / "events").keys() == before.keys()  # no duplicate in the sink


def test_a_symlink_inside_the_folder_is_processed_once(short_clip, worker_env, tmp_path):
    videos = _folder(tmp_path, {"real/seg.mp4": short_clip.path.read_bytes()})
    (videos / "a-latest.mp4").symlink_to(videos / "real" / "seg.mp4")
    run = run_in_process(_flags(tmp_path, videos), worker_env)
    assert run.code == 0
    assert len(run.lines("file started")) == 1
    assert len(event_documents(tmp_path / "events")) == 4


# ------------------------------------------------------------------------------- 9: the smaller ones


def test_a_grown_file_gets_its_done_line_and_is_counted(worker_env, tmp_path):
    # A Matroska writer that paused: no duration in the header yet, so the first part is whole and `done`.
    half, whole = paused_recording(tmp_path, "mkv")
    videos = _folder(tmp_path, {"cam.mkv": half})
    flags = _flags(tmp_path, videos, "--watch", "--settle-seconds", "0.5", "--poll-seconds", "0.2")
    with _Background(flags, worker_env) as background:
        wait_until(lambda: background.outcomes("cam.mkv"), 120, "the first part")
        (videos / "cam.mkv").write_bytes(whole)
        wait_until(lambda: len(background.outcomes("cam.mkv")) == 2, 120, "the grown file's line")
        assert background.outcomes("cam.mkv") == ["done", "done"]
        assert background.worker.registry.get_sample_value(FILES, {"outcome": "done"}) == 2


def test_a_restart_does_not_repeat_done_lines(short_clip, worker_env, tmp_path):
    videos = _folder(tmp_path, {f"cam{i}.mkv": distinct(short_clip.path.read_bytes(), str(i), tmp_path)
                                for i in range(3)})
    assert run_in_process(_flags(tmp_path, videos), worker_env).code == 0
    again = run_in_process(_flags(tmp_path, videos), worker_env)
    assert again.code == 0
    assert not again.lines("file done")
    (summary,) = [r for r in again.records if "finished in an earlier run" in r.getMessage()]
    assert summary.fields["files"] == 3 and summary.levelno == logging.INFO
    assert again.metric(FILES, outcome="done") == 3  # still counted: progress after a restart stays right


def test_the_exit_codes_of_a_missing_input_folder_are_the_documented_ones(worker_env, tmp_path):
    rows = {line.split("|")[1].strip(): line for line in
            (Path(__file__).parents[2] / "docs" / "events.md").read_text().splitlines() if line.startswith("| ")}
    missing = tmp_path / "no-such-folder"
    assert cli_main(["detect", *_flags(tmp_path, missing)]) == 2
    assert "missing input folder given to `detect`" in rows["2"]
    config = parse_detect_flags(_flags(tmp_path, _folder(tmp_path, {"a.mp4": b"x"})), worker_env)
    pod = config.model_copy(update={"input_dir": str(missing)})
    environ = {**worker_env, "EDGE_INFERENCE_CONFIG": pod.model_dump_json(by_alias=True)}
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        assert cli_main(["run"]) == 3
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert "in a pod (`run`) an input folder that does not exist" in rows["3"]
