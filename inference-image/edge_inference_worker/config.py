"""The worker's configuration: one `WorkerConfig`, from the pod environment or from CLI flags.

In a pod the operator hands the whole model as JSON in `EDGE_INFERENCE_CONFIG`; the standalone
command (`edge-inference detect /videos --out ...`) builds the very same model from flags, so both
paths run the same worker. S3 credentials never travel in the config: they come from the
environment only (a Secret in a pod), which keeps them out of `ps` and shell history.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge_inference_api.errors import Location, one_line
from edge_inference_api.models import (
    DEFAULT_INCLUDE,
    DEFAULT_MODEL,
    ENV_NODE_NAME,
    ENV_S3_ACCESS_KEY,
    ENV_S3_SECRET_KEY,
    ENV_WEBHOOK_HMAC_KEY,
    ENV_WORKER_CONFIG,
    Device,
    DirectorySink,
    EventsSpec,
    JobRef,
    Mode,
    ModelSpec,
    OutboxSpec,
    OutputSpec,
    S3Sink,
    SamplingSpec,
    SnapshotStyle,
    WorkerConfig,
)
from pydantic import BaseModel, ValidationError

from .event_document import key_base
from .events import event_id
from .files import file_id
from .sinks import check_key, check_key_fits

ENV_S3_ENDPOINT = "EDGE_INFERENCE_S3_ENDPOINT"
ENV_S3_SECURE = "EDGE_INFERENCE_S3_SECURE"
ENV_STATE_HOME = "EDGE_INFERENCE_STATE_HOME"


# The job's output rules, checked here too so the standalone command refuses what the CRD refuses.
_BUCKET_PATTERN = re.compile(OutputSpec.model_json_schema()["properties"]["bucket"]["pattern"])


class ConfigError(Exception):
    """A user mistake in the configuration: the message is the one line the user sees."""


@dataclass(frozen=True)
class S3Credentials:
    """Access and secret key, from the environment only."""

    access_key: str | None
    secret_key: str | None


def credentials_from_env(environ: Mapping[str, str]) -> S3Credentials:
    """Read the S3 credentials the pod gets from its Secret (or the user exported)."""
    return S3Credentials(environ.get(ENV_S3_ACCESS_KEY) or None, environ.get(ENV_S3_SECRET_KEY) or None)


def config_from_env(environ: Mapping[str, str]) -> WorkerConfig:
    """Parse `EDGE_INFERENCE_CONFIG`; the node name from `EDGE_INFERENCE_NODE_NAME` wins when set."""
    raw = environ.get(ENV_WORKER_CONFIG)
    if not raw:
        raise ConfigError(f"{ENV_WORKER_CONFIG} is not set (it holds the worker configuration as JSON)")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENV_WORKER_CONFIG} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{ENV_WORKER_CONFIG} must be a JSON object")
    node = environ.get(ENV_NODE_NAME)
    if node:
        data["node"] = node
    return _validated(data, ENV_WORKER_CONFIG)


def _field(loc: Location) -> str:
    """A field of the configuration as the user wrote it (`sink.bucket`; the document itself: `(root)`)."""
    return ".".join(map(str, loc)) or "(root)"


def _validated(data: dict, where: str) -> WorkerConfig:
    try:
        config = WorkerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {where}: {one_line(exc, _field, limit=1)}") from None
    check_event_keys(config, where)
    return config


def check_event_keys(config: WorkerConfig, where: str) -> None:
    """Refuse, before anything is queued, settings whose event keys S3 would refuse for good.

    The node is one key segment (no '/', not '.' or '..'), and the longest key (prefix, namespace,
    job, node, the file and event ids, `.json`) must fit S3's 1024 bytes.
    """
    node = config.node
    if not node or "/" in node or node in (".", ".."):
        raise ConfigError(f"invalid {where}: node {node!r} cannot be one segment of an object key")
    prefix = getattr(config.sink, "prefix", "")
    longest = key_base(prefix, config.job, node, file_id(""), event_id("", "", 0.0)) + ".json"
    try:
        check_key_fits(check_key(longest))
    except ValueError as exc:
        raise ConfigError(f"invalid {where}: event keys would be refused: {exc}") from None


def _csv(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _default(model: type[BaseModel], field: str) -> object:
    """A field's default in the API models: the flags never restate one."""
    return model.model_fields[field].default


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `edge-inference detect`; defaults are those of the API models."""
    parser.add_argument("input", help="folder with the video (searched recursively)")
    parser.add_argument(
        "--out",
        required=True,
        help="where events go: a local folder, or s3://bucket/prefix (endpoint from --s3-endpoint or "
        f"{ENV_S3_ENDPOINT}; credentials from {ENV_S3_ACCESS_KEY}/{ENV_S3_SECRET_KEY})",
    )
    parser.add_argument("--watch", action="store_true", help="Continuous mode: keep watching for new files")
    parser.add_argument("--include", action="append", metavar="GLOB", help="file glob (repeatable; ** is recursive)")
    _add_model_arguments(parser)
    _add_event_arguments(parser)
    _add_worker_arguments(parser)
    add_s3_arguments(parser)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The detector and the sampling of `detect`."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="built-in model name or a weights file")
    parser.add_argument("--device", choices=[d.value for d in Device], default=Device.AUTO.value)
    parser.add_argument("--image-size", type=int, default=_default(ModelSpec, "image_size"))
    parser.add_argument("--confidence", type=float, default=_default(ModelSpec, "confidence"))
    parser.add_argument("--iou", type=float, default=_default(ModelSpec, "iou"))
    parser.add_argument("--classes", type=_csv, default=None, help="classes of interest, comma-separated")
    parser.add_argument(
        "--batch-size", type=int, default=_default(ModelSpec, "batch_size"), help="frames per forward pass on a GPU"
    )
    parser.add_argument(
        "--fps", type=float, default=_default(SamplingSpec, "fps"), help="frames per second of video to analyse"
    )
    parser.add_argument("--no-motion-gating", action="store_true", help="analyse every sampled frame")
    parser.add_argument("--motion-threshold", type=float, default=_default(SamplingSpec, "motion_threshold"))


def _add_event_arguments(parser: argparse.ArgumentParser) -> None:
    """How detections become events, and their snapshots."""
    parser.add_argument("--min-frames", type=int, default=_default(EventsSpec, "min_frames"))
    parser.add_argument(
        "--cooldown", type=float, default=_default(EventsSpec, "cooldown_seconds"),
        help="video seconds without the class to close",
    )
    parser.add_argument(
        "--stationary-seconds", type=float, default=_default(EventsSpec, "stationary_seconds"),
        help="video seconds still before an object is stationary (0: off)",
    )
    parser.add_argument(
        "--stationary-recheck-seconds", type=float, default=_default(EventsSpec, "stationary_recheck_seconds"),
        help="video seconds between re-checks of a stationary object",
    )
    parser.add_argument("--snapshot", choices=[s.value for s in SnapshotStyle], default=SnapshotStyle.ANNOTATED.value)
    parser.add_argument("--blur", type=_csv, default=None, metavar="CLASSES", help="classes blurred in snapshots")
    parser.add_argument("--snapshot-quality", type=int, default=_default(EventsSpec, "snapshot_quality"))


def _add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's state, metrics, identity, polling and webhook."""
    parser.add_argument("--state-dir", help="outbox, ledger and model cache (default: per input/output pair)")
    parser.add_argument("--outbox-max-mb", type=int, default=_default(OutboxSpec, "max_megabytes"))
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics, /healthz, /readyz (0: off)")
    parser.add_argument("--node", help=f"node name in keys (default: {ENV_NODE_NAME} or the host name)")
    parser.add_argument("--namespace", default="default", help="namespace part of the object keys")
    parser.add_argument("--job", default="standalone", help="job part of the object keys")
    parser.add_argument("--poll-seconds", type=float, default=_default(WorkerConfig, "poll_seconds"))
    parser.add_argument("--settle-seconds", type=float, default=_default(WorkerConfig, "settle_seconds"))
    parser.add_argument("--webhook-url", help=f"POST each event here, signed with {ENV_WEBHOOK_HMAC_KEY}")
    parser.add_argument("--webhook-classes", type=_csv, default=None, metavar="CLASSES",
                        help="classes sent to the webhook (default: all)")


