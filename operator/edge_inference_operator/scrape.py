"""Per-node progress read from each worker over HTTP: its compact /progress, else its /metrics.

Workers get no Kubernetes API access; the operator asks them instead. At fleet scale the cost is
in the asking, so (docs/benchmarks.md, "Worker progress at fleet scale"):

- the operator reads the worker's /progress (a ProgressReport, a few hundred bytes of JSON), not
  its whole Prometheus exposition (the parse alone cost about 2 ms a pod);
- each node at most every `ScrapePolicy.interval`, not every reconcile: reconciles in between use
  the node's last report. A node is due again after the interval stretched by a stable per-node
  factor in [0.75, 1.25), so the fleet's scrapes spread over the reconciles instead of bunching;
- one bound on the scrapes in flight across every job; nodes already failing are retried in the
  background, under a bound of their own, so a hung worker never holds up a reconcile;
- a new connection per scrape: keeping one alive per worker saves about a third of the scrape CPU
  but holds about 7 KB per worker for good (100 MB at 15,000 workers); memory is the scarcer.

A scrape that fails is remembered (not raised): the status marks the node Stale once it has failed
for a grace period, so a node that stops answering is Stale at most `interval` after the grace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import zlib
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

import aiohttp
from edge_inference_api import telemetry
from edge_inference_api.errors import dotted, one_line
from edge_inference_api.models import WORKER_METRICS_PORT
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import ValidationError

from edge_inference_operator.names import METRICS_PORT_NAME
from edge_inference_operator.observed import NodeReport, WorkerProgress, pod_node
from edge_inference_operator.settings import OperatorSettings


class ScrapeError(Exception):
    """A worker's progress could not be read or parsed."""


@dataclasses.dataclass(frozen=True)
class ScrapePolicy:
    """How the operator asks its workers (the benchmark compares these knobs, docs/benchmarks.md)."""

    path: str = telemetry.PROGRESS_PATH  # METRICS_PATH: the whole Prometheus text, as before /progress
    keep_alive: bool = False  # True: hold an idle connection per worker between its scrapes
    timeout: float = 2.0  # seconds for one scrape
    concurrency: int = 32  # scrapes in flight at once across every job sharing a ScrapeMemory (and as many retries)
    interval: float = 0.0  # a node is asked at most this often (seconds; 0: on every call)


def policy_from_settings(settings: OperatorSettings) -> ScrapePolicy:
    """The operator's policy: each node asked twice per Stale grace period, so Stale stays timely."""
    return ScrapePolicy(
        timeout=settings.scrape_timeout_seconds,
        concurrency=settings.scrape_concurrency,
        interval=settings.stale_after_seconds / 2,
    )


def open_session(policy: ScrapePolicy) -> aiohttp.ClientSession:
    """The one HTTP session of all scrapes: idle connections kept until their worker is due again (or
    none kept: a new connection per scrape). ScrapeMemory bounds the scrapes in flight, not the
    connector: its limit wakes waiters at a cost that grows with their number (docs/benchmarks.md)."""
    if not policy.keep_alive:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
    # The pool holds one idle connection per worker until its next scrape: the longest stretch of its
    # interval, and a minute for the reconcile that asks it to come round.
    keepalive = policy.interval * 1.25 + policy.timeout + 60.0
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=keepalive))


