"""The worker process: wires the outbox, model, ledger and metrics, then runs Batch or Continuous.

Batch: process what is there, wait until the outbox has delivered every event, exit 0 (or 1 with
a summary of the files that failed). Continuous: rescan the folder every `poll_seconds` and start
a file once it has stopped changing for `settle_seconds`, until SIGTERM.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from edge_inference_api.models import Mode, S3Sink, WorkerConfig
from prometheus_client import CollectorRegistry

from .allocator import tune_malloc
from .config import S3Credentials
from .detector import Detector, ModelError, load_detector
from .files import Refusal, SettleTracker, VideoFile, scan
from .httpserver import HealthState, serve
from .ledger import FINISHED, Ledger
from .metrics import WorkerMetrics
from .modelstore import ModelFetchError
from .outbox import OutboxError, S3Outbox
from .outcomes import DONE, TERMINAL
from .pipeline import KIND_STATE_WRITE, FileResult, Services, Stopped, process_file, retry_until_done
from .record import ModelInfo
from .sinks import SinkError, sink_from_config
from .weights import locate_weights, model_cache

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FILES_FAILED = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_STOPPED = 143  # 128 + SIGTERM: a Batch run stopped before it finished

# On SIGTERM the outbox gets this long to deliver what waits (the pod's grace period is 30 s).
SHUTDOWN_FLUSH_SECONDS = 10.0
DRAIN_LOG_SECONDS = 30.0
# Batch drain: the last upload wakes it at once; this often it checks for SIGTERM and beats meanwhile.
DRAIN_WAKE_SECONDS = 0.2


class StartupError(Exception):
    """The worker cannot start (model missing, state folder unusable): one line, exit 3."""


class Worker:
    """One worker process; `run()` returns the exit code."""

    def __init__(
        self, config: WorkerConfig, credentials: S3Credentials, environ: Mapping[str, str], stop: threading.Event
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.environ = environ
        self.stop = stop
        self.registry = CollectorRegistry()
        self.health = HealthState()
        self.results: dict[str, tuple[str, str]] = {}  # rel -> (outcome, reason), reported once each
        self.services: Services | None = None  # set once the model is loaded

    def run(self) -> int:
        malloc_tuned = tune_malloc(self.environ)
        state = Path(self.config.state_dir)
        if not Path(self.config.input_dir).is_dir():
            raise StartupError(f"input folder {self.config.input_dir} does not exist or is not a folder")
        try:
            state.mkdir(parents=True, exist_ok=True)
            (state / "ledger").mkdir(exist_ok=True)
        except OSError as exc:
            raise StartupError(f"state folder {state} is not usable: {exc}") from None
        sink = sink_from_config(self.config.sink, self.credentials.access_key, self.credentials.secret_key)
        try:
            sink.check()
        except SinkError as exc:
            if not isinstance(self.config.sink, S3Sink):  # a local folder that cannot be written will not heal
                raise StartupError(str(exc)) from None
            # S3 may come back: the outbox keeps the events and retries; say so now, loudly.
            log.error("event sink not usable yet; events wait in the outbox", extra={"fields": {"error": str(exc)}})
        try:
            outbox = S3Outbox(state / "outbox", sink, self.config.outbox.max_megabytes * 1024 * 1024, self.registry)
        except (OutboxError, OSError) as exc:  # locked by another worker, or the state disk refuses
            raise StartupError(f"outbox at {state / 'outbox'}: {exc}") from None
        metrics = WorkerMetrics(self.registry, outbox.metrics.errors)
        try:
            server = serve(self.config.metrics_port, self.registry, self.health) if self.config.metrics_port else None
        except OSError as exc:
            outbox.close(0)
            raise StartupError(f"metrics port {self.config.metrics_port}: {exc.strerror or exc}") from None
        outbox.start()
        try:
            detector = self._load_detector(state)
            self.health.ready = True
            services = self.services = Services(
                config=self.config,
                detector=detector,
                model=ModelInfo(detector.name, detector.sha256),
                outbox=outbox,
                ledger=Ledger(state / "ledger"),
                metrics=metrics,
                health=self.health,
                stop=self.stop,
            )
            log.info(
                "worker started",
                extra={"fields": {"mode": self.config.mode.value, "input": self.config.input_dir,
                                  "sink": repr(sink), "model": detector.name, "device": detector.device,
                                  "backend": detector.backend,
                                  "node": self.config.node, "job": self.config.job.model_dump(),
                                  "mallocTuned": malloc_tuned}},
            )
            if self.config.mode == Mode.CONTINUOUS:
                self._continuous(services)
                return EXIT_OK
            return self._batch(services, outbox)
        finally:
            outbox.close(SHUTDOWN_FLUSH_SECONDS)
            if outbox.depth():
                log.warning("events left in the outbox for the next start",
                            extra={"fields": {"events": outbox.depth()}})
            if server is not None:
                server.shutdown()

    def _load_detector(self, state: Path) -> Detector:
        try:
            weights = locate_weights(self.config, self.credentials, self.environ)
            return load_detector(weights, self.config.model, self.config.events.blur_classes, self.environ,
                                 model_cache(self.config))
        except (ModelError, ModelFetchError) as exc:
            raise StartupError(str(exc)) from None

    # ------------------------------------------------------------------ modes

    def _batch(self, services: Services, outbox: S3Outbox) -> int:
        root = Path(self.config.input_dir)
        for item in scan(root, self.config.include):
            if self.stop.is_set():
                break
            self._handle(services, item)
        if self.stop.is_set():
            log.warning("stopped before the batch finished; it resumes from the ledger", extra={"fields": {}})
            return EXIT_STOPPED
        if not self._drain(services, outbox):
            return EXIT_STOPPED
        services.metrics.batch_complete.set(1)
        return self._summary()

    def _continuous(self, services: Services) -> None:
        root = Path(self.config.input_dir)
        settle = SettleTracker(self.config.settle_seconds)
        while not self.stop.is_set():
            services.metrics.beat()
            self.health.beat()
            present: set[str] = set()
            for item in scan(root, self.config.include):
                if self.stop.is_set():
                    break
                present.add(item.rel)
                if isinstance(item, VideoFile) and not self._finished(services, item):
                    if not settle.ready(item, time.monotonic()):
                        continue
                    settle.forget(item.rel)
                self._handle(services, item)
            settle.retain(present)
            if not self.stop.is_set():  # a complete scan: forget what is gone (memory stays flat)
                self.results = {rel: r for rel, r in self.results.items() if rel in present}
            self.stop.wait(self.config.poll_seconds)

    def _finished(self, services: Services, file: VideoFile) -> bool:
        return finished_as_is(services.ledger, file)

    def _handle(self, services: Services, item: VideoFile | Refusal) -> None:
        """One scanned path: refuse it, report an earlier result, or process it."""
        if isinstance(item, Refusal):
            self._report(services, item.rel, FileResult(item.outcome, item.reason))
            return
        entry = services.ledger.get(item.file_id)
        if finished_as_is(services.ledger, item):
            self._report(services, item.rel, FileResult(entry.outcome or DONE, "finished in an earlier run"))
            return
        result = process_file(services, item)
        if result.outcome is None:
            return
        if result.outcome in TERMINAL:
            try:
                retry_until_done(
                    services, "ledger update", KIND_STATE_WRITE,
                    lambda: services.ledger.finish(item.file_id, item.rel, item.size, result.outcome),
                )
            except Stopped:
                return
            services.metrics.bytes_scanned.inc(item.size)
        self._report(services, item.rel, result)

    def _report(self, services: Services, rel: str, result: FileResult) -> None:
        """Count and log a file's outcome once per process (a rescan must not count it again)."""
        if self.results.get(rel, (None,))[0] == result.outcome:
            return
        self.results[rel] = (result.outcome, result.reason)
        services.metrics.files.labels(outcome=result.outcome).inc()
        fields = {"file": rel, "outcome": result.outcome, "events": result.events, "sampledFrames": result.frames}
        if result.seconds:
            fields["seconds"] = round(result.seconds, 3)
            fields["framesPerSecond"] = round(result.frames / result.seconds, 2)
        if result.outcome == DONE:
            log.info("file done", extra={"fields": fields})
        else:
            fields["reason"] = result.reason
            log.warning(f"file {result.outcome}: {result.reason}", extra={"fields": fields})

    def _drain(self, services: Services, outbox: S3Outbox) -> bool:
        """Batch: wait until every event is confirmed by the sink; False if stopped first."""
        last_log = 0.0
        while not outbox.wait_empty(DRAIN_WAKE_SECONDS):
            if self.stop.is_set():
                return False
            services.metrics.beat()
            self.health.beat()
            now = time.monotonic()
            if now - last_log >= DRAIN_LOG_SECONDS:
                last_log = now
                log.info("waiting for the outbox to deliver", extra={"fields": {"events": outbox.depth()}})
        return True

    def _summary(self) -> int:
        outcomes = Counter(outcome for outcome, _ in self.results.values())
        failed = {rel: f"{o}: {r}" for rel, (o, r) in sorted(self.results.items()) if o != DONE}
        counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "no files"
        fields = {"outcomes": dict(outcomes), "failed": failed}
        if failed:
            log.error(f"batch finished with failures: {counts}", extra={"fields": fields})
            return EXIT_FILES_FAILED
        log.info(f"batch finished: {counts}", extra={"fields": fields})
        return EXIT_OK


def finished_as_is(ledger: Ledger, file: VideoFile) -> bool:
    """The ledger has this file finished at its current size (a file that grew is processed again)."""
    entry = ledger.get(file.file_id)
    return entry is not None and entry.state == FINISHED and entry.size == file.size
