"""What the operator asks of the API server, on the real control plane: its request counter agrees
with the API server's audit log, reconciles read children from its watches (LISTs happen at start-up
only, once per resource however many jobs there are), and a status is written only when it says
something new."""

from __future__ import annotations

from edge_inference_api import conditions
from edge_inference_operator.settings import OperatorSettings
from prometheus_client.parser import text_string_to_metric_families

from .conftest import OPERATOR_USER
from .test_operator import serve_worker_metrics

# The children, workers and nodes the operator watches (kopf only watches InferenceJobs).
WATCHED = ("nodes", "pods", "daemonsets", "jobs", "namespaces")


def counted(operator, verb: str, resource: str) -> float:
    """The operator's exported request counter for (verb, resource), as a scraper reads it."""
    for family in text_string_to_metric_families(operator.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == "edge_inference_operator_api_requests_total" and sample.labels == {
                "verb": verb,
                "resource": resource,
            }:
                return sample.value
    return 0.0


def audited(cluster, verb: str, resource: str, since: int) -> int:
    """The operator's requests the API server logged for (verb, resource) after audit event `since`."""
    plural, _, subresource = resource.partition("/")
    requests = {
        e["auditID"]
        for e in cluster.api.audit_events(OPERATOR_USER)[since:]
        if e["verb"] == verb
        and e.get("objectRef", {}).get("resource") == plural
        and e.get("objectRef", {}).get("subresource", "") == subresource
    }
    return len(requests)


async def test_the_request_counter_agrees_with_the_audit_log(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    since = len(cluster.api.audit_events(OPERATOR_USER))
    operator = await start_operator()
    await cluster.wait(lambda: cluster.condition(conditions.READY) is not None, what="a status")
    await cluster.wait(lambda: operator.reconciles() >= 3, what="a few reconciles")
    await operator.stop()
    # kopf's own requests too: its LIST of the InferenceJobs and its annotation patches of them.
    for verb, resource in (("create", "daemonsets"), ("list", "pods"), ("list", "nodes"),
                           ("patch", "inferencejobs/status"), ("create", "events"),
                           ("list", "inferencejobs"), ("patch", "inferencejobs")):  # fmt: skip
        assert counted(operator, verb, resource) == audited(cluster, verb, resource, since) > 0, (verb, resource)


async def test_reconciles_read_children_from_the_watches_not_lists(cluster, start_operator, make_body) -> None:
    cluster.add_node("edge-1")
    for name in ("lobby", "garage", "gate"):
        cluster.apply(make_body(name))
    operator = await start_operator()
    await cluster.wait(lambda: len(cluster.daemonsets()) == 3, what="every job's DaemonSet")
    seen = operator.reconciles()
    await cluster.wait(lambda: operator.reconciles() >= seen + 9, what="three more reconciles of each job")
    # One LIST (of one page) per watched resource at start-up, whatever the number of jobs; none since.
    for resource in WATCHED:
        assert counted(operator, "list", resource) == 1, resource
        assert counted(operator, "watch", resource) >= 1, resource
    assert counted(operator, "list", "inferencejobs") == 2  # the cache's, and kopf's own for its watch


async def test_a_status_is_written_only_when_it_says_something_new(
    cluster, start_operator, make_body, worker_metrics
) -> None:
    cluster.add_node("edge-1")
    cluster.apply(make_body())
    settings = OperatorSettings(
        allowed_host_paths=("/srv/video",), metrics_port=0, reconcile_seconds=0.3, stale_after_seconds=30
    )
    operator = await start_operator(settings)
    worker = await serve_worker_metrics(cluster, worker_metrics, "edge-1")
    beat = 1_800_000_000
    worker.heartbeat.set(beat)
    await cluster.wait(
        lambda: cluster.condition(conditions.READY) == ("True", conditions.ALL_NODES_READY), what="AllNodesReady"
    )
    await cluster.wait(lambda: cluster.status()["nodeProgress"][0]["lastHeartbeat"], what="a heartbeat")
    writes = counted(operator, "patch", "inferencejobs/status")
    version = cluster.job()["metadata"]["resourceVersion"]

    # The worker's heartbeat and counters move at every scrape: shown late (up to stale_after), not
    # written each time.
    for step in range(1, 6):
        worker.heartbeat.set(beat + step)
        worker.frames.inc(7)
        seen = operator.reconciles() + 2
        await cluster.wait(lambda seen=seen: operator.reconciles() >= seen, what="reconciles that scrape the new beat")
    assert counted(operator, "patch", "inferencejobs/status") == writes
    assert cluster.job()["metadata"]["resourceVersion"] == version

    # Once the heartbeat has moved on by stale_after, it is written, with the counters of the moment.
    worker.heartbeat.set(beat + 30)
    await cluster.wait(
        lambda: cluster.status()["nodeProgress"][0]["lastHeartbeat"] == "2027-01-15T08:00:30Z", what="the new heartbeat"
    )
    assert cluster.status()["totals"]["framesAnalysed"] == 35
    assert counted(operator, "patch", "inferencejobs/status") == writes + 1
