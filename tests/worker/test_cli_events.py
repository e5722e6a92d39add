"""The standalone command over real synthetic H.264 with the bundled detector: events match the truth."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from edge_inference_api.models import Device
from edge_inference_worker.checksums import sha256_of
from edge_inference_worker.detector import resolve_model
from edge_inference_worker.files import file_id
from support.worker_harness import (
    MODEL,
    assert_events_match_truth,
    detect_args,
    event_documents,
    event_keys,
    log_lines,
    run_worker,
)


def test_events_match_the_ground_truth(directory_run, short_clip):
    base, _, result = directory_run
    assert result.returncode == 0, result.stderr[-3000:]
    documents = event_documents(base / "events")
    assert_events_match_truth(list(documents.values()), short_clip.truth)


def test_objects_keys_and_metadata(directory_run, short_clip, built_in_models, worker_env):
    base, _, _ = directory_run
    documents = event_documents(base / "events")
    fid = file_id("cam1/short.mp4")
    ran = resolve_model(MODEL, built_in_models, Device.CPU, worker_env)
    assert ran.name in (f"{MODEL}_openvino_model", f"{MODEL}.onnx")  # an export, not the .pt
    for key, doc in documents.items():
        assert key == f"ns/job1/node-a/{fid}/{doc['id']}"
        assert doc["schemaVersion"] == 1 and doc["source"]["path"] == "cam1/short.mp4"
        assert doc["source"]["fileId"] == fid and doc["node"] == "node-a"
        assert doc["model"] == {"name": MODEL, "sha256": sha256_of(ran)}
        assert doc["wallTime"]["start"] is not None and doc["wallTime"]["start"] <= doc["wallTime"]["end"]
        assert doc["frames"] >= 3 and 0.25 <= doc["confidence"]["mean"] <= doc["confidence"]["peak"] <= 1.0
        assert doc["snapshot"]["redaction"]["applied"] is False
        jpeg = (base / "events" / f"{key}.jpg").read_bytes()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)


def test_logs_are_json_with_a_line_per_file(directory_run):
    _, _, result = directory_run
    lines = log_lines(result.stderr)
    assert len(lines) == len([line for line in result.stderr.splitlines() if line.strip()])  # nothing else
    done = [line for line in lines if line["msg"] == "file done"]
    assert [(d["file"], d["outcome"]) for d in done] == [("cam1/short.mp4", "done")]
    assert any(line["msg"].startswith("batch finished: 1 done") for line in lines)


def test_a_second_run_finds_the_file_done_in_the_ledger(directory_run, worker_env):
    base, args, _ = directory_run
    before = {p: p.stat().st_mtime_ns for p in (base / "events").rglob("*.json")}
    result = run_worker(args, worker_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [line for line in log_lines(result.stderr) if line["msg"] == "file started"]
    assert {p: p.stat().st_mtime_ns for p in (base / "events").rglob("*.json")} == before


def laplacian_detail(jpeg: bytes, box: dict) -> float:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    x1, y1, x2, y2 = (int(box[k]) for k in ("x1", "y1", "x2", "y2"))
    inner = image[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2]
    return float(cv2.Laplacian(inner, cv2.CV_64F).var())


def test_to_a_real_s3_server_with_people_blurred(directory_run, short_clip, worker_env, s3_server_module, tmp_path):
    s3 = s3_server_module
    args = detect_args(
        short_clip.path.parent.parent, f"s3://{s3.bucket}/site-a", tmp_path / "state",
        "--s3-endpoint", s3.url, "--blur", "person", "--snapshot", "raw",
    )
    result = run_worker(args, {**worker_env, **s3.credentials_env()})
    assert result.returncode == 0, result.stderr[-3000:]
    keys = event_keys(s3.list_keys("site-a/"))
    base = directory_run[0]
    local = event_documents(base / "events")
    assert sorted(keys) == sorted([f"site-a/{k}.json" for k in local] + [f"site-a/{k}.jpg" for k in local])
    for key, plain in local.items():
        remote = json.loads(s3.get(f"site-a/{key}.json"))
        redaction = remote["snapshot"].pop("redaction")
        plain_snapshot = dict(plain["snapshot"])
        plain_snapshot.pop("redaction")
        assert {**remote, "snapshot": None} == {**plain, "snapshot": None}  # same event, same id
        assert remote["snapshot"]["key"] == f"site-a/{key}.jpg"
        if remote["class"] == "person":
            assert redaction["applied"] and redaction["classes"] == ["person"] and redaction["regions"] >= 1
            blurred = laplacian_detail(s3.get(f"site-a/{key}.jpg"), remote["bestFrame"]["box"])
            sharp = laplacian_detail((base / "events" / f"{key}.jpg").read_bytes(), remote["bestFrame"]["box"])
            assert blurred < sharp / 5, (blurred, sharp)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "no-such-model"], "cannot start: model 'no-such-model' not found"),
        (["--classes", "person,dog"], "cannot start: classes ['dog'] are not known to model synthetic-yolov5n"),
        (["--out", "{tmp}/a-file/events"], "cannot start: cannot create output folder"),
    ],
)
def test_startup_errors_are_one_line_and_exit_3(short_clip, worker_env, tmp_path, flags, message):
    (tmp_path / "a-file").write_text("not a folder")
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    args = detect_args(short_clip.path.parent, str(tmp_path / "events"), tmp_path / "state")
    result = run_worker([*args, *flags], worker_env)  # a repeated flag overrides the harness default
    assert result.returncode == 3
    (line,) = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith(f"edge-inference: {message}"), line
    assert "Traceback" not in result.stderr
