"""One local process that answers for thousands of simulated worker pods, told apart by address.

kwok pods' IPs lead nowhere. The fleet benchmarks give them addresses inside 127.0.0.0/8 (all of
which reach loopback on Linux) and start this one process, listening on 0.0.0.0 at the worker
metrics port: a connection's local (destination) address says which pod was asked. Each pod
answers what a real worker serves on that port:

- GET /metrics: the worker's full Prometheus text (the collectors of the real worker's registry,
  with this pod's figures);
- GET /progress: the compact `edge_inference_api.telemetry.ProgressReport` JSON.

Figures vary by pod and move with time: frames grow at a per-pod rate, the heartbeat moves, a
fraction of pods have finished their batch (frames stop, batchComplete is true), and a fraction
stops answering after a while (to exercise Stale): "hang" reads the request and never replies
(a worker that hangs, or a node whose packets vanish: the client waits for its timeout), "reset"
closes the connection at once (a node that refuses).

The server is a single asyncio loop with one small protocol object per connection (HTTP/1.1
keep-alive, as the worker's server speaks it); it is not one server per pod. Its counters (requests
by path, connections, bytes sent, its own CPU seconds) are served at GET /simulated/counters on any
address and read by `SimulatedWorkers.counters()`.

Run alone: python bench/support/simulated_workers.py --port 9108 --silent-fraction 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_inference_api import telemetry
from edge_inference_api.telemetry import METRICS_PATH, PROGRESS_PATH, ProgressReport
from edge_inference_worker.metrics import WorkerMetrics
from edge_inference_worker.outbox import OutboxMetrics
from prometheus_client import CollectorRegistry, generate_latest

REPO = Path(__file__).resolve().parents[2]
COUNTERS_PATH = "/simulated/counters"
SILENT_MODES = ("hang", "reset")
_FIRST_POD = int(ipaddress.IPv4Address("127.1.0.1"))  # 127.0.0.1 stays the machine's own loopback


def pod_ip(index: int) -> str:
    """The loopback address of simulated pod `index` (0, 1, ...): 127.1.0.1 onwards, millions of them."""
    return str(ipaddress.IPv4Address(_FIRST_POD + index))


def _pod_hash(ip: str) -> int:
    """A well-spread, stable number for an address (the same pod gets the same figures every run)."""
    return (int(ipaddress.ip_address(ip)) * 2654435761) % 2**32


def _fraction_pick(ip: str, salt: int, fraction: float) -> bool:
    """Whether a pod is among `fraction` of pods, chosen by address (different salts, independent picks)."""
    return ((_pod_hash(ip) ^ salt) * 40503 % 2**32) / 2**32 < fraction


class Fleet:
    """The figures of every simulated pod at a moment, from its address and the time since start."""

    def __init__(self, complete_fraction: float, silent_fraction: float, silent_after: float) -> None:
        self.started = time.monotonic()
        self.complete_fraction = complete_fraction
        self.silent_fraction = silent_fraction
        self.silent_after = silent_after
        self._metrics_template = _metrics_template()

    def silent(self, ip: str) -> bool:
        elapsed = time.monotonic() - self.started
        return elapsed >= self.silent_after and _fraction_pick(ip, 0x5A5A, self.silent_fraction)

    def progress(self, ip: str) -> dict[str, Any]:
        """This pod's ProgressReport fields now (snake_case)."""
        h = _pod_hash(ip)
        complete = _fraction_pick(ip, 0xC0C0, self.complete_fraction)
        elapsed = min(time.monotonic() - self.started, 60.0) if complete else time.monotonic() - self.started
        frames = h % 100_000 + int(elapsed * (5 + h % 20))
        return {
            "files_done": frames // 3000,
            "frames_analysed": frames,
            "events_uploaded": frames // 500,
            "events_waiting": h % 4,
            "heartbeat": round(time.time() - (h % 3), 3),
            "batch_complete": complete,
            "outbox_full": False,
            "outbox_oldest_age": float(h % 4 * 7),
        }

    def progress_json(self, ip: str) -> bytes:
        return ProgressReport(**self.progress(ip)).model_dump_json(by_alias=True).encode()

    def metrics_text(self, ip: str) -> bytes:
        figures = self.progress(ip)
        figures["batch_complete"] = float(figures["batch_complete"])
        figures["outbox_full"] = float(figures["outbox_full"])
        return self._metrics_template.format(**figures).encode()


