"""Prometheus metrics of the operator itself, served on EDGE_INFERENCE_METRICS_PORT (/metrics)."""

from __future__ import annotations

from aiohttp import web
from edge_inference_api.models import Phase
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "edge_inference_operator_"


class OperatorMetrics:
    """The operator's metrics in their own registry (so several operators can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            PREFIX + "reconciles",
            "Reconciles of InferenceJobs by result (ok, invalid, terminating: its namespace is going, error).",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            PREFIX + "errors",
            "Failed reconciles by kind (api: the Kubernetes API answered an error; unexpected).",
            ["kind"],
            registry=self.registry,
        )
        self.scrape_failures = Counter(
            PREFIX + "scrape_failures",
            "Worker /metrics scrapes that failed (the node turns Stale after a grace period).",
            registry=self.registry,
        )
        self.duration = Histogram(
            PREFIX + "reconcile_duration_seconds",
            "Time of one reconcile of one InferenceJob.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.jobs = Gauge(PREFIX + "jobs", "InferenceJobs by phase.", ["phase"], registry=self.registry)
        self.children_changed = Counter(
            PREFIX + "children_changed", "Children created, updated or deleted.", ["action"], registry=self.registry
        )
        self.api_requests = Counter(
            PREFIX + "api_requests",
            "Kubernetes API requests the operator sent by verb (get, list, watch, create, patch, delete) and "
            "resource (plural[/subresource]), kopf's own (the InferenceJob watch, its annotation patches) included.",
            ["verb", "resource"],
            registry=self.registry,
        )
        self._phases: dict[tuple[str, str], str] = {}

    def api_request(self, verb: str, resource: str) -> None:
        """Count one Kubernetes API request."""
        self.api_requests.labels(verb=verb, resource=resource).inc()

    def job_phase(self, key: tuple[str, str], phase: str | None) -> None:
        """Record a job's phase (None: the job is gone) and refresh the jobs-by-phase gauge."""
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        counts = {p.value: 0 for p in Phase}
        for value in self._phases.values():
            counts[value] = counts.get(value, 0) + 1
        for name, count in counts.items():
            self.jobs.labels(phase=name).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(metrics: OperatorMetrics, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Serve /metrics in the operator's event loop; the caller cleans the returned runner up."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