def add_s3_arguments(parser: argparse.ArgumentParser) -> None:
    """The S3 endpoint flags, shared by `detect` and the `events` commands."""
    parser.add_argument("--s3-endpoint", help=f"host[:port] or http(s)://host[:port] (or {ENV_S3_ENDPOINT})")
    parser.add_argument("--s3-insecure", action="store_true", help="plain HTTP to the S3 endpoint")
    parser.add_argument("--s3-region")


def sink_from_out(out: str, args: argparse.Namespace, environ: Mapping[str, str]) -> S3Sink | DirectorySink:
    """Where `s3://bucket/prefix` or a folder points (flags `add_s3_arguments` and the environment)."""
    if not out.startswith("s3://"):
        return DirectorySink(path=str(Path(out).expanduser().resolve()))
    bucket, _, prefix = out[len("s3://") :].partition("/")
    if not _BUCKET_PATTERN.match(bucket):
        raise ConfigError(f"invalid --out {out}: {bucket!r} is not a valid bucket name")
    endpoint = args.s3_endpoint or environ.get(ENV_S3_ENDPOINT)
    if not endpoint:
        raise ConfigError(f"--out {out} needs --s3-endpoint or {ENV_S3_ENDPOINT}")
    secure = not args.s3_insecure and environ.get(ENV_S3_SECURE, "true").lower() not in ("0", "false", "no")
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ConfigError(f"S3 endpoint {endpoint!r} must be host[:port] or http(s)://host[:port]")
        secure = parts.scheme == "https" and not args.s3_insecure
        endpoint = parts.netloc
    data = {"endpoint": endpoint, "bucket": bucket, "prefix": prefix.strip("/"), "secure": secure}
    if args.s3_region:
        data["region"] = args.s3_region
    try:
        return S3Sink.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid --out {out}: {one_line(exc, _field, limit=1)}") from None


