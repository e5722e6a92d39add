"""SIGKILL mid-file, a file deleted while read, a full state disk: no event lost, none duplicated.

Every run here is compared with one uninterrupted run over the same clip: the same object keys
with byte-identical JSON and JPEG content.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from edge_inference_worker.files import file_id
from support.net import http_get, loopback_url
from support.s3server import free_ports
from support.waiting import wait_until
from support.worker_harness import (
    assert_events_match_truth,
    detect_args,
    event_documents,
    ledger_entry,
    log_lines,
    metric_value,
    run_worker,
)

# Every sampled frame analysed: the slowest (and longest) run, so there is time to kill it mid-file.
FLAGS = ("--no-motion-gating",)
# Motion gating on: a resumed run must also rebuild the gate's reference frame exactly.
GATED: tuple[str, ...] = ()


def snapshot_of(out_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


def uninterrupted(long_clip, worker_env, base: Path, flags: tuple[str, ...]) -> dict[str, bytes]:
    result = run_worker(detect_args(long_clip.path.parent, str(base / "events"), base / "state", *flags), worker_env)
    assert result.returncode == 0, result.stderr[-3000:]
    objects = snapshot_of(base / "events")
    assert objects
    return objects


@pytest.fixture(scope="module")
def baseline(long_clip, worker_env, tmp_path_factory):
    return uninterrupted(long_clip, worker_env, tmp_path_factory.mktemp("baseline"), FLAGS)


@pytest.fixture(scope="module")
def baseline_gated(long_clip, worker_env, tmp_path_factory):
    return uninterrupted(long_clip, worker_env, tmp_path_factory.mktemp("baseline-gated"), GATED)


@pytest.mark.parametrize("run", ["baseline", "baseline_gated"])
def test_uninterrupted_run_matches_the_ground_truth(run, long_clip, tmp_path, request):
    out = tmp_path / "events"
    out.mkdir()
    for rel, data in request.getfixturevalue(run).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    assert_events_match_truth(list(event_documents(out).values()), long_clip.truth)


def start(args, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))  # noqa: SIM115


def test_sigkill_mid_file_three_times(baseline, long_clip, worker_env, tmp_path):
    out, state = tmp_path / "events", tmp_path / "state"
    args = detect_args(long_clip.path.parent, str(out), state, *FLAGS)
    fid = file_id(long_clip.path.name)

    def resume_index() -> int:
        entry = ledger_entry(state, fid)
        return entry["resume_index"] if entry and entry["state"] == "partial" else 0

    def events_written() -> int:
        return len(list(out.rglob("*.json"))) if out.exists() else 0

    # Kill right after a checkpoint, right after an event reached the sink, and after a checkpoint again.
    kill_points = [
        ("after the first checkpoint", lambda before: resume_index() > 0),
        ("after one more event arrived", lambda before: events_written() > before["events"]),
        ("after the checkpoint moved on", lambda before: resume_index() > before["resume"]),
    ]
    resumed_from = []
    for number, (what, condition) in enumerate(kill_points):
        before = {"events": events_written(), "resume": resume_index()}
        process = start(args, worker_env, tmp_path / f"run{number}.log")
        try:
            wait_until(lambda c=condition, b=before, p=process: c(b) or p.poll() is not None, 120, what)
            assert process.poll() is None, f"the worker finished the file before it could be killed {what}"
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        starts = [line for line in log_lines((tmp_path / f"run{number}.log").read_text())
                  if line["msg"] == "file started"]
        resumed_from += [line["resumeAt"] for line in starts]
    final = run_worker(args, worker_env)
    assert final.returncode == 0, final.stderr[-3000:]
    resumed_from += [line["resumeAt"] for line in log_lines(final.stderr) if line["msg"] == "file started"]
    assert resumed_from[0] == 0 and sum(1 for r in resumed_from[1:] if r > 0) >= 2  # it really resumed
    assert snapshot_of(out) == baseline  # same keys, byte-identical objects: nothing lost, nothing doubled
    assert not list((state / "outbox" / "entries").iterdir())


def test_a_file_deleted_while_it_is_read_is_finished(baseline, long_clip, worker_env, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    copy = videos / long_clip.path.name
    copy.write_bytes(long_clip.path.read_bytes())
    os.utime(copy, ns=(long_clip.path.stat().st_atime_ns, long_clip.path.stat().st_mtime_ns))
    out, state = tmp_path / "events", tmp_path / "state"
    fid = file_id(copy.name)
    process = start(detect_args(videos, str(out), state, *FLAGS), worker_env, tmp_path / "run.log")
    try:
        wait_until(lambda: ledger_entry(state, fid) or process.poll() is not None, 120, "the first checkpoint")
        assert process.poll() is None
        copy.unlink()  # the open file stays readable: the worker finishes what it started
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
        process.wait()
    assert snapshot_of(out) == baseline


def test_a_full_state_disk_pauses_counts_and_loses_nothing(baseline, long_clip, worker_env, tmp_path):
    out, state = tmp_path / "events", tmp_path / "state"
    fid = file_id(long_clip.path.name)
    (state / "ledger").mkdir(parents=True)
    # The ledger writes through this temp file; pointed at /dev/full, every write fails with ENOSPC.
    blocker = state / "ledger" / f"{fid}.json.tmp"
    blocker.symlink_to("/dev/full")
    (port,) = free_ports(1)
    args = detect_args(long_clip.path.parent, str(out), state, *FLAGS, "--metrics-port", str(port))
    process = start(args, worker_env, tmp_path / "run.log")
    try:
        failures = wait_until(
            lambda: metric_value(port, "edge_inference_errors_total", {"kind": "state_write"}), 120,
            "a counted state write failure",
        )
        assert failures >= 1
        healthy = http_get(loopback_url(port, "/healthz"))[0] == 200
        assert healthy and http_get(loopback_url(port, "/readyz"))[0] == 200  # paused, not dead
        lines = log_lines((tmp_path / "run.log").read_text())
        assert any(line["msg"] == "ledger checkpoint failed, retrying" and "No space left" in line["error"]
                   for line in lines)
        assert process.poll() is None
        blocker.unlink()  # space is back
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
        process.wait()
    assert snapshot_of(out) == baseline


def test_sigterm_checkpoints_and_exits_143_then_resumes(baseline_gated, long_clip, worker_env, tmp_path):
    out, state = tmp_path / "events", tmp_path / "state"
    args = detect_args(long_clip.path.parent, str(out), state, *GATED)
    fid = file_id(long_clip.path.name)
    process = start(args, worker_env, tmp_path / "run.log")
    try:
        wait_until(lambda: ledger_entry(state, fid) or process.poll() is not None, 120, "the first checkpoint")
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 143  # stopped before the batch finished
    finally:
        process.kill()
        process.wait()
    lines = log_lines((tmp_path / "run.log").read_text())
    assert any(line["msg"].startswith("stopped before the batch finished") for line in lines)
    entry = ledger_entry(state, fid)
    assert entry["state"] == "partial" and entry["resume_index"] > 0
    final = run_worker(args, worker_env)
    assert final.returncode == 0, final.stderr[-3000:]
    (started,) = [line for line in log_lines(final.stderr) if line["msg"] == "file started"]
    assert started["resumeAt"] == entry["resume_index"] / 2.0
    assert snapshot_of(out) == baseline_gated
