"""The whole worker through an S3 outage: S3 is killed after the first event, comes back only
after every file (minutes of video) was analysed; the bucket ends up exactly as without outage."""

import subprocess

from support.s3server import free_ports
from support.synthetic import make_video, short_scenario, static_heavy_scenario
from support.waiting import wait_until
from support.worker_harness import detect_args, metric_value, offline_environment, run_worker


def test_worker_delivers_every_event_exactly_once_across_an_outage(s3_server, tmp_path):
    videos = tmp_path / "videos"
    make_video(videos / "cam1" / "short.mp4", short_scenario(), seed=7)  # 24 s, 4 events
    make_video(videos / "cam2" / "yard.mp4", static_heavy_scenario(90.0, moving_fraction=0.3, seed=3), seed=3)
    env = {**offline_environment(tmp_path / "ultralytics"), **s3_server.credentials_env()}

    # The same job without an outage, into another bucket: what the bucket must hold in the end.
    client = s3_server.client()
    client.make_bucket("baseline")
    baseline = run_worker(
        detect_args(
            videos, "s3://baseline/outage", tmp_path / "state-baseline", "--s3-endpoint", f"http://{s3_server.endpoint}"
        ),
        env,
    )
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    expected = {}
    for obj in client.list_objects("baseline", recursive=True):
        response = client.get_object("baseline", obj.object_name)
        expected[obj.object_name] = response.read()
        response.close()
        response.release_conn()
    assert len(expected) >= 10

    port = free_ports(1)[0]
    args = detect_args(
        videos, f"s3://{s3_server.bucket}/outage", tmp_path / "state-outage",
        "--s3-endpoint", f"http://{s3_server.endpoint}", "--metrics-port", str(port),
    )  # fmt: skip
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: any(k.endswith(".json") for k in s3_server.list_keys("outage/")), 120, "the first event")
        s3_server.stop()
        wait_until(
            lambda: metric_value(port, "edge_inference_files_total", {"outcome": "done"}) == 2,
            240,
            "every file analysed during the outage",
        )
        waiting = metric_value(port, "edge_inference_outbox_events")
        assert waiting and waiting > 0
        assert metric_value(port, "edge_inference_outbox_oldest_age_seconds") > 0
        assert metric_value(port, "edge_inference_errors_total", {"kind": "s3_unreachable"}) > 0
        assert worker.poll() is None  # a Batch worker does not finish while events wait
        s3_server.start()
        assert worker.wait(timeout=180) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.kill()
        worker.wait()

    actual = {key: s3_server.get(key) for key in s3_server.list_keys("outage/")}
    assert actual.keys() == expected.keys()
    assert actual == expected  # byte-identical: nothing lost, nothing doubled, nothing half-written
