"""Reading a worker's progress over real HTTP on loopback: its compact /progress (from a real aiohttp
server playing the worker), else its /metrics (a real prometheus_client server)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from edge_inference_api import telemetry
from edge_inference_operator.scrape import (
    ScrapeError,
    ScrapeMemory,
    ScrapePolicy,
    open_session,
    parse_progress,
    parse_worker_metrics,
    scrape_pods,
    scrape_worker,
    worker_url,
)
from support import waiting
from support.net import free_port

T0 = datetime.datetime(2026, 11, 26, 6, 0, tzinfo=datetime.UTC)
REPORT = telemetry.ProgressReport(
    files_done=4, frames_analysed=1234, events_uploaded=7, events_waiting=3, heartbeat=1_790_000_000.5
)


def running_pod(node: str, port: int, ip: str = "127.0.0.1") -> dict:
    return {
        "metadata": {"name": f"w-{node}"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "worker", "ports": [{"name": "metrics", "containerPort": port}]}],
        },
        "status": {"phase": "Running", "podIP": ip},
    }


def later(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


class ProgressServer:
    """A worker's /progress on a real aiohttp server: counts requests, connections and requests in flight.

    `body` is what it answers; `silent` makes it hold requests unanswered (a worker that hangs);
    `hold_until_in_flight` holds each request until that many are in flight (or none are left to come).
    """

    def __init__(self) -> None:
        self.body = REPORT.model_dump_json(by_alias=True).encode()
        self.silent = False
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.connections: set[int] = set()  # client ports seen
        self.hold_until_in_flight = 0
        self.expected = 0
        self._changed = asyncio.Condition()
        self.release = asyncio.Event()  # answers the requests a silent server holds
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.connections.add(peer[1] if peer else -1)
        self.requests += 1
        async with self._changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._changed.notify_all()
            await asyncio.wait_for(self._changed.wait_for(self._may_answer), timeout=10)
            self.in_flight -= 1
        if self.silent:
            await self.release.wait()  # holds the request: the client's timeout ends it, or release
        return web.Response(body=self.body, content_type="application/json")

    def _may_answer(self) -> bool:
        return self.in_flight >= self.hold_until_in_flight or self.requests >= self.expected


@pytest.fixture
async def progress_server() -> AsyncIterator[ProgressServer]:
    server = ProgressServer()
    app = web.Application()
    app.router.add_get(telemetry.PROGRESS_PATH, server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    server.port = free_port()
    for address in ("127.0.0.1", "127.0.0.2"):  # a second address: a worker pod that moved
        await web.TCPSite(runner, address, server.port).start()
    yield server
    await runner.cleanup()


async def test_progress_is_read_from_the_compact_endpoint(progress_server: ProgressServer) -> None:
    async with aiohttp.ClientSession() as session:
        progress = await scrape_worker(session, f"http://127.0.0.1:{progress_server.port}", ScrapePolicy())
    assert (progress.files_done, progress.frames_analysed, progress.events_uploaded, progress.events_waiting) == (
        4,
        1234,
        7,
        3,
    )
    assert progress.heartbeat == 1_790_000_000.5 and not progress.batch_complete


async def test_a_worker_without_progress_is_read_from_its_metrics(worker_metrics) -> None:
    """An older worker (here prometheus_client's own server) answers Prometheus text: its content type says so."""
    worker = worker_metrics()
    worker.files.labels(outcome="done").inc(4)
    worker.files.labels(outcome="corrupt").inc(1)  # not done: not counted
    worker.frames.inc(1234)
    worker.uploaded.inc(7)
    worker.outbox.set(3)
    worker.oldest.set(42.5)
    worker.heartbeat.set(1_790_000_000)
    async with aiohttp.ClientSession() as session:
        progress = await scrape_worker(session, f"http://127.0.0.1:{worker.port}", ScrapePolicy())
    assert (progress.files_done, progress.frames_analysed, progress.events_uploaded, progress.events_waiting) == (
        4,
        1234,
        7,
        3,
    )
    assert progress.heartbeat == 1_790_000_000 and progress.outbox_oldest_age == 42.5
    assert not progress.outbox_full and not progress.batch_complete


async def test_a_404_at_progress_falls_back_to_metrics() -> None:
    app = web.Application()
    exposition = f"# TYPE {telemetry.FRAMES_ANALYSED}_total counter\n{telemetry.FRAMES_ANALYSED}_total 99\n"

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=exposition)

    app.router.add_get(telemetry.METRICS_PATH, metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            progress = await scrape_worker(session, f"http://127.0.0.1:{port}", ScrapePolicy())
    finally:
        await runner.cleanup()
    assert progress.frames_analysed == 99


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
    ("body", "problem"),
    [
        (b"not json", "progress: Invalid JSON"),
        (b'{"framesAnalysed": -1}', "progress.framesAnalysed: Input should be greater than or equal to 0"),
        (b'{"heartbeat": "soon"}', "progress.heartbeat: Input should be a valid number"),
        (b"[1, 2]", "progress: Input should be an object"),
    ],
)
def test_unusable_progress_is_a_scrape_error_that_says_why(body: bytes, problem: str) -> None:
    with pytest.raises(ScrapeError, match=problem):
        parse_progress(body)


