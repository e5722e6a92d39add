"""Reading a worker's /metrics over real HTTP from a real prometheus_client server."""

from __future__ import annotations

import datetime

import aiohttp
import pytest
from edge_inference_operator.scrape import (
    ScrapeError,
    ScrapeMemory,
    metrics_url,
    parse_worker_metrics,
    scrape_pods,
    scrape_worker,
)
from support.net import free_port

T0 = datetime.datetime(2026, 11, 26, 6, 0, tzinfo=datetime.UTC)


def running_pod(node: str, port: int, ip: str = "127.0.0.1") -> dict:
    return {
        "metadata": {"name": f"w-{node}"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "worker", "ports": [{"name": "metrics", "containerPort": port}]}],
        },
        "status": {"phase": "Running", "podIP": ip},
    }


async def test_progress_is_read_from_a_real_worker_endpoint(worker_metrics) -> None:
    worker = worker_metrics()
    worker.files.labels(outcome="done").inc(4)
    worker.files.labels(outcome="corrupt").inc(1)  # not done: not counted
    worker.frames.inc(1234)
    worker.uploaded.inc(7)
    worker.outbox.set(3)
    worker.oldest.set(42.5)
    worker.heartbeat.set(1_790_000_000)
    async with aiohttp.ClientSession() as session:
        progress = await scrape_worker(session, worker.url, timeout=2)
    assert (progress.files_done, progress.frames_analysed, progress.events_uploaded, progress.events_waiting) == (
        4,
        1234,
        7,
        3,
    )
    assert progress.heartbeat == 1_790_000_000 and progress.outbox_oldest_age == 42.5
    assert not progress.outbox_full and not progress.batch_complete


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("garbage{{{ 1\n", "unparseable"),
        ("# HELP other_total x\n# TYPE other_total counter\nother_total 3\n", "does not expose"),
    ],
)
def test_unusable_metrics_are_a_scrape_error(text: str, problem: str) -> None:
    with pytest.raises(ScrapeError, match=problem):
        parse_worker_metrics(text)


@pytest.mark.parametrize(
    ("pod", "url"),
    [
        (running_pod("a", 9108, "10.1.2.3"), "http://10.1.2.3:9108/metrics"),
        (running_pod("a", 19108, "fd00::7"), "http://[fd00::7]:19108/metrics"),
        ({"spec": {"nodeName": "a"}, "status": {"phase": "Pending"}}, None),
    ],
)
def test_metrics_url_uses_pod_ip_and_the_declared_metrics_port(pod: dict, url: str | None) -> None:
    assert metrics_url(pod) == url


async def test_failed_scrapes_are_remembered_not_raised(worker_metrics) -> None:
    healthy = worker_metrics()
    healthy.frames.inc(10)
    dead_port = free_port()  # nothing listens here
    memory = ScrapeMemory()
    pods = [running_pod("good", healthy.port), running_pod("dead", dead_port)]
    async with aiohttp.ClientSession() as session:
        first = await scrape_pods(session, pods, memory, "ns/job", T0, timeout=1, concurrency=4)
        later = T0 + datetime.timedelta(seconds=30)
        second = await scrape_pods(session, pods, memory, "ns/job", later, timeout=1, concurrency=4)
        healthy.stop()
        third = await scrape_pods(session, pods, memory, "ns/job", later + datetime.timedelta(seconds=5), 1, 4)
    assert first["good"].progress.frames_analysed == 10 and first["good"].failing_since is None
    assert first["dead"].progress is None and first["dead"].failing_since == T0
    assert second["dead"].failing_since == T0  # the failing streak keeps its start
    assert second["good"].last_seen == later
    assert third["good"].progress.frames_analysed == 10  # last good figures kept
    assert third["good"].failing_since == later + datetime.timedelta(seconds=5)
