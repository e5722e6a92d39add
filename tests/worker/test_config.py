"""The standalone command builds the same WorkerConfig the operator sends in a pod."""

import json

import pytest
from edge_inference_api.models import DirectorySink, EventsSpec, Mode, ModelSpec, OutboxSpec, S3Sink, SamplingSpec
from edge_inference_worker.cli import main
from edge_inference_worker.config import (
    ConfigError,
    config_from_env,
    config_to_env,
    credentials_from_env,
    parse_detect_flags,
)

FLAGS = [
    "--watch", "--include", "**/*.mkv", "--include", "cam*/*.mp4", "--model", "synthetic-yolov5n",
    "--device", "cpu", "--image-size", "320", "--confidence", "0.4", "--classes", "person,car",
    "--fps", "4", "--no-motion-gating", "--min-frames", "2", "--cooldown", "1.5", "--snapshot", "raw",
    "--blur", "person", "--snapshot-quality", "70", "--outbox-max-mb", "64", "--metrics-port", "9200",
    "--node", "edge-7", "--namespace", "shop", "--job", "doors", "--poll-seconds", "1", "--settle-seconds", "3",
]


def test_flags_build_the_config_a_pod_gets(tmp_path):
    env = {"EDGE_INFERENCE_S3_ENDPOINT": "minio.local:9000"}
    config = parse_detect_flags(
        [str(tmp_path), "--out", "s3://events/site-a", "--state-dir", str(tmp_path / "state"), *FLAGS], env
    )
    assert config.mode == Mode.CONTINUOUS
    assert config.include == ["**/*.mkv", "cam*/*.mp4"]
    assert config.sink == S3Sink(endpoint="minio.local:9000", bucket="events", prefix="site-a", secure=True)
    assert (config.model.image_size, config.model.confidence, config.model.classes) == (320, 0.4, ["person", "car"])
    assert (config.sampling.fps, config.sampling.motion_gating) == (4.0, False)
    events = config.events
    assert (events.min_frames, events.cooldown_seconds, events.blur_classes) == (2, 1.5, ["person"])
    assert (config.node, config.job.namespace, config.job.name) == ("edge-7", "shop", "doors")
    assert config.metrics_port == 9200
    assert config.outbox.max_megabytes == 64 and config.settle_seconds == 3.0
    # What the operator would put in the pod's environment parses back to the very same config.
    assert config_from_env(config_to_env(config)) == config


def test_node_name_from_the_pod_environment_wins(tmp_path):
    config = parse_detect_flags([str(tmp_path), "--out", str(tmp_path / "events")], {})
    env = {**config_to_env(config), "EDGE_INFERENCE_NODE_NAME": "worker-3"}
    assert config_from_env(env).node == "worker-3"


def test_defaults_are_the_api_defaults(tmp_path):
    config = parse_detect_flags([str(tmp_path), "--out", "events"], {"EDGE_INFERENCE_STATE_HOME": str(tmp_path)})
    assert config.mode == Mode.BATCH and isinstance(config.sink, DirectorySink)
    assert config.model.name == "yolov5nu" and config.sampling.fps == 2.0 and config.events.min_frames == 3
    assert (config.model, config.events, config.sampling, config.outbox) == (
        ModelSpec(), EventsSpec(), SamplingSpec(), OutboxSpec()
    )
    assert (config.poll_seconds, config.settle_seconds) == (2.0, 5.0)
    assert config.state_dir.startswith(str(tmp_path / "edge-inference"))
    other = parse_detect_flags([str(tmp_path), "--out", "elsewhere"], {"EDGE_INFERENCE_STATE_HOME": str(tmp_path)})
    assert other.state_dir != config.state_dir  # a ledger per (input, output) pair


@pytest.mark.parametrize(
    ("endpoint", "insecure", "expected"),
    [
        ("http://127.0.0.1:9000", False, ("127.0.0.1:9000", False)),
        ("https://s3.example.com", False, ("s3.example.com", True)),
        ("minio:9000", True, ("minio:9000", False)),
    ],
)
def test_s3_endpoint_forms(tmp_path, endpoint, insecure, expected):
    flags = [str(tmp_path), "--out", "s3://bucket-1", "--s3-endpoint", endpoint]
    flags += ["--s3-insecure"] if insecure else []
    sink = parse_detect_flags(flags, {}).sink
    assert (sink.endpoint, sink.secure, sink.prefix) == (*expected, "")


def test_credentials_only_from_the_environment():
    creds = credentials_from_env({"EDGE_INFERENCE_S3_ACCESS_KEY": "a", "EDGE_INFERENCE_S3_SECRET_KEY": "s"})
    assert (creds.access_key, creds.secret_key) == ("a", "s")
    assert credentials_from_env({}).access_key is None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["{missing}", "--out", "x"], {}, "does not exist or is not a folder"),
        (["{tmp}", "--out", "s3://events"], {}, "needs --s3-endpoint or EDGE_INFERENCE_S3_ENDPOINT"),
        (["{tmp}", "--out", "s3://Bad_Bucket", "--s3-endpoint", "h:1"], {}, "invalid --out s3://Bad_Bucket"),
        (["{tmp}", "--out", "x", "--fps", "0"], {}, "invalid flags: sampling.fps"),
        (["{tmp}", "--out", "x", "--image-size", "33"], {}, "invalid flags: model.imageSize"),
        (["{tmp}", "--out", "s3://b-1", "--s3-endpoint", "ftp://h"], {}, "must be host[:port]"),
    ],
)
def test_user_mistakes_are_one_clear_line(tmp_path, argv, env, message):
    argv = [a.format(tmp=tmp_path, missing=tmp_path / "nope") for a in argv]
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_detect_flags(argv, env)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "EDGE_INFERENCE_CONFIG is not set"),
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"sink": {"type": "ftp"}}), "invalid EDGE_INFERENCE_CONFIG: sink"),
        (json.dumps({"sink": {"type": "directory", "path": "/x"}, "bogus": 1}), "bogus: Extra inputs"),
    ],
)
def test_bad_pod_config_is_one_clear_line(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_env({} if raw is None else {"EDGE_INFERENCE_CONFIG": raw})


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-inference: error: input folder") and err.count("\n") == 1
    assert "Traceback" not in err