def test_unknown_progress_fields_are_ignored() -> None:
    """A newer worker may report more; an older operator reads what it knows."""
    assert parse_progress(b'{"framesAnalysed": 5, "gpuTemperature": 71}').frames_analysed == 5


@pytest.mark.parametrize(
    ("pod", "url"),
    [
        (running_pod("a", 9108, "10.1.2.3"), "http://10.1.2.3:9108"),
        (running_pod("a", 19108, "fd00::7"), "http://[fd00::7]:19108"),
        ({"spec": {"nodeName": "a"}, "status": {"phase": "Pending"}}, None),
    ],
)
def test_worker_url_uses_pod_ip_and_the_declared_metrics_port(pod: dict, url: str | None) -> None:
    assert worker_url(pod) == url


@pytest.mark.parametrize(("keep_alive", "connections"), [(True, 1), (False, 3)])
async def test_kept_alive_connections_are_reused(
    progress_server: ProgressServer, keep_alive: bool, connections: int
) -> None:
    policy = ScrapePolicy(keep_alive=keep_alive)
    pods = [running_pod("a", progress_server.port)]
    memory = ScrapeMemory()
    async with open_session(policy) as session:
        for second in range(3):
            scraped = await scrape_pods(session, pods, memory, "ns/job", later(second), policy)
            assert scraped.reports["a"].last_seen == later(second) and scraped.errors == {}
    assert progress_server.requests == 3
    assert len(progress_server.connections) == connections


async def test_scrapes_in_flight_are_bounded(progress_server: ProgressServer) -> None:
    progress_server.hold_until_in_flight = 3  # each request waits until 3 are in flight: they overlap for sure
    progress_server.expected = 20
    policy, memory = ScrapePolicy(concurrency=3), ScrapeMemory()
    pods = [running_pod(f"n{i}", progress_server.port) for i in range(10)]
    async with open_session(policy) as session:  # the bound holds across jobs: two jobs scraped at once
        scraped = await asyncio.gather(
            scrape_pods(session, pods, memory, "ns/one", T0, policy),
            scrape_pods(session, pods, memory, "ns/two", T0, policy),
        )
    assert [s.asked for s in scraped] == [10, 10] and [s.errors for s in scraped] == [{}, {}]
    assert progress_server.most_in_flight == 3


