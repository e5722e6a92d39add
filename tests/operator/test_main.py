"""The operator's settings and its console script, run as the chart's Deployment runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge_inference_operator.main import main
from edge_inference_operator.settings import OperatorSettings
from pydantic import ValidationError
from support.net import free_port, http_get

SCRIPT = Path(sys.executable).parent / "edge-inference-operator"


def test_settings_from_env() -> None:
    settings = OperatorSettings.from_env(
        {
            "EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/var/lib/edge-video/, /srv/nvr ,",
            "EDGE_INFERENCE_WORKER_IMAGES": '{"cpu": "w:2", "nvidia": "wc:2", "intel": "wi:2"}',
            "EDGE_INFERENCE_EXPORT_IMAGE": "x:2",
            "EDGE_INFERENCE_ALLOWED_WORKER_IMAGES": "w:3, w:4",
            "EDGE_INFERENCE_STATE_HOST_PATH": "/data/ei",
            "EDGE_INFERENCE_METRICS_PORT": "9090",
            "EDGE_INFERENCE_RECONCILE_SECONDS": "2.5",
            "UNRELATED": "x",
        }
    )
    assert settings.allowed_host_paths == ("/var/lib/edge-video", "/srv/nvr")
    assert settings.worker_images == {"cpu": "w:2", "nvidia": "wc:2", "intel": "wi:2"}
    assert (settings.export_image, settings.allowed_worker_images, settings.state_host_path) == (
        "x:2",
        ("w:3", "w:4"),
        "/data/ei",
    )
    assert [settings.image_for(kind) for kind in ("intel", "jetson")] == ["wi:2", "w:2"]  # unlisted kinds: cpu's
    assert [settings.image_allowed(i) for i in ("wi:2", "w:4", "x:2", "evil:1")] == [True, True, False, False]
    assert (settings.metrics_port, settings.reconcile_seconds, settings.liveness_port) == (9090, 2.5, 8081)


def test_defaults_are_the_cross_piece_decisions() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.allowed_host_paths == ()  # nothing allowed until the admin says so
    assert settings.worker_images == {
        "cpu": "ghcr.io/edge-inference/worker:0.1.0",
        "nvidia": "ghcr.io/edge-inference/worker-cuda:0.1.0",
    }
    assert settings.allowed_worker_images == ()
    assert (settings.state_host_path, settings.metrics_port) == ("/var/lib/edge-inference", 8080)


@pytest.mark.parametrize(
    "env",
    [
        {"EDGE_INFERENCE_ALLOWED_HOST_PATHS": "relative/path"},
        {"EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/video/../etc"},
        {"EDGE_INFERENCE_METRICS_PORT": "eighty"},
        {"EDGE_INFERENCE_STATE_HOST_PATH": "var/lib"},
        {"EDGE_INFERENCE_WORKER_IMAGE_PULL_POLICY": "Sometimes"},
        {"EDGE_INFERENCE_WORKER_IMAGES": "cpu=w:1"},
        {"EDGE_INFERENCE_WORKER_IMAGES": '{"nvidia": "wc:1"}'},  # no cpu image for the other kinds
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        OperatorSettings.from_env(env)


def test_main_exits_2_with_one_clear_line_on_bad_settings(monkeypatch, capsys) -> None:
    monkeypatch.setenv("EDGE_INFERENCE_METRICS_PORT", "eighty")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-inference-operator: invalid settings: EDGE_INFERENCE_METRICS_PORT")


async def test_console_script_runs_the_operator_until_sigterm(cluster, make_body) -> None:
    liveness, metrics = free_port(), free_port()
    env = {
        **os.environ,
        # The chart's ServiceAccount (the cluster fixture's KUBECONFIG), not the admin.
        "EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/srv/video",
        "EDGE_INFERENCE_METRICS_PORT": str(metrics),
        "EDGE_INFERENCE_LIVENESS_PORT": str(liveness),
        "EDGE_INFERENCE_RECONCILE_SECONDS": "1",
    }
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    process = subprocess.Popen([str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await cluster.wait(lambda: http_get(f"http://127.0.0.1:{liveness}/healthz")[0] == 200, what="/healthz")
        await cluster.wait(lambda: [d["metadata"]["name"] for d in cluster.daemonsets()] == ["lobby-cpu"], what="DS")
        # 0/1 or 1/1: kwok may make the pod Ready before the first status is written.
        await cluster.wait(lambda: str(cluster.status().get("readyNodes", "")).endswith("/1"), what="status")
        # The reconcile is counted once it returns, after the status write and its Events.
        await cluster.wait(
            lambda: (
                'edge_inference_operator_reconciles_total{result="ok"}'
                in http_get(f"http://127.0.0.1:{metrics}/metrics")[1]
            ),
            what="a counted reconcile",
        )
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.returncode == 0, process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    assert cluster.status()["nodes"]["desired"] == 1


def test_the_charts_deployment_env_is_exactly_understood() -> None:
    """Every EDGE_INFERENCE_* variable the chart sets is a setting (no typo is silently ignored), and parses."""
    from support.helm import find_objects, render_chart

    (deployment,) = find_objects(render_chart(), "Deployment", "edge-inference-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("EDGE_INFERENCE_") and "value" in e}
    known = {"EDGE_INFERENCE_" + name.upper() for name in OperatorSettings.model_fields}
    assert set(env) <= known, set(env) - known
    settings = OperatorSettings.from_env(env)
    assert settings.allowed_host_paths == ("/var/lib/edge-video",)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.metrics_port in ports.values() and settings.liveness_port in ports.values()
