"""Batch against a missing bucket or wrong credentials ends: exit 2 after a bounded wait, the reason in
the log, the metrics and the pod's termination message; the events stay on disk for the next start.

Against the real S3 server on loopback, whose answers (`NoSuchBucket`, `InvalidAccessKeyId`,
`SignatureDoesNotMatch`) are definite: waiting longer would not change them.
"""

from __future__ import annotations

import os

import pytest
from edge_inference_worker.cli import main
from edge_inference_worker.config import S3Credentials
from edge_inference_worker.worker import ENV_SINK_ERROR_GRACE, ENV_TERMINATION_LOG
from support.worker_harness import detect_flags, run_in_process

GRACE = 2.0


@pytest.mark.parametrize(("case", "code"), [
    ("missing-bucket", "NoSuchBucket"),
    ("wrong-access-key", "InvalidAccessKeyId"),
    ("wrong-secret", "SignatureDoesNotMatch"),
])
def test_a_definite_no_from_s3_ends_a_batch_with_exit_2(short_clip, worker_env, s3_server_module, tmp_path, case,
                                                        code):
    s3 = s3_server_module
    bucket = "no-such-bucket" if case == "missing-bucket" else s3.bucket
    credentials = S3Credentials(
        "nobody" if case == "wrong-access-key" else s3.access_key,
        "wrong-secret-key" if case == "wrong-secret" else s3.secret_key,
    )
    termination = tmp_path / "termination-log"
    environ = {**worker_env, ENV_TERMINATION_LOG: str(termination), ENV_SINK_ERROR_GRACE: str(GRACE)}
    flags = detect_flags(short_clip.path.parent, f"s3://{bucket}/{case}", tmp_path / "state",
                         "--s3-endpoint", f"http://{s3.endpoint}", "--s3-insecure")
    run = run_in_process(flags, environ, credentials=credentials)

    assert run.code == 2
    (line,) = [r for r in run.records if r.getMessage().startswith("the event sink refuses")]
    assert code in line.getMessage()
    assert code in termination.read_text() and len(termination.read_bytes()) <= 4096
    assert run.metric("edge_inference_sink_misconfigured") == 1
    # The 4 events kept for the next start (beside them, the event index's objects: `.obj` entries).
    assert len(list((tmp_path / "state" / "outbox" / "entries").glob("*.evt"))) == 4
    assert run.worker.results[short_clip.path.name][0] == "done"
    assert not [r for r in run.records if r.getMessage() == "waiting for the outbox to deliver"][1:]


def test_the_termination_message_is_written_for_a_start_failure(worker_env, tmp_path):
    termination = tmp_path / "termination-log"
    environ = {**worker_env, ENV_TERMINATION_LOG: str(termination)}
    videos = tmp_path / "videos"
    videos.mkdir()
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        code = main(["detect", *detect_flags(videos, str(tmp_path / "events"), tmp_path / "state", "--model",
                                             str(tmp_path / "missing.pt"))])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert code == 3
    assert "missing.pt" in termination.read_text()
