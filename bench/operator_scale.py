"""The operator at fleet scale, on the real control plane (tests/support/controlplane.py) with kwok nodes.

The fleet as our users have it: nodes in sites of 5 (label edgeinference.io/site), mixed
accelerators (60% cpu, 30% nvidia, 10% hailo) and some taints (1 node in 20 is cordoned for
maintenance with a NoSchedule taint no job tolerates). The operator runs as its own process (the
real console script), so its RSS, CPU and API requests are its own:

- continuous: one Continuous job per site (its 5 nodes, cpu and nvidia) plus 2 fleet-wide
  (every kind), applied at once. Printed: apply -> first child and -> every child created (the
  operator's own creates, from its children counter); apply -> every job with a status; then, over
  a steady window, reconcile p50/p99 (the operator's histogram), RSS, CPU and API requests/s by
  verb. Then the operator is restarted over the whole fleet: start-up to its first reconcile.
- batch: one fleet-wide Batch job over every node and 2 over a fifth of the nodes each:
  apply -> every Job created, and the operator's peak RSS.

    python bench/operator_scale.py --nodes 1000 --site-jobs 100            # about 2 minutes
    python bench/operator_scale.py --nodes 5000 --site-jobs 1000 --mode continuous

Every worker pod answers: kwok gives the pods addresses in 127.1.0.0/16, and one local process
(`bench/support/simulated_workers.py`) listens on the worker metrics port of every loopback address
and answers each pod's /progress with figures of its own. The operator scrapes them with its default
Stale grace; the bench prints how many nodes the statuses show ready, and how many Stale.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]  # support/ is in both (a namespace package)

from edge_inference_api.models import (  # noqa: E402
    API_GROUP,
    LABEL_ACCELERATOR,
    LABEL_CAMERA_STORAGE,
    PLURAL,
    WORKER_METRICS_PORT,
)
from edge_inference_operator.names import MANAGED_SELECTOR  # noqa: E402
from support.controlplane import ControlPlane, Sizing, fake_node, running_control_plane  # noqa: E402
from support.jobs import job_body  # noqa: E402
from support.net import free_port  # noqa: E402
from support.simulated_workers import SimulatedWorkers  # noqa: E402

OPERATOR = Path(sys.executable).with_name("edge-inference-operator")
SITE_LABEL = "edgeinference.io/site"
RING_LABEL = "bench.edgeinference.io/ring"  # a fifth of the fleet: what the 2 smaller Batch jobs select
MAINTENANCE = {"key": "bench.edgeinference.io/maintenance", "value": "true", "effect": "NoSchedule"}
SITE_SIZE = 5
METRIC = "edge_inference_operator_"
SAMPLE_SECONDS = 0.5


def accelerator_of(index: int) -> str:
    return "hailo" if index % 10 == 9 else "nvidia" if index % 10 >= 6 else "cpu"


def fleet_node(index: int) -> dict[str, Any]:
    labels = {
        LABEL_CAMERA_STORAGE: "true",
        LABEL_ACCELERATOR: accelerator_of(index),
        SITE_LABEL: f"site-{index // SITE_SIZE:04d}",
        RING_LABEL: str(index // SITE_SIZE % 5),
    }
    taints = [MAINTENANCE] if index % 20 == 19 else None
    # An nvidia worker asks for a GPU: enough for the site job and the 2 fleet-wide ones on one node.
    capacity = {"nvidia.com/gpu": "4"} if labels[LABEL_ACCELERATOR] == "nvidia" else None
    return fake_node(f"edge-{index:05d}", labels, taints, capacity)


def continuous_jobs(nodes: int, site_jobs: int) -> list[dict[str, Any]]:
    sites = [
        job_body(f"site-{s:04d}", accelerators=[{"type": "cpu"}, {"type": "nvidia"}],
                 nodeSelector={SITE_LABEL: f"site-{s:04d}"})
        for s in range(min(site_jobs, nodes // SITE_SIZE))
    ]  # fmt: skip
    every_kind = [{"type": "cpu"}, {"type": "nvidia"}, {"type": "hailo"}]
    fleet = [job_body(f"fleet-{i}", accelerators=every_kind) for i in range(2)]
    return sites + fleet


def batch_jobs() -> list[dict[str, Any]]:
    every_kind = [{"type": "cpu"}, {"type": "nvidia"}, {"type": "hailo"}]
    jobs = [job_body("batch-fleet", mode="Batch", accelerators=every_kind)]
    jobs += [job_body(f"batch-ring-{r}", mode="Batch", accelerators=every_kind, nodeSelector={RING_LABEL: str(r)})
             for r in range(2)]  # fmt: skip
    return jobs


def in_parallel(call: Callable[[Any], Any], items: list[Any], threads: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(call, item) for item in items]:
            future.result()


# ------------------------------------------------------------------------------------------------
# The operator process and what it says about itself.


def image_environment() -> dict[str, str]:
    """The environment the operator image sets (its Dockerfile's ENV, but PATH): the process runs as it would there."""
    from dockerfile_parse import DockerfileParser

    parsed = DockerfileParser(str(REPO / "operator" / "Dockerfile"))
    return {key: value for key, value in parsed.envs.items() if key != "PATH"}


class Operator:
    """The console script as a subprocess (admin kubeconfig, the image's environment), its /metrics, and its
    RSS and CPU from /proc."""

    def __init__(
        self, plane: ControlPlane, log: Path, reconcile_seconds: float, env: dict[str, str] | None = None
    ) -> None:
        self.metrics_port = free_port()
        env = {**os.environ, **(env or {}), **image_environment(), "KUBECONFIG": str(plane.kubeconfig),
               "EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/srv/video",
               "EDGE_INFERENCE_METRICS_PORT": str(self.metrics_port), "EDGE_INFERENCE_LIVENESS_PORT": str(free_port()),
               "EDGE_INFERENCE_RECONCILE_SECONDS": str(reconcile_seconds)}  # fmt: skip
        self.started = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen([str(OPERATOR)], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.rss_samples: list[tuple[float, float]] = []

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the operator's /metrics, by (name, labels); empty while it is not serving."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def quantile(before: dict, after: dict, q: float) -> float:
    """The q-quantile of the reconcile durations observed between two scrapes (linear within a bucket)."""
    name = METRIC + "reconcile_duration_seconds_bucket"
    buckets = sorted(
        (float("inf") if dict(ls)["le"] == "+Inf" else float(dict(ls)["le"]), v - before.get((n, ls), 0.0))
        for (n, ls), v in after.items()
        if n == name
    )
    count = buckets[-1][1] if buckets else 0
    if not count:
        return float("nan")
    rank, lower, below = q * count, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = upper, cumulative
    return lower


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    timeout: float,
    operator: Operator | None = None,
    every: float = SAMPLE_SECONDS,
) -> float:
    """Seconds until `predicate` holds, asked every `every` seconds (sampling the operator's RSS meanwhile);
    fails after `timeout`. A predicate that LISTs thousands of objects is asked rarely: asked twice a second,
    it was a load of its own on the API server the operator shares."""
    started = asked = time.monotonic()
    while not predicate():
        while time.monotonic() - asked < every:
            if operator is not None:
                if operator.process.poll() is not None:
                    raise RuntimeError(f"the operator exited (code {operator.process.returncode}) waiting for {what}")
                operator.rss_samples.append((time.monotonic(), operator.rss_mb()))
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            time.sleep(min(SAMPLE_SECONDS, every))
        asked = time.monotonic()
    return time.monotonic() - started


# ------------------------------------------------------------------------------------------------
# The runs.


class Fleet:
    """The control plane with the fleet's nodes, the CRD, and an admin client."""

    def __init__(self, plane: ControlPlane, nodes: int) -> None:
        import kubernetes

        self.plane = plane
        self.nodes = nodes
        client = plane.api_client()
        client.configuration.connection_pool_maxsize = 16
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        plane.kubectl_ok("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.wait(lambda: plane.get(f"/apis/{API_GROUP}/v1alpha1/{PLURAL}") is not None, "the CRD served")
        started = time.monotonic()
        in_parallel(self.core.create_node, [fleet_node(i) for i in range(nodes)])
        created = time.monotonic() - started
        ready = wait_for(f"{nodes} nodes Ready", lambda: self.ready_nodes() >= nodes, 900)
        print(f"fleet: {nodes} nodes created in {created:.0f} s, Ready {ready:.0f} s later", flush=True)

    def ready_nodes(self) -> int:
        items = self.plane.get(f"/api/v1/nodes?labelSelector={LABEL_CAMERA_STORAGE}")["items"]
        return sum(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                   for n in items)  # fmt: skip

    def apply(self, jobs: list[dict[str, Any]]) -> None:
        def create(job: dict[str, Any]) -> None:
            self.custom.create_namespaced_custom_object(API_GROUP, "v1alpha1", "default", PLURAL, job)

        in_parallel(create, jobs)

    def jobs_with_status(self) -> int:
        items = self.plane.get(f"/apis/{API_GROUP}/v1alpha1/namespaces/default/{PLURAL}")["items"]
        return sum(bool((j.get("status") or {}).get("phase")) for j in items)

    def progress(self) -> dict[str, int]:
        """What the jobs' statuses say of their nodes: desired, ready, listed Stale, frames analysed."""
        items = self.plane.get(f"/apis/{API_GROUP}/v1alpha1/namespaces/default/{PLURAL}")["items"]
        statuses = [j.get("status") or {} for j in items]
        return {
            "desired": sum(s.get("nodes", {}).get("desired", 0) for s in statuses),
            "ready": sum(s.get("nodes", {}).get("ready", 0) for s in statuses),
            "stale_listed": sum(p["state"] == "Stale" for s in statuses for p in s.get("nodeProgress", [])),
            "frames_analysed": sum(s.get("totals", {}).get("framesAnalysed", 0) for s in statuses),
        }

    def pods(self, phase: str | None = None) -> int:
        """The operator's worker pods (in `phase`, when given)."""
        items = self.plane.get(f"/api/v1/pods?labelSelector={quote(MANAGED_SELECTOR)}")["items"]
        return sum(phase is None or p.get("status", {}).get("phase") == phase for p in items)

    def delete_jobs(self) -> None:
        self.plane.kubectl_ok("delete", f"{PLURAL}.{API_GROUP}", "--all", "-n", "default", "--wait=false")
        wait_for("every child gone", lambda: self.pods() == 0, 900, every=15)


def expected_workers(nodes: int, jobs: list[dict[str, Any]]) -> int:
    """The worker pods of Continuous `jobs`: one per untainted node of an accepted kind (and the job's site)."""
    count = 0
    for job in jobs:
        kinds = {a["type"] for a in job["spec"]["accelerators"]}
        site = job["spec"].get("nodeSelector", {}).get(SITE_LABEL)
        for i in range(nodes):
            in_site = site is None or site == f"site-{i // SITE_SIZE:04d}"
            count += in_site and i % 20 != 19 and accelerator_of(i) in kinds
    return count


def expected_children(fleet: Fleet, jobs: list[dict[str, Any]], mode: str) -> int:
    """Continuous: a DaemonSet per accepted kind; Batch: a Job per matching node."""
    if mode == "continuous":
        return sum(len(j["spec"]["accelerators"]) for j in jobs)
    untainted = [i for i in range(fleet.nodes) if i % 20 != 19]
    rings = [i for i in untainted if i // SITE_SIZE % 5 in (0, 1)]
    return len(untainted) + len(rings)


def report_window(operator: Operator, seconds: float) -> dict[str, Any]:
    """Reconcile quantiles, RSS, CPU and API requests/s by verb over a steady window of `seconds`."""
    before, cpu_before, started = operator.scrape(), operator.cpu_seconds(), time.monotonic()
    rss = []
    while time.monotonic() - started < seconds:
        rss.append(operator.rss_mb())
        time.sleep(SAMPLE_SECONDS)
    after, elapsed = operator.scrape(), time.monotonic() - started
    cpu = (operator.cpu_seconds() - cpu_before) / elapsed
    verbs: dict[str, float] = {}
    for (name, labels), value in after.items():
        if name == METRIC + "api_requests_total":
            verb = dict(labels)["verb"]
            verbs[verb] = verbs.get(verb, 0.0) + (value - before.get((name, labels), 0.0)) / elapsed
    reconciles = total(after, METRIC + "reconciles_total") - total(before, METRIC + "reconciles_total")
    return {
        "window_s": round(elapsed, 1),
        "reconciles": int(reconciles),
        "reconcile_p50_s": round(quantile(before, after, 0.5), 3),
        "reconcile_p99_s": round(quantile(before, after, 0.99), 3),
        "rss_steady_mb": round(sum(rss) / len(rss), 1),
        "cpu_steady_core": round(cpu, 3),
        "api_requests_per_s": {verb: round(rate, 2) for verb, rate in sorted(verbs.items())},
    }


def children_created(operator: Operator) -> float:
    return total(operator.scrape(), METRIC + "children_changed_total", action="created")


def jobs_posted(operator: Operator) -> float:
    return total(operator.scrape(), METRIC + "api_requests_total", verb="create", resource="jobs")


def run_continuous(
    fleet: Fleet, workdir: Path, site_jobs: int, steady_seconds: float, workers_running: float
) -> dict[str, Any]:
    jobs = continuous_jobs(fleet.nodes, site_jobs)
    want = expected_children(fleet, jobs, "continuous")
    operator = Operator(fleet.plane, workdir / "operator-continuous.log", reconcile_seconds=10)
    result: dict[str, Any] = {"jobs": len(jobs), "children": want}
    try:
        wait_for("the operator serving metrics", lambda: operator.scrape(), 300, operator)
        applied = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as applying:  # the first child comes while the rest are applied
            creates = applying.submit(fleet.apply, jobs)
            wait_for("the first child", lambda: children_created(operator) >= 1, 600, operator)
            result["first_child_s"] = round(time.monotonic() - applied, 1)
            creates.result()
        result["apply_s"] = round(time.monotonic() - applied, 1)
        wait_for("every child", lambda: children_created(operator) >= want, 900, operator)
        result["all_children_s"] = round(time.monotonic() - applied, 1)
        wait_for("every job with a status", lambda: fleet.jobs_with_status() >= len(jobs), 900, operator, every=2)
        result["all_status_s"] = round(time.monotonic() - applied, 1)
        workers = expected_workers(fleet.nodes, jobs)
        # The DaemonSet controller makes the workers at its own pace (at 5,000 nodes and 2,000 DaemonSets
        # on 2 cores, far slower than the operator: see docs/benchmarks.md); the window waits for
        # `--workers-running` of them.
        wanted = int(workers * workers_running)
        wait_for(f"{wanted} workers Running", lambda: fleet.pods("Running") >= wanted, 3600, operator, every=15)
        result["workers_running_s"] = round(time.monotonic() - applied, 1)
        settled = total(operator.scrape(), METRIC + "reconciles_total") + 2 * len(jobs)
        wait_for("two resyncs since", lambda: total(operator.scrape(), METRIC + "reconciles_total") >= settled, 900)
        result["peak_rss_mb"] = round(operator.peak_rss_mb(), 1)
        result |= report_window(operator, steady_seconds)
        result["workers"] = f"{fleet.pods('Running')}/{workers} running"
        result["progress"] = fleet.progress()
    finally:
        operator.stop()
    result["startup"] = measure_startup(fleet, workdir)
    return result


def measure_startup(fleet: Fleet, workdir: Path) -> dict[str, Any]:
    """Start the operator again over the whole fleet: seconds to its first reconcile, and its RSS then."""
    operator = Operator(fleet.plane, workdir / "operator-restart.log", reconcile_seconds=10)
    try:
        seconds = wait_for(
            "the first reconcile after a restart",
            lambda: total(operator.scrape(), METRIC + "reconciles_total") >= 1,
            600,
            operator,
        )
        return {"first_reconcile_s": round(seconds, 1), "peak_rss_mb": round(operator.peak_rss_mb(), 1)}
    finally:
        operator.stop()


def run_batch(fleet: Fleet, workdir: Path) -> dict[str, Any]:
    jobs = batch_jobs()
    want = expected_children(fleet, jobs, "batch")
    operator = Operator(fleet.plane, workdir / "operator-batch.log", reconcile_seconds=10)
    result: dict[str, Any] = {"jobs": len(jobs), "children": want}
    try:
        wait_for("the operator serving metrics", lambda: operator.scrape(), 300, operator)
        applied = time.monotonic()
        fleet.apply(jobs)
        # The request counter moves with each create sent; the children counter once a job's creates all ended.
        wait_for("the first Job create sent", lambda: jobs_posted(operator) >= 1, 600, operator)
        result["first_create_s"] = round(time.monotonic() - applied, 1)
        wait_for("every Job", lambda: children_created(operator) >= want, 900, operator)
        result["all_children_s"] = round(time.monotonic() - applied, 1)
        result["creates_per_s"] = round(want / (result["all_children_s"] - result["first_create_s"]), 1)
        wait_for("every job with a status", lambda: fleet.jobs_with_status() >= len(jobs), 900, operator, every=2)
        result["all_status_s"] = round(time.monotonic() - applied, 1)
        result |= report_window(operator, 30)
        result["peak_rss_mb"] = round(operator.peak_rss_mb(), 1)
    finally:
        operator.stop()
    return result


@contextlib.contextmanager
def control_plane(nodes: int) -> Iterator[ControlPlane]:
    # Leases renewed rarely (kwok renews each a few times per duration) and a wide pod CIDR in 127/8.
    sizing = Sizing(pod_cidr="127.1.0.0/16", client_qps=1000, node_lease_seconds=max(40, nodes // 5))
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp:
        with running_control_plane(Path(tmp), sizing) as plane:
            yield plane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--site-jobs", type=int, default=100, help="Continuous site jobs (plus 2 fleet-wide)")
    parser.add_argument("--mode", choices=("continuous", "batch", "both"), default="both")
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument(
        "--workers-running", type=float, default=1.0, help="the share of worker pods Running before the steady window"
    )
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {"nodes": args.nodes}
    with control_plane(args.nodes) as plane, SimulatedWorkers(port=WORKER_METRICS_PORT) as workers:
        fleet = Fleet(plane, args.nodes)
        if args.mode in ("continuous", "both"):
            results["continuous"] = run_continuous(
                fleet, plane.workdir, args.site_jobs, args.steady_seconds, args.workers_running
            )
            print(json.dumps(results["continuous"]), flush=True)
            if args.mode == "both":
                fleet.delete_jobs()
        if args.mode in ("batch", "both"):
            results["batch"] = run_batch(fleet, plane.workdir)
            print(json.dumps(results["batch"]), flush=True)
        results["simulated_workers"] = workers.counters()
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
