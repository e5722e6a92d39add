"""`edge-inference`: the worker's command line.

    edge-inference detect /videos --out ./events               # Batch, events to a folder
    edge-inference detect /videos --out s3://events/site-a --watch
    edge-inference run                                         # in a pod: config from EDGE_INFERENCE_CONFIG
    edge-inference prepare-model       # export image, init container: the job's .pt exported once per node
    edge-inference export-model w.pt /opt/models --name yolov5nu   # image build: a built-in model's exports

Exit codes: see exit_codes.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edge_inference_api.models import ENV_WORKER_CONFIG, WorkerConfig

from .config import ConfigError, add_detect_arguments, config_from_args, config_from_env, credentials_from_env
from .detector import ModelError
from .exit_codes import EXIT_OK, EXIT_STARTUP, EXIT_USAGE
from .modelstore import ModelFetchError
from .review.commands import add_events_commands, run_events_command
from .termination import write_termination_message
from .worker import StartupError, Worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-inference", description="Find events in video with YOLO; upload only the events."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    detect = commands.add_parser("detect", help="process a folder of video (Batch, or --watch for Continuous)")
    add_detect_arguments(detect)
    commands.add_parser("run", help=f"run with the configuration in {ENV_WORKER_CONFIG} (what pods do)")
    events = commands.add_parser("events", help="list, show, report and watch the events in a bucket")
    add_events_commands(events)
    commands.add_parser(
        "prepare-model",
        help=f"export the .pt weights of the job in {ENV_WORKER_CONFIG} for the torch-free worker, once per node",
    )
    export = commands.add_parser("export-model", help="export .pt weights as a built-in model (image build)")
    export.add_argument("weights", help="the .pt file")
    export.add_argument("folder", help="the built-in model folder (EDGE_INFERENCE_MODEL_DIR)")
    export.add_argument("--name", required=True, help="the built-in model name the exports get")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `edge-inference` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    if not argv and environ.get(ENV_WORKER_CONFIG):
        argv = ["run"]
    args = build_parser().parse_args(argv)  # argparse prints usage and exits 2 on a bad flag
    if args.command == "events":
        return run_events_command(args, environ)
    # Offline by default: ultralytics must never reach for the network in a pod.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    if args.command == "export-model":
        return _export_model(Path(args.weights), Path(args.folder), args.name)
    try:
        config = config_from_args(args, environ) if args.command == "detect" else config_from_env(environ)
    except ConfigError as exc:
        print(f"edge-inference: error: {exc}", file=sys.stderr)
        write_termination_message(environ, f"configuration error: {exc}")
        return EXIT_USAGE
    from .logs import setup_json_logging

    setup_json_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.command == "prepare-model":
            return _prepare_model(config, environ)
        return Worker(config, credentials_from_env(environ), environ, stop).run()
    except StartupError as exc:
        print(f"edge-inference: cannot start: {exc}", file=sys.stderr)
        write_termination_message(environ, f"cannot start: {exc}")
        return EXIT_STARTUP


def _prepare_model(config: WorkerConfig, environ: dict[str, str]) -> int:
    """The export image's init container: the job's .pt weights exported into the node's cache, once."""
    from .weights import prepare_model

    try:
        prepare_model(config, credentials_from_env(environ), environ)
    except (ModelError, ModelFetchError) as exc:
        raise StartupError(str(exc)) from None
    return EXIT_OK


def _export_model(weights: Path, folder: Path, name: str) -> int:
    """`<folder>/<name>.onnx` and `<folder>/<name>_openvino_model/` from `weights` (the image build's step)."""
    from .weights import export_weights

    made = folder / f".{name}.export"
    try:
        export_weights(weights, made, name)
    except ModelError as exc:
        print(f"edge-inference: cannot export: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    for export in sorted(made.iterdir()):
        export.rename(folder / export.name)
    made.rmdir()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