def _samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    try:
        return [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    except ValueError as error:
        raise ScrapeError(f"unparseable metrics: {error}") from error


def _progress(report: telemetry.ProgressReport) -> WorkerProgress:
    return WorkerProgress(**report.model_dump())


def parse_worker_metrics(text: str) -> WorkerProgress:
    """Read the telemetry names from a Prometheus text exposition into WorkerProgress."""
    report = telemetry.progress_from_samples(_samples(text))
    if report is None:
        raise ScrapeError("the endpoint does not expose the worker's metrics")
    return _progress(report)


def parse_progress(body: bytes) -> WorkerProgress:
    """Read a worker's /progress body (ProgressReport JSON) into WorkerProgress."""
    try:
        return _progress(telemetry.ProgressReport.model_validate_json(body))
    except ValidationError as error:
        raise ScrapeError(f"unusable progress: {one_line(error, dotted('progress'), limit=3)}") from None


def worker_url(pod: Mapping[str, Any]) -> str | None:
    """http://<podIP>:<port named metrics> of a worker pod (no path), or None while it has no IP."""
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        return None
    port = WORKER_METRICS_PORT
    for container in pod.get("spec", {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == METRICS_PORT_NAME:
                port = int(declared["containerPort"])
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


async def _get(session: aiohttp.ClientSession, url: str, timeout: float) -> tuple[int, str, bytes]:
    """Status, content type and body of a GET (aiohttp asks once more when a connection closes unanswered)."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        return response.status, response.content_type, await response.read()


async def scrape_worker(session: aiohttp.ClientSession, base_url: str, policy: ScrapePolicy) -> WorkerProgress:
    """One worker's progress from `policy.path` under `base_url`; raises ScrapeError on any failure.

    A worker without /progress (an older image) answers 404 there: its /metrics is read instead. The
    body's content type says which parser reads it, JSON or Prometheus text.
    """
    url = base_url + policy.path
    try:
        status, content_type, body = await _get(session, url, policy.timeout)
        if status == 404 and policy.path != telemetry.METRICS_PATH:
            url = base_url + telemetry.METRICS_PATH
            status, content_type, body = await _get(session, url, policy.timeout)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ScrapeError(f"{url}: {type(error).__name__} {error}") from error
    if status != 200:
        raise ScrapeError(f"{url} answered HTTP {status}")
    if content_type == "application/json":
        return parse_progress(body)
    return parse_worker_metrics(body.decode("utf-8", errors="replace"))


def _stretch(node: str) -> float:
    """A stable factor in [0.75, 1.25) per node: nodes seen at once fall due at different reconciles."""
    return 0.75 + (zlib.crc32(node.encode()) % 1000) / 2000


Outcome = WorkerProgress | ScrapeError


class ScrapeMemory:
    """What scraping keeps across reconciles, for every job: the latest report of each (job, node) (last
    good figures, when last seen, failing since when); when each node is due to be asked again (and at
    which address); the retries of failing nodes in flight; the errors not yet handed out; and the
    bound on scrapes in flight."""

    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], NodeReport] = {}
        self._due: dict[tuple[str, str], tuple[datetime.datetime, str]] = {}  # -> (next scrape, url asked)
        self._retrying: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._errors: dict[str, dict[str, str]] = {}  # job -> node -> why its latest scrape failed
        self._nodes: dict[str, set[str]] = {}  # job -> its nodes above: forgetting one job never walks all jobs
        self._slots: dict[bool, asyncio.Semaphore] = {}  # retry? -> bound

    def slots(self, concurrency: int, retry: bool) -> asyncio.Semaphore:
        """The bound on scrapes in flight across every job (made in the running loop on first use).

        Retries of failing nodes have a bound of their own: hung workers never hold up the others.
        """
        if retry not in self._slots:
            self._slots[retry] = asyncio.Semaphore(concurrency)
        return self._slots[retry]

    def due(self, key: tuple[str, str], url: str, now: datetime.datetime) -> bool:
        """Whether a node should be asked now: never asked, its pod's address changed, or its time has come
        (and no retry of it is in flight)."""
        when, asked = self._due.get(key, (now, url))
        return key not in self._retrying and (asked != url or now >= when)

    def failing(self, key: tuple[str, str]) -> bool:
        return self.report(key).failing_since is not None

    def report(self, key: tuple[str, str]) -> NodeReport:
        return self._reports.get(key, NodeReport())

    def asked(self, key: tuple[str, str], url: str, now: datetime.datetime, interval: float) -> None:
        """A node was asked at `now`: it is due again after its interval."""
        self._nodes.setdefault(key[0], set()).add(key[1])
        self._due[key] = (now + datetime.timedelta(seconds=interval * _stretch(key[1])), url)

    def record(self, key: tuple[str, str], outcome: Outcome, now: datetime.datetime) -> None:
        """Remember one scrape's outcome, made at `now` (a failure keeps the last good figures)."""
        old = self.report(key)
        if isinstance(outcome, ScrapeError):
            self._errors.setdefault(key[0], {})[key[1]] = str(outcome)
            new = NodeReport(progress=old.progress, last_seen=old.last_seen, failing_since=old.failing_since or now)
        else:
            new = NodeReport(progress=outcome, last_seen=now, failing_since=None)
        self._reports[key] = new

    def retry(self, key: tuple[str, str], attempt: Coroutine[Any, Any, Outcome], now: datetime.datetime) -> None:
        """Run a failing node's scrape in the background; its outcome lands here for a later call."""

        async def retry() -> None:
            outcome = await attempt
            if key in self._due:  # not forgotten meanwhile
                self.record(key, outcome, now)

        self._retrying[key] = task = asyncio.create_task(retry())
        task.add_done_callback(lambda _: self._retrying.pop(key, None))

    def take_errors(self, job_key: str) -> dict[str, str]:
        """The errors of a job's scrapes that ended since the last call, by node."""
        return self._errors.pop(job_key, {})

    def forget(self, job_key: str, keep_nodes: Iterable[str] = ()) -> None:
        """Drop what is remembered about a job's nodes, except `keep_nodes` (their retries are cancelled)."""
        keep = set(keep_nodes)
        known = self._nodes.get(job_key, set())
        for node in known - keep:
            key = (job_key, node)
            known.discard(node)
            self._reports.pop(key, None)
            self._due.pop(key, None)
            if (task := self._retrying.pop(key, None)) is not None:
                task.cancel()
        if not known:
            self._nodes.pop(job_key, None)
            self._errors.pop(job_key, None)


@dataclasses.dataclass(frozen=True)
class ScrapeRound:
    """One call's outcome: every running node's report (asked now or remembered), how many nodes were
    asked, and why each failed scrape that ended since the last call failed."""

    reports: dict[str, NodeReport]
    asked: int
    errors: dict[str, str]  # node -> the scrape's error


def running_workers(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The base URL of each node's running worker pod."""
    targets = {}
    for pod in pods:
        node, url = pod_node(pod), worker_url(pod)
        if node is not None and url is not None and pod.get("status", {}).get("phase") == "Running":
            targets[node] = url
    return targets


async def _outcome(session: aiohttp.ClientSession, url: str, policy: ScrapePolicy, slots: asyncio.Semaphore) -> Outcome:
    """One scrape's progress, or its error, once a slot is free."""
    async with slots:
        if session.closed:  # the operator stopped while a retry waited for its slot
            return ScrapeError(f"{url}: the operator is stopping")
        try:
            return await scrape_worker(session, url, policy)
        except ScrapeError as error:
            return error


async def scrape_pods(
    session: aiohttp.ClientSession,
    pods: Iterable[Mapping[str, Any]],
    memory: ScrapeMemory,
    job_key: str,
    now: datetime.datetime,
    policy: ScrapePolicy,
) -> ScrapeRound:
    """Ask every running worker pod of a job that is due; reports of all of them by node.

    Nodes that answered last time are awaited. Nodes already failing are asked in the background: a
    worker that hangs would hold the reconcile for the scrape's timeout every time it is due, and its
    report (failing since its first failed scrape, hence Stale after the grace) does not need the answer.
    At most `policy.concurrency` scrapes (and as many retries) are in flight across every call sharing `memory`.
    """
    targets = running_workers(pods)
    memory.forget(job_key, keep_nodes=targets)
    due = {node: url for node, url in targets.items() if memory.due((job_key, node), url, now)}
    awaited = {node: url for node, url in due.items() if not memory.failing((job_key, node))}
    slots, retry_slots = memory.slots(policy.concurrency, retry=False), memory.slots(policy.concurrency, retry=True)
    for node, url in due.items():
        memory.asked((job_key, node), url, now, policy.interval)
        if node not in awaited:
            memory.retry((job_key, node), _outcome(session, url, policy, retry_slots), now)
    outcomes = await asyncio.gather(*(_outcome(session, url, policy, slots) for url in awaited.values()))
    for node, outcome in zip(awaited, outcomes, strict=True):
        memory.record((job_key, node), outcome, now)
    reports = {node: memory.report((job_key, node)) for node in targets}
    return ScrapeRound(reports, len(due), memory.take_errors(job_key))