def default_state_dir(input_dir: Path, out: str, environ: Mapping[str, str]) -> Path:
    """A state folder per (input, output) pair, so two standalone runs never share a ledger."""
    home = environ.get(ENV_STATE_HOME) or environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(f"{input_dir}\0{out}".encode()).hexdigest()[:16]
    return Path(home) / "edge-inference" / digest


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> WorkerConfig:
    """Build the `WorkerConfig` the operator would send, from `detect` flags."""
    input_dir = Path(args.input).expanduser().resolve()
    if not input_dir.is_dir():
        raise ConfigError(f"input folder {args.input} does not exist or is not a folder")
    sink = sink_from_out(args.out, args, environ)
    state_dir = Path(args.state_dir).expanduser().resolve() if args.state_dir else default_state_dir(
        input_dir, args.out, environ
    )
    model: dict = {
        "name": args.model,
        "device": args.device,
        "imageSize": args.image_size,
        "confidence": args.confidence,
        "iou": args.iou,
        "batchSize": args.batch_size,
    }
    if args.classes:
        model["classes"] = args.classes
    data = {
        "job": JobRef(namespace=args.namespace, name=args.job).model_dump(by_alias=True),
        "node": args.node or environ.get(ENV_NODE_NAME) or socket.gethostname(),
        "mode": (Mode.CONTINUOUS if args.watch else Mode.BATCH).value,
        "inputDir": str(input_dir),
        "include": args.include or list(DEFAULT_INCLUDE),
        "model": model,
        "events": {
            "minFrames": args.min_frames,
            "cooldownSeconds": args.cooldown,
            "stationarySeconds": args.stationary_seconds,
            "stationaryRecheckSeconds": args.stationary_recheck_seconds,
            "snapshot": args.snapshot,
            "blurClasses": args.blur or [],
            "snapshotQuality": args.snapshot_quality,
        },
        "sampling": {
            "fps": args.fps,
            "motionGating": not args.no_motion_gating,
            "motionThreshold": args.motion_threshold,
        },
        "sink": sink.model_dump(by_alias=True),
        "stateDir": str(state_dir),
        "outbox": {"maxMegabytes": args.outbox_max_mb},
        "metricsPort": args.metrics_port,
        "pollSeconds": args.poll_seconds,
        "settleSeconds": args.settle_seconds,
    }
    if args.webhook_url:
        data["webhook"] = {"url": args.webhook_url, "classes": args.webhook_classes or []}
    return _validated(data, "flags")


def config_to_env(config: WorkerConfig) -> dict[str, str]:
    """The environment a pod gets for this config (what the operator renders)."""
    return {ENV_WORKER_CONFIG: config.model_dump_json(by_alias=True)}


def parse_detect_flags(argv: Sequence[str], environ: Mapping[str, str]) -> WorkerConfig:
    """Parse `detect` flags (without the subcommand) into a config; for tests and tools."""
    parser = argparse.ArgumentParser(prog="edge-inference detect", exit_on_error=False)
    add_detect_arguments(parser)
    try:
        args = parser.parse_args(list(argv))
    except argparse.ArgumentError as exc:
        raise ConfigError(str(exc)) from None
    return config_from_args(args, environ)

