"""The worker process: wires the outbox, model, ledger and metrics, then runs Batch or Continuous.

Batch: process what is there, wait until the outbox has delivered every event, exit 0 (or 1 with
a summary of the files that failed; 2 when the event sink keeps giving a definite no such as a
missing bucket or wrong credentials). Continuous: rescan the folder every `poll_seconds` and start
a file once it has stopped changing for `settle_seconds`, until SIGTERM.

A file is known by the id of the path where it was first seen; a file the ledger does not know
by path but knows by its bytes (renamed, moved into an archive folder, a symlink beside it) keeps
its first id, so it is neither processed again nor given a second set of events. A copy (the
bytes still at the first path, as another inode) is a recording of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

from edge_inference_api.models import ENV_WEBHOOK_HMAC_KEY, Mode, S3Sink, WorkerConfig
from prometheus_client import CollectorRegistry

from .config import S3Credentials
from .detector import Detector, ModelError, load_detector
from .event_document import ModelInfo
from .exit_codes import EXIT_FILES_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from .files import SettleTracker, SkippedFile, VideoFile, fingerprint, scan, shown
from .httpserver import HealthState, serve
from .indexer import EventIndexWriter
from .ledger import FINISHED, FileProgress, Ledger
from .malloc_tuning import tune_malloc
from .metrics import WorkerMetrics
from .modelstore import ModelFetchError
from .outbox import Outbox, OutboxError
from .outcomes import DONE, FAILED, SKIPPED, TERMINAL
from .pipeline import KIND_STATE_WRITE, FileResult, Services, Stopped, process_file, retry_until_done, sink_prefix
from .sinks import FolderSink, MinioSink, Sink, SinkError, sink_from_config
from .termination import ENV_TERMINATION_LOG, write_termination_message
from .webhook import Notifier, WebhookSink, stored_check
from .weights import locate_weights, model_cache

__all__ = ["ENV_TERMINATION_LOG", "Worker", "settings_digest"]

log = logging.getLogger(__name__)

# On SIGTERM the outbox gets this long to deliver what waits (the pod's grace period is 30 s).
SHUTDOWN_FLUSH_SECONDS = 10.0
# Batch: how long the webhook's receiver gets to take the messages that wait once every event is in
# S3; what it has not taken by then stays on the node's disk for the next run.
ENV_WEBHOOK_DRAIN = "EDGE_INFERENCE_WEBHOOK_DRAIN_SECONDS"
WEBHOOK_DRAIN_SECONDS = 60.0
# The webhook outbox's bound: messages are about 600 bytes, so this holds ~100,000 of them.
WEBHOOK_OUTBOX_BYTES = 64 * 1024 * 1024
DRAIN_LOG_SECONDS = 30.0
# Batch drain: the last upload wakes it at once; this often it checks for SIGTERM and beats meanwhile.
DRAIN_WAKE_SECONDS = 0.2
# Batch: how long the sink may keep giving a definite no (missing bucket, wrong credentials) before
# the run ends with exit 2. Long enough for a bucket created, or credentials rotated, alongside.
ENV_SINK_ERROR_GRACE = "EDGE_INFERENCE_SINK_ERROR_GRACE_SECONDS"
SINK_ERROR_GRACE_SECONDS = 60.0
# Outcomes that are not failures in the Batch summary.
NOT_FAILED = frozenset({DONE, SKIPPED})


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
        self.results: dict[str, tuple[str | None, str]] = {}  # name -> (outcome, reason), reported once each
        self.services: Services | None = None  # set once the model is loaded
        self.settings = settings_digest(config)
        self.sink_grace = float(environ.get(ENV_SINK_ERROR_GRACE, SINK_ERROR_GRACE_SECONDS))
        self._identities: dict[str, tuple[int, int, str]] = {}  # rel -> (size, mtime, file id) found by bytes
        self._earlier = 0  # files finished in an earlier run, reported since the last summary line

    def run(self) -> int:
        """Start (folders, sink, outbox, metrics port, model), then run the configured mode; the exit code."""
        malloc_tuned = tune_malloc(self.environ)
        state = self._state_folder()
        sink = self._checked_sink()
        metrics = WorkerMetrics(self.registry)
        outbox = self._open_outbox(state, sink, metrics)
        server = self._serve_metrics(outbox)
        outbox.start()
        webhooks: Outbox | None = None
        try:
            webhooks = self._webhook_outbox(state, sink) if self.config.webhook else None
            services = self.services = self._services(state, outbox, metrics, webhooks)
            log.info(
                "worker started",
                extra={"fields": {"mode": self.config.mode.value, "input": self.config.input_dir,
                                  "sink": repr(sink), "model": services.detector.name,
                                  "device": services.detector.device, "backend": services.detector.backend,
                                  "node": self.config.node, "job": self.config.job.model_dump(),
                                  "mallocTuned": malloc_tuned}},
            )
            return self._run_mode(services, outbox, webhooks)
        finally:
            self._shut_down(outbox, webhooks, server)

    def _state_folder(self) -> Path:
        """The state folder, made if missing; the input folder must exist."""
        state = Path(self.config.state_dir)
        if not Path(self.config.input_dir).is_dir():
            raise StartupError(f"input folder {self.config.input_dir} does not exist or is not a folder")
        try:
            state.mkdir(parents=True, exist_ok=True)
            (state / "ledger").mkdir(exist_ok=True)
        except OSError as exc:
            raise StartupError(f"state folder {state} is not usable: {exc}") from None
        return state

    def _checked_sink(self) -> MinioSink | FolderSink:
        """The event sink, checked: a folder that cannot be written stops the start; S3 may come back later."""
        sink = sink_from_config(self.config.sink, self.credentials.access_key, self.credentials.secret_key)
        try:
            sink.check()
        except SinkError as exc:
            if not isinstance(self.config.sink, S3Sink):  # a local folder that cannot be written will not heal
                raise StartupError(str(exc)) from None
            # S3 may come back: the outbox keeps the events and retries; say so now, loudly.
            log.error("event sink not usable yet; events wait in the outbox", extra={"fields": {"error": str(exc)}})
        return sink

    def _open_outbox(self, state: Path, sink: Sink, metrics: WorkerMetrics) -> Outbox:
        try:
            return Outbox(state / "outbox", sink, self.config.outbox.max_megabytes * 1024 * 1024, self.registry,
                          errors=metrics.errors)
        except (OutboxError, OSError) as exc:  # locked by another worker, or the state disk refuses
            raise StartupError(f"outbox at {state / 'outbox'}: {exc}") from None

    def _serve_metrics(self, outbox: Outbox) -> ThreadingHTTPServer | None:
        """/metrics and the probes on the configured port (none for port 0)."""
        if not self.config.metrics_port:
            return None
        try:
            return serve(self.config.metrics_port, self.registry, self.health)
        except OSError as exc:
            outbox.close(0)
            raise StartupError(f"metrics port {self.config.metrics_port}: {exc.strerror or exc}") from None

    def _services(self, state: Path, outbox: Outbox, metrics: WorkerMetrics, webhooks: Outbox | None) -> Services:
        """What the pipeline works with, once the model is loaded (the worker is ready from then on)."""
        detector = self._load_detector(state)
        self.health.ready = True
        return Services(
            config=self.config,
            detector=detector,
            model=ModelInfo(detector.name, detector.sha256),
            outbox=outbox,
            ledger=Ledger(state / "ledger"),
            metrics=metrics,
            health=self.health,
            stop=self.stop,
            index=EventIndexWriter(state / "index", sink_prefix(self.config), outbox),
            notifier=self._notifier(webhooks),
        )

    def _run_mode(self, services: Services, outbox: Outbox, webhooks: Outbox | None) -> int:
        if self.config.mode == Mode.CONTINUOUS:
            self._continuous(services)
            return EXIT_OK
        result = self._batch(services, outbox)
        if webhooks is not None and result == EXIT_OK:
            self._drain_webhooks(webhooks)
        return result

    def _shut_down(self, outbox: Outbox, webhooks: Outbox | None, server: ThreadingHTTPServer | None) -> None:
        if webhooks is not None:
            webhooks.close(0)
        # A sink that says no for good will not take the events in the next 10 s either.
        outbox.close(0 if outbox.sink_refusal() else SHUTDOWN_FLUSH_SECONDS)
        if outbox.depth():
            log.warning("events left in the outbox for the next start",
                        extra={"fields": {"events": outbox.depth()}})
        if server is not None:
            server.shutdown()

    def _webhook_outbox(self, state: Path, sink: Sink) -> Outbox:
        """The job's webhook messages: a durable outbox of their own (docs/events.md, "Notifications")."""
        key = self.environ.get(ENV_WEBHOOK_HMAC_KEY, "")
        if not key:
            raise StartupError(f"the job names a webhook but {ENV_WEBHOOK_HMAC_KEY} (its HMAC key) is empty")
        assert self.config.webhook is not None
        receiver = WebhookSink(self.config.webhook.url, key.encode(), stored_check(sink))
        try:
            webhooks = Outbox(state / "webhook-outbox", receiver, WEBHOOK_OUTBOX_BYTES, CollectorRegistry())
        except (OutboxError, OSError) as exc:
            raise StartupError(f"webhook outbox at {state / 'webhook-outbox'}: {exc}") from None
        webhooks.start()
        return webhooks

    def _notifier(self, webhooks: Outbox | None) -> Notifier | None:
        if webhooks is None or self.config.webhook is None:
            return None
        bucket = self.config.sink.bucket if isinstance(self.config.sink, S3Sink) else None
        return Notifier(webhooks, self.config.webhook.classes, bucket)

    def _drain_webhooks(self, webhooks: Outbox) -> None:
        """Batch: give the receiver a while to take what waits; what it does not take waits for the next run."""
        grace = float(self.environ.get(ENV_WEBHOOK_DRAIN, WEBHOOK_DRAIN_SECONDS))
        deadline = time.monotonic() + grace
        while not webhooks.wait_empty(min(DRAIN_WAKE_SECONDS, max(0.0, deadline - time.monotonic()))):
            if self.stop.is_set() or time.monotonic() >= deadline:
                log.warning("webhook messages left for the next run on this node",
                            extra={"fields": {"messages": webhooks.depth(), "waited": grace}})
                return
            if self.services is not None:
                self.services.beat()

    def _load_detector(self, state: Path) -> Detector:
        try:
            weights = locate_weights(self.config, self.credentials, self.environ)
            return load_detector(weights, self.config.model, self.config.events.blur_classes, self.environ,
                                 model_cache(self.config))
        except (ModelError, ModelFetchError) as exc:
            raise StartupError(str(exc)) from None

    # ------------------------------------------------------------------ modes

    def _batch(self, services: Services, outbox: Outbox) -> int:
        root = Path(self.config.input_dir)
        for item in scan(root, self.config.include):
            if self.stop.is_set():
                break
            self._handle(services, item)
        self._log_earlier()
        if self.stop.is_set():
            log.warning("stopped before the batch finished; it resumes from the ledger", extra={"fields": {}})
            return EXIT_STOPPED
        drained = self._drain(services, outbox)
        if drained != EXIT_OK:
            return drained
        services.metrics.batch_complete.set(1)
        return self._summary()

    def _continuous(self, services: Services) -> None:
        root = Path(self.config.input_dir)
        settle = SettleTracker(self.config.settle_seconds)
        while not self.stop.is_set():
            services.beat()
            present = self._scan_once(services, root, settle)
            self._log_earlier()
            settle.retain(present)
            if not self.stop.is_set():  # a complete scan: forget what is gone (memory stays flat)
                names = {shown(rel) for rel in present}
                self.results = {name: r for name, r in self.results.items() if name in names}
                self._identities = {rel: i for rel, i in self._identities.items() if rel in present}
            self.stop.wait(self.config.poll_seconds)

    def _scan_once(self, services: Services, root: Path, settle: SettleTracker) -> set[str]:
        """Handle every file that has settled; the paths seen (all of them unless stopped part way)."""
        present: set[str] = set()
        for item in scan(root, self.config.include):
            if self.stop.is_set():
                break
            present.add(item.rel)
            if isinstance(item, VideoFile) and self._finished_earlier(services, item) is None:
                if not settle.ready(item, time.monotonic()):
                    continue
                settle.forget(item.rel)
            self._handle(services, item)
        return present

    def _identify(self, services: Services, file: VideoFile) -> VideoFile:
        """The file with the id the ledger knows it by: its path's, or that of the same bytes elsewhere."""
        if services.ledger.get(file.file_id) is not None:
            return file
        cached = self._identities.get(file.rel)
        if cached is not None and cached[:2] == (file.size, file.mtime_ns):
            return replace(file, file_id=cached[2])
        try:
            entry = services.ledger.by_fingerprint(fingerprint(file.path, file.size))
        except OSError:  # gone or unreadable: processing it says which
            return file
        if entry is None or entry.size != file.size or self._copy_of(entry, file):
            return file
        self._identities[file.rel] = (file.size, file.mtime_ns, entry.file_id)
        return replace(file, file_id=entry.file_id)

    def _copy_of(self, entry: FileProgress, file: VideoFile) -> bool:
        """The same bytes are still at the first path, as another file: a copy is a recording of its own.

        Gone from there, it was moved or renamed; the same inode, it is a link to it.
        """
        try:
            first = (Path(self.config.input_dir).resolve() / entry.rel).stat()
            this = file.path.stat()
        except OSError:
            return False
        return (first.st_dev, first.st_ino) != (this.st_dev, this.st_ino) and first.st_size == entry.size

    def _finished_earlier(self, services: Services, file: VideoFile) -> FileProgress | None:
        """The ledger entry if this file needs no processing now (finished as it is; a failure not yet due)."""
        entry = services.ledger.get(self._identify(services, file).file_id)
        if entry is None or entry.state != FINISHED or entry.size != file.size:
            return None
        if entry.outcome == FAILED and (entry.settings != self.settings or time.time() >= entry.retry_after()):
            return None
        return entry

    def _handle(self, services: Services, item: VideoFile | SkippedFile) -> None:
        """One scanned path: refuse it, report an earlier result, or process it."""
        if isinstance(item, SkippedFile):
            self._report(services, item.rel, FileResult(item.outcome, item.reason))
            return
        item = self._identify(services, item)
        entry = self._finished_earlier(services, item)
        if entry is not None:
            self._report_earlier(services, item, entry)
            return
        self.results.pop(item.name, None)  # processed again (it grew, or a failure is retried): said again
        result = process_file(services, item)
        if result.outcome is None:
            return
        if result.outcome in TERMINAL:
            try:
                retry_until_done(
                    services, "ledger update", KIND_STATE_WRITE, lambda: self._finish(services, item, result)
                )
            except Stopped:
                return
            services.metrics.bytes_scanned.inc(item.size)
        self._report(services, item.name, result)

    def _finish(self, services: Services, file: VideoFile, result: FileResult) -> None:
        previous = services.ledger.get(file.file_id)
        failures = 0
        if result.outcome == FAILED:
            again = previous is not None and previous.outcome == FAILED and previous.settings == self.settings
            failures = previous.failures + 1 if previous is not None and again else 1
        try:
            content = fingerprint(file.path, file.size)
        except OSError:  # rotated away meanwhile: it cannot be renamed back under another name either
            content = ""
        assert result.outcome is not None  # only a final outcome is recorded
        services.ledger.finish(file.file_id, file.rel, file.size, result.outcome, fingerprint=content,
                               settings=self.settings, finished_at=time.time(), failures=failures)

    def _report_earlier(self, services: Services, file: VideoFile, entry: FileProgress) -> None:
        """A file finished before: counted once per process; one summary line per scan, not one per file."""
        if entry.outcome == FAILED:
            retry = datetime.fromtimestamp(entry.retry_after(), UTC).isoformat(timespec="seconds")
            reason = f"failed in an earlier run; retried after {retry} or when the settings change"
            self._report(services, file.name, FileResult(FAILED, reason))
            return
        if file.name not in self.results:
            self._earlier += 1
        self._report(services, file.name, FileResult(entry.outcome or DONE, "finished in an earlier run"), quiet=True)

    def _log_earlier(self) -> None:
        if self._earlier:
            log.info(f"{self._earlier} files finished in an earlier run, not processed again",
                     extra={"fields": {"files": self._earlier}})
            self._earlier = 0

    def _report(self, services: Services, name: str, result: FileResult, quiet: bool = False) -> None:
        """Count and log a file's outcome once per process (a rescan must not count it again)."""
        if self.results.get(name, (None,))[0] == result.outcome:
            return
        self.results[name] = (result.outcome, result.reason)
        services.metrics.files.labels(outcome=result.outcome).inc()
        if quiet:
            return
        fields: dict[str, object] = {
            "file": name, "outcome": result.outcome, "events": result.events, "sampledFrames": result.frames,
        }
        if result.seconds:
            fields["seconds"] = round(result.seconds, 3)
            fields["framesPerSecond"] = round(result.frames / result.seconds, 2)
        if result.outcome == DONE:
            log.info("file done", extra={"fields": fields})
        else:
            fields["reason"] = result.reason
            log.warning(f"file {result.outcome}: {result.reason}", extra={"fields": fields})

    def _drain(self, services: Services, outbox: Outbox) -> int:
        """Batch: wait until every event is confirmed by the sink.

        EXIT_STOPPED if stopped first; EXIT_USAGE once the sink has said a definite no (missing
        bucket, wrong credentials) for `sink_grace` seconds: the events stay on disk.
        """
        last_log = 0.0
        while not outbox.wait_empty(DRAIN_WAKE_SECONDS):
            if self.stop.is_set():
                return EXIT_STOPPED
            services.beat()
            now = time.monotonic()
            refusal = outbox.sink_refusal()
            if refusal is not None and now - refusal.since >= self.sink_grace:
                events = outbox.events_waiting()
                message = (f"the event sink refuses: {refusal.message}; {events} events stay in the outbox "
                           "for the next start")
                log.error(message, extra={"fields": {"events": events, "waited": round(now - refusal.since)}})
                write_termination_message(self.environ, message)
                return EXIT_USAGE
            if now - last_log >= DRAIN_LOG_SECONDS:
                last_log = now
                log.info("waiting for the outbox to deliver",
                         extra={"fields": {"events": outbox.events_waiting(),
                                           "lastError": refusal and refusal.message}})
        return EXIT_OK

    def _summary(self) -> int:
        outcomes = Counter(outcome for outcome, _ in self.results.values())
        failed = {name: f"{o}: {r}" for name, (o, r) in sorted(self.results.items()) if o not in NOT_FAILED}
        counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "no files"
        fields = {"outcomes": dict(outcomes), "failed": failed}
        if failed:
            log.error(f"batch finished with failures: {counts}", extra={"fields": fields})
            write_termination_message(self.environ, f"batch finished with failures: {counts}")
            return EXIT_FILES_FAILED
        log.info(f"batch finished: {counts}", extra={"fields": fields})
        return EXIT_OK


def settings_digest(config: WorkerConfig) -> str:
    """Digest of the settings that decide a file's outcome and events (a change retries failed files)."""
    parts = config.model_dump(mode="json", include={"job", "node", "model", "events", "sampling", "sink"})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
