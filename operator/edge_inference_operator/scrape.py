"""Per-node progress read from each worker's /metrics over HTTP, as Prometheus would.

Workers get no Kubernetes API access; the operator scrapes them instead. A scrape that fails is
remembered (not raised): the status marks the node Stale once it has failed for a grace period.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from edge_inference_api import telemetry
from edge_inference_api.models import WORKER_METRICS_PORT
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from edge_inference_operator.names import METRICS_PORT_NAME
from edge_inference_operator.observed import NodeReport, WorkerProgress, pod_node


class ScrapeError(Exception):
    """A worker's metrics could not be read or parsed."""


def _samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    try:
        return [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    except ValueError as error:
        raise ScrapeError(f"unparseable metrics: {error}") from error


def parse_worker_metrics(text: str) -> WorkerProgress:
    """Read the telemetry names from a Prometheus text exposition into WorkerProgress."""
    values: dict[str, float] = {}
    files_done = 0.0
    for sample in _samples(text):
        if sample.name == telemetry.FILES + "_total":
            files_done += sample.value if sample.labels.get("outcome") == "done" else 0.0
        elif not sample.labels:
            values[sample.name] = sample.value
    if telemetry.HEARTBEAT not in values and telemetry.FRAMES_ANALYSED + "_total" not in values:
        raise ScrapeError("the endpoint does not expose the worker's metrics")
    return WorkerProgress(
        files_done=int(files_done),
        frames_analysed=int(values.get(telemetry.FRAMES_ANALYSED + "_total", 0)),
        events_uploaded=int(values.get(telemetry.EVENTS_UPLOADED + "_total", 0)),
        events_waiting=int(values.get(telemetry.OUTBOX_DEPTH, 0)),
        heartbeat=values.get(telemetry.HEARTBEAT),
        batch_complete=values.get(telemetry.BATCH_COMPLETE, 0) >= 1,
        outbox_full=values.get(telemetry.OUTBOX_FULL, 0) >= 1,
        outbox_oldest_age=values.get(telemetry.OUTBOX_OLDEST_AGE, 0.0),
    )


def metrics_url(pod: Mapping[str, Any]) -> str | None:
    """http://<podIP>:<port named metrics>/metrics of a worker pod, or None while it has no IP."""
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        return None
    port = WORKER_METRICS_PORT
    for container in pod.get("spec", {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == METRICS_PORT_NAME:
                port = int(declared["containerPort"])
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{telemetry.METRICS_PATH}"


async def scrape_worker(session: aiohttp.ClientSession, url: str, timeout: float) -> WorkerProgress:
    """GET one worker's /metrics; raises ScrapeError on any failure."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                raise ScrapeError(f"{url} answered HTTP {response.status}")
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ScrapeError(f"{url}: {type(error).__name__} {error}") from error
    return parse_worker_metrics(text)


class ScrapeMemory:
    """The latest report of every (job, node): last good figures, when last seen, failing since when."""

    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], NodeReport] = {}

    def record(self, key: tuple[str, str], progress: WorkerProgress | None, now: datetime.datetime) -> NodeReport:
        old = self._reports.get(key, NodeReport())
        if progress is not None:
            new = NodeReport(progress=progress, last_seen=now, failing_since=None)
        else:
            new = NodeReport(progress=old.progress, last_seen=old.last_seen, failing_since=old.failing_since or now)
        self._reports[key] = new
        return new

    def forget(self, job_key: str, keep_nodes: Iterable[str] = ()) -> None:
        """Drop what is remembered about a job's nodes, except `keep_nodes`."""
        keep = set(keep_nodes)
        for key in [k for k in self._reports if k[0] == job_key and k[1] not in keep]:
            del self._reports[key]


async def scrape_pods(
    session: aiohttp.ClientSession,
    pods: Iterable[Mapping[str, Any]],
    memory: ScrapeMemory,
    job_key: str,
    now: datetime.datetime,
    timeout: float,
    concurrency: int,
) -> dict[str, NodeReport]:
    """Scrape every running worker pod of a job at once (bounded concurrency); reports by node."""
    limit = asyncio.Semaphore(concurrency)
    targets = {}
    for pod in pods:
        node, url = pod_node(pod), metrics_url(pod)
        if node is not None and url is not None and pod.get("status", {}).get("phase") == "Running":
            targets[node] = url

    async def one(node: str, url: str) -> tuple[str, WorkerProgress | None]:
        async with limit:
            try:
                return node, await scrape_worker(session, url, timeout)
            except ScrapeError:
                return node, None

    results = await asyncio.gather(*(one(node, url) for node, url in targets.items()))
    memory.forget(job_key, keep_nodes=targets)
    return {node: memory.record((job_key, node), progress, now) for node, progress in results}