async def test_failures_are_reported_not_raised_and_the_last_good_figures_kept(
    progress_server: ProgressServer,
) -> None:
    """The status turns a node Stale once `now - failing_since` passes the grace: failing_since is the
    first failed scrape; the last good figures stay."""
    pods = [running_pod("good", progress_server.port), running_pod("dead", free_port())]
    memory = ScrapeMemory()
    async with aiohttp.ClientSession() as session:
        first = await scrape_pods(session, pods, memory, "ns/job", T0, ScrapePolicy())
        progress_server.body = b"not json"
        second = await scrape_pods(session, pods[:1], memory, "ns/job", later(30), ScrapePolicy())
    assert first.reports["good"].progress.frames_analysed == 1234 and first.reports["good"].failing_since is None
    assert first.reports["dead"].progress is None and first.reports["dead"].failing_since == T0
    assert list(first.errors) == ["dead"] and "Cannot connect" in first.errors["dead"]
    assert "unusable progress: progress: Invalid JSON" in second.errors["good"]
    assert second.reports["good"].failing_since == later(30) and second.reports["good"].last_seen == T0
    assert second.reports["good"].progress.frames_analysed == 1234
    assert "dead" not in second.reports  # its pod is gone: forgotten


async def test_a_silent_worker_is_retried_without_holding_up_the_reconcile(
    progress_server: ProgressServer, worker_metrics
) -> None:
    """With one scrape in flight allowed, the hung worker's retry holds it: the healthy worker is still asked."""
    healthy = worker_metrics()
    memory, key = ScrapeMemory(), ("ns/job", "hung")
    pods = [running_pod("hung", progress_server.port), running_pod("healthy", healthy.port)]
    progress_server.silent = True
    async with aiohttp.ClientSession() as session:
        first = await scrape_pods(session, pods, memory, "ns/job", T0, ScrapePolicy(timeout=0.3, concurrency=1))
        patient = ScrapePolicy(timeout=60, concurrency=1)  # were the retry awaited, the call would outlast 10 s
        second = await asyncio.wait_for(scrape_pods(session, pods, memory, "ns/job", later(10), patient), 10)
        await waiting.wait_for(lambda: progress_server.requests == 2, 10, "the retry reaching the worker")
        progress_server.silent = False
        progress_server.release.set()
        await waiting.wait_for(lambda: not memory.failing(key), 10, "the retry's answer")
    assert "TimeoutError" in first.errors["hung"] and first.reports["hung"].failing_since == T0
    assert second.asked == 2 and second.errors == {} and second.reports["hung"].failing_since == T0
    assert second.reports["healthy"].last_seen == later(10)
    assert memory.report(key).last_seen == later(10)  # the retry's answer, recorded at its reconcile's time


async def test_a_node_is_asked_again_only_when_due_or_when_its_pod_moved(progress_server: ProgressServer) -> None:
    policy = ScrapePolicy(interval=30)
    memory = ScrapeMemory()
    pods = [running_pod(f"n{i}", progress_server.port) for i in range(10)]
    async with aiohttp.ClientSession() as session:
        asked = [(await scrape_pods(session, pods, memory, "ns/job", later(s), policy)).asked for s in (0, 10, 22)]
        moved = [running_pod("n0", progress_server.port, ip="127.0.0.2"), *pods[1:]]
        after_move = await scrape_pods(session, moved, memory, "ns/job", later(22), policy)
        everyone = await scrape_pods(session, moved, memory, "ns/job", later(38), policy)
    assert asked == [10, 0, 0]  # not before 0.75 of the interval
    assert after_move.asked == 1 and after_move.reports["n0"].last_seen == later(22)
    assert after_move.reports["n5"].last_seen == T0  # the others' remembered reports
    assert everyone.asked == 9  # every node but the moved one within 1.25 of the interval
    assert progress_server.requests == 10 + 1 + 9


async def test_a_connection_closed_unanswered_is_asked_once_more() -> None:
    """A worker that closes a connection without answering (a kept-alive one it just closed as idle): aiohttp
    asks again on a new one, and the scrape relies on it."""
    answer = REPORT.model_dump_json(by_alias=True).encode()
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections > 1:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
            writer.write(head.encode() + answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, open_session(ScrapePolicy()) as session:
        progress = await scrape_worker(session, f"http://127.0.0.1:{port}", ScrapePolicy())
    assert progress.frames_analysed == 1234 and connections == 2