def _metrics_template() -> str:
    """The real worker's exposition (its own collectors, with realistic labels) with fields for the figures.

    Built once from the worker's classes, so its size and shape follow the worker's; each request
    only formats this pod's numbers into it.
    """
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    OutboxMetrics(registry, metrics.errors)  # registers the outbox's collectors beside the worker's
    for outcome in ("done", "failed", "corrupt"):
        metrics.files.labels(outcome=outcome).inc(0)
    for cls in ("person", "car", "truck"):
        metrics.events.labels(**{"class": cls}).inc(3)
    for stage in ("decode", "motion", "detect", "group", "snapshot", "outbox"):
        metrics.stage_seconds.labels(stage=stage).observe(0.004)
    metrics.inference_seconds.observe(0.02)
    metrics.decode_seconds.observe(0.003)
    fields = {
        f'{telemetry.FILES}_total{{outcome="done"}}': "files_done",
        f"{telemetry.FRAMES_ANALYSED}_total": "frames_analysed",
        f"{telemetry.EVENTS_UPLOADED}_total": "events_uploaded",
        telemetry.OUTBOX_DEPTH: "events_waiting",
        telemetry.HEARTBEAT: "heartbeat",
        telemetry.BATCH_COMPLETE: "batch_complete",
        telemetry.OUTBOX_FULL: "outbox_full",
        telemetry.OUTBOX_OLDEST_AGE: "outbox_oldest_age",
    }
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        name = line.rsplit(" ", 1)[0]
        escaped = line.replace("{", "{{").replace("}", "}}")
        lines.append(f"{escaped.rsplit(' ', 1)[0]} {{{fields[name]}}}" if name in fields else escaped)
    return "\n".join(lines) + "\n"


class Stats:
    """What the server has done (served at COUNTERS_PATH)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # by path; "silent" for requests left unanswered
        self.connections = 0
        self.open_connections = 0
        self.bytes_sent = 0
        self.pods_seen: set[str] = set()

    def as_json(self) -> bytes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return json.dumps(
            {
                "requests": dict(self.requests),
                "connections": self.connections,
                "open_connections": self.open_connections,
                "bytes_sent": self.bytes_sent,
                "pods_seen": len(self.pods_seen),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }
        ).encode()


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 GETs, answered in order, kept alive unless the client says close."""

    def __init__(self, fleet: Fleet, stats: Stats, silent_mode: str) -> None:
        self.fleet, self.stats, self.silent_mode = fleet, stats, silent_mode
        self.buffer = b""
        self.ip = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ip = transport.get_extra_info("sockname")[0]
        self.stats.connections += 1
        self.stats.open_connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self._answer(head.decode("latin-1").split("\r\n"))

    def _answer(self, lines: list[str]) -> None:
        assert self.transport is not None
        method, path, version = (lines[0].split(" ") + ["", "", ""])[:3]
        headers = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(":") for line in lines[1:])}
        path = path.split("?", 1)[0]
        if path != COUNTERS_PATH and self.fleet.silent(self.ip):
            self.stats.requests["silent"] += 1
            if self.silent_mode == "reset":
                self.transport.abort()
                self.transport = None
            return
        self.stats.pods_seen.add(self.ip)
        status, body, content_type = self._route(method, path)
        self.stats.requests[path if status == 200 else str(status)] += 1
        connection = headers.get("connection")
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.stats.bytes_sent += len(head) + len(body)
        if close:
            self.transport.close()
            self.transport = None

    def _route(self, method: str, path: str) -> tuple[int, bytes, str]:
        if method != "GET":
            return 405, b"GET only\n", "text/plain"
        if path == METRICS_PATH:
            return 200, self.fleet.metrics_text(self.ip), "text/plain; version=0.0.4; charset=utf-8"
        if path == PROGRESS_PATH:
            return 200, self.fleet.progress_json(self.ip), "application/json"
        if path == COUNTERS_PATH:
            return 200, self.stats.as_json(), "application/json"
        return 404, b"not found\n", "text/plain"

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.stats.open_connections -= 1


