"""`edge-inference`: the worker's command line.

    edge-inference detect /videos --out ./events               # Batch, events to a folder
    edge-inference detect /videos --out s3://events/site-a --watch
    edge-inference run                                         # in a pod: config from EDGE_INFERENCE_CONFIG

Exit codes: 0 done; 1 a Batch run finished but some files failed (summary in the log);
2 a configuration mistake (one line on stderr), or, in Batch, an event sink that keeps refusing
(missing bucket, wrong credentials); 3 the worker could not start (model missing, state folder
unusable); 143 stopped by SIGTERM/SIGINT before a Batch run finished. In a pod the reason of 1, 2
and 3 also goes to the termination message (see termination.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from edge_inference_api.models import ENV_WORKER_CONFIG

from .config import ConfigError, add_detect_arguments, config_from_args, config_from_env, credentials_from_env
from .review.commands import add_events_commands, run_events_command
from .termination import write_termination_message
from .worker import EXIT_STARTUP, EXIT_USAGE, StartupError, Worker


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
    try:
        config = config_from_env(environ) if args.command == "run" else config_from_args(args, environ)
    except ConfigError as exc:
        print(f"edge-inference: error: {exc}", file=sys.stderr)
        write_termination_message(environ, f"configuration error: {exc}")
        return EXIT_USAGE
    # Offline by default: ultralytics must never reach for the network in a pod.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from .logs import setup_json_logging

    setup_json_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        return Worker(config, credentials_from_env(environ), environ, stop).run()
    except StartupError as exc:
        print(f"edge-inference: cannot start: {exc}", file=sys.stderr)
        write_termination_message(environ, f"cannot start: {exc}")
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