async def _serve(port: int, fleet: Fleet, silent_mode: str) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(fleet, stats, silent_mode), "0.0.0.0", port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def _raise_open_files() -> None:
    """Thousands of kept-alive connections need as many descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on, all addresses (0: any free)")
    parser.add_argument("--complete-fraction", type=float, default=0.1, help="pods whose batch is complete")
    parser.add_argument("--silent-fraction", type=float, default=0.0, help="pods that stop answering")
    parser.add_argument("--silent-after", type=float, default=0.0, help="seconds after start that they stop")
    parser.add_argument("--silent-mode", choices=SILENT_MODES, default="hang")
    args = parser.parse_args(argv)
    _raise_open_files()
    fleet = Fleet(args.complete_fraction, args.silent_fraction, args.silent_after)
    asyncio.run(_serve(args.port, fleet, args.silent_mode))


class SimulatedWorkers:
    """Start the simulated fleet's server as a subprocess for a `with` block; stop it after.

        with SimulatedWorkers(port=WORKER_METRICS_PORT, silent_fraction=0.05, silent_after=30) as fleet:
            ...  # pods with podIP 127.x.y.z answer at http://127.x.y.z:<port>/metrics and /progress
            print(fleet.counters())  # {"requests": {...}, "connections": ..., "bytes_sent": ..., ...}

    `port`: the worker metrics port the pods declare (0: any free port, read back as `.port`).
    `complete_fraction`: pods whose batch has finished. `silent_fraction`: pods that stop answering
    `silent_after` seconds after start, as `silent_mode` says ("hang": never reply; "reset": close).
    Which pods are complete or silent depends only on their address (`is_silent` tells the bench).
    """

    def __init__(
        self,
        port: int = 0,
        complete_fraction: float = 0.1,
        silent_fraction: float = 0.0,
        silent_after: float = 0.0,
        silent_mode: str = "hang",
        start_timeout: float = 30.0,
    ) -> None:
        if silent_mode not in SILENT_MODES:
            raise ValueError(f"silent_mode must be one of {SILENT_MODES}, not {silent_mode!r}")
        self.port = port
        self.silent_fraction = silent_fraction
        self._args = [
            f"--port={port}",
            f"--complete-fraction={complete_fraction}",
            f"--silent-fraction={silent_fraction}",
            f"--silent-after={silent_after}",
            f"--silent-mode={silent_mode}",
        ]
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimulatedWorkers:
        path = ":".join(str(REPO / part) for part in ("api", "inference-image"))
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, __file__, *self._args], stdout=subprocess.PIPE, text=True, env=env
        )
        self.port = self._await_ready(self._process)
        return self

    def _await_ready(self, process: subprocess.Popen[str]) -> int:
        """The port from the child's "ready <port>" line; raises if it exits or is slower than the timeout."""
        assert process.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        reader = _line_reader(process)
        while time.monotonic() < deadline:
            line = reader(deadline - time.monotonic())
            if line is None:
                break
            if line.startswith("ready "):
                return int(line.split()[1])
        self._stop()
        raise RuntimeError(f"the simulated workers did not start within {self._start_timeout} s")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def is_silent(self, ip: str) -> bool:
        """Whether the pod at `ip` is one of those that stop answering."""
        return _fraction_pick(ip, 0x5A5A, self.silent_fraction)

    def counters(self) -> dict[str, Any]:
        """The server's counters now: requests by path ("silent": unanswered), connections (accepted),
        open_connections (now), bytes_sent, pods_seen, cpu_seconds (the server's own)."""
        url = f"http://127.0.0.1:{self.port}{COUNTERS_PATH}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.load(response))


def _line_reader(process: subprocess.Popen[str]) -> Callable[[float], str | None]:
    """Read the child's stdout lines with a timeout (None: it closed or timed out)."""
    selector = selectors.DefaultSelector()
    assert process.stdout is not None
    selector.register(process.stdout, selectors.EVENT_READ)
    stdout = process.stdout

    def read(timeout: float) -> str | None:
        if not selector.select(max(timeout, 0)):
            return None
        line = stdout.readline()
        return line or None

    return read


if __name__ == "__main__":
    main()
