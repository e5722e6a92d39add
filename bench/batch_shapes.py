"""Batch over many nodes: one Job per node against one Indexed Job per accelerator kind (and a DaemonSet), side by side.

On the real control plane (tests/support/controlplane.py) with the kwok fleet of bench/operator_scale.py
(accelerators 60% cpu, 30% nvidia, 10% hailo; 1 node in 20 tainted for maintenance), one fleet-wide Batch
InferenceJob (every kind) is made into its children by the bench, one shape after the other on the same fleet:

- job-per-node: what the operator does today, one batch/v1 Job per untainted matching node, pinned to it by
  required node affinity (the operator's own `build_children`), created with the operator's writes in flight;
- indexed: one Indexed Job per accelerator kind (completions = parallelism = its target nodes), the same
  node affinity without the node, and a topology spread constraint (maxSkew 1 over kubernetes.io/hostname,
  DoNotSchedule) so that each node gets one pod. Built from the operator's own pod template;
- daemonset (with --daemonsets): the operator's Continuous DaemonSet per kind, whose pods run until deleted.

Every Job's pod carries kwok's exit-code annotation "0": it runs and succeeds at once, so the times are the
control plane's mechanics (API server, scheduler, Job controller), not a worker's work. Printed per shape:
creates sent, first create -> every pod created / bound to a node / Running or Succeeded / Succeeded ->
every Job Complete, the distinct nodes covered and the targets left without a pod, pods Pending at the end,
the children the operator would hold, and the bytes of a LIST of them (and of what the operator keeps of
each, `kube.kept_child`).

    python bench/batch_shapes.py --nodes 1000 --daemonsets     # about 2 minutes
    python bench/batch_shapes.py --probe                       # 20 nodes: retries, and a node tainted before placement

`--probe` answers what the numbers cannot: where the Job controller's replacement for a failed pod of an
Indexed Job lands (while the other pods run, and after they succeeded), with a topology spread constraint and
with a pod anti-affinity, and what each shape shows when a target node is tainted before its pod is placed.
Results: docs/benchmarks.md, "Batch: one Job per node".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]  # support/ is in both (a namespace package)

from edge_inference_api.models import API_GROUP, LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE, PLURAL, InferenceJobSpec  # noqa: E402
from edge_inference_operator.builders import (  # noqa: E402
    ParsedJob,
    build_children,
    build_daemonset,
    build_pod_template,
    owner_reference,
)
from edge_inference_operator.kube import WRITES_IN_FLIGHT, kept_child  # noqa: E402
from edge_inference_operator.names import MANAGED_SELECTOR, child_labels, child_name, selector_labels  # noqa: E402
from edge_inference_operator.settings import OperatorSettings  # noqa: E402
from operator_scale import Fleet, control_plane, wait_for  # noqa: E402
from support.controlplane import EXIT_CODE_ANNOTATION, ControlPlane  # noqa: E402
from support.jobs import job_body  # noqa: E402

NAMESPACE = "default"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
DAEMONSETS = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets"
SETTINGS = OperatorSettings(allowed_host_paths=("/srv/video",))
EVERY_KIND = [{"type": "cpu"}, {"type": "nvidia"}, {"type": "hailo"}]
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
POLL_SECONDS = 0.2


# ------------------------------------------------------------------------------------------------
# What the cluster holds, kept current by a watch.


class PodState(NamedTuple):
    node: str | None
    phase: str
    completion_index: str | None  # an Indexed Job's


def pod_state(pod: dict[str, Any]) -> PodState:
    labels = pod["metadata"].get("labels") or {}
    return PodState(pod["spec"].get("nodeName"), pod.get("status", {}).get("phase", ""), labels.get(INDEX_LABEL))


def job_complete(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


class Census:
    """What `summary` says of every object of a collection (of our children, by label), by name, kept current
    by a watch in a thread: polling a LIST of thousands of pods would cost more than what it measures."""

    def __init__(self, plane: ControlPlane, path: str, summary: Callable[[dict[str, Any]], Any]) -> None:
        self.plane, self.path, self.summary = plane, path, summary
        self.items: dict[str, Any] = {}
        self.stopped = threading.Event()
        self.version = self.relist()
        self.thread = threading.Thread(target=self.follow, daemon=True)
        self.thread.start()

    def relist(self) -> str:
        listing = self.plane.get(f"{self.path}?labelSelector={quote(MANAGED_SELECTOR)}")
        self.items = {item["metadata"]["name"]: self.summary(item) for item in listing["items"]}
        return listing["metadata"]["resourceVersion"]

    def follow(self) -> None:
        while not self.stopped.is_set():
            with self.plane.open_watch(self.path, self.version, 60, MANAGED_SELECTOR) as response:
                for line in response:
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # 410 Gone: start again from a fresh LIST
                        self.version = self.relist()
                        break
                    meta = event["object"]["metadata"]
                    if event["type"] == "DELETED":
                        self.items.pop(meta["name"], None)
                    else:
                        self.items[meta["name"]] = self.summary(event["object"])
                    self.version = meta["resourceVersion"]

    def values(self) -> list[Any]:
        return list(self.items.values())

    def stop(self) -> None:
        self.stopped.set()


# ------------------------------------------------------------------------------------------------
# The shapes of one Batch job's children.


def batch_job(plane: ControlPlane, name: str) -> ParsedJob:
    """A fleet-wide Batch InferenceJob, created (no operator runs: its children are the bench's) and parsed."""
    body = job_body(name, mode="Batch", accelerators=EVERY_KIND)
    code, created = plane.request("POST", f"/apis/{API_GROUP}/v1alpha1/namespaces/{NAMESPACE}/{PLURAL}", body)
    if code != 201:
        raise RuntimeError(f"creating InferenceJob {name}: HTTP {code}: {created}")
    return ParsedJob(NAMESPACE, name, created["metadata"]["uid"], InferenceJobSpec.model_validate(body["spec"]))


def target_nodes(plane: ControlPlane) -> dict[str, str]:
    """Every camera node without a NoSchedule taint -> its accelerator kind (what the operator targets)."""
    nodes = plane.get(f"/api/v1/nodes?labelSelector={LABEL_CAMERA_STORAGE}")["items"]
    return {
        n["metadata"]["name"]: n["metadata"]["labels"][LABEL_ACCELERATOR]
        for n in nodes
        if not any(t["effect"] == "NoSchedule" for t in n["spec"].get("taints") or [])
    }


def with_exit_code(manifest: dict[str, Any], code: str) -> dict[str, Any]:
    """`manifest` whose Job's pods kwok ends with exit `code` as soon as they run (other pods ignore it)."""
    template = manifest["spec"]["template"]["metadata"]
    template["annotations"] = {**template.get("annotations", {}), EXIT_CODE_ANNOTATION: code}
    return manifest


def jobs_per_node(job: ParsedJob, targets: dict[str, str]) -> list[dict[str, Any]]:
    """Today's children: the operator's own manifests, one Job per target node."""
    return build_children(job, SETTINGS, targets)


def daemonsets_of(job: ParsedJob, targets: dict[str, str]) -> list[dict[str, Any]]:
    """The Continuous machinery: the operator's DaemonSet per accelerator kind (a Batch worker would idle when done)."""
    kinds = set(targets.values())
    return [
        build_daemonset(job, accelerator, SETTINGS)
        for accelerator in job.spec.accelerators
        if accelerator.type in kinds
    ]


def keep_one_pod_per_node(pod_spec: dict[str, Any], job: ParsedJob, accelerator: str, placement: str) -> None:
    """Keep an Indexed Job's pods one to a node: a topology spread constraint ("spread", maxSkew 1 over the
    hostname) or a required pod anti-affinity ("anti-affinity"), among the pods of one kind."""
    selector = {"matchLabels": selector_labels(job.name, accelerator)}
    if placement == "spread":
        spread = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}
        pod_spec["topologySpreadConstraints"] = [{**spread, "labelSelector": selector}]
    else:
        term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": selector}
        pod_spec["affinity"]["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}


def indexed_jobs(job: ParsedJob, targets: dict[str, str], placement: str = "spread") -> list[dict[str, Any]]:
    """One Indexed Job per accelerator kind, one pod per target node of that kind (see `keep_one_pod_per_node`)."""
    manifests = []
    for accelerator in job.spec.accelerators:
        count = sum(kind == accelerator.type for kind in targets.values())
        if not count:
            continue
        template = build_pod_template(job, accelerator, SETTINGS)  # no node: the worker reads spec.nodeName
        template["spec"]["restartPolicy"] = "OnFailure"  # as a Batch Job's
        keep_one_pod_per_node(template["spec"], job, accelerator.type, placement)
        manifests.append({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": child_name(job.name, accelerator.type), "namespace": job.namespace,
                         "labels": child_labels(job.name, accelerator.type),
                         "ownerReferences": [owner_reference(job)]},
            "spec": {"completionMode": "Indexed", "completions": count, "parallelism": count,
                     "backoffLimit": SETTINGS.batch_backoff_limit, "template": template},
        })  # fmt: skip
    return manifests


# ------------------------------------------------------------------------------------------------
# One shape, timed.


class Cluster:
    """The admin's clients: a pooled official client for the creates (as the operator's), raw requests else."""

    def __init__(self, plane: ControlPlane) -> None:
        import kubernetes

        self.plane = plane
        client = plane.api_client()
        client.configuration.connection_pool_maxsize = WRITES_IN_FLIGHT + 4
        batch, apps = kubernetes.client.BatchV1Api(client), kubernetes.client.AppsV1Api(client)
        self.create_call = {"Job": batch.create_namespaced_job, "DaemonSet": apps.create_namespaced_daemon_set}
        self.list_call = {"Job": batch.list_namespaced_job, "DaemonSet": apps.list_namespaced_daemon_set}
        self.delete_call = {"Job": batch.delete_collection_namespaced_job,
                            "DaemonSet": apps.delete_collection_namespaced_daemon_set}  # fmt: skip
        self.core = kubernetes.client.CoreV1Api(client)

    def create(self, manifests: list[dict[str, Any]]) -> int:
        """Create `manifests` with the operator's writes in flight; returns the creates sent."""

        def create(manifest: dict[str, Any]) -> None:
            self.create_call[manifest["kind"]](NAMESPACE, manifest, _preload_content=False)

        with concurrent.futures.ThreadPoolExecutor(WRITES_IN_FLIGHT) as pool:
            for future in [pool.submit(create, m) for m in manifests]:
                future.result()
        return len(manifests)

    def list_bytes(self, kind: str) -> tuple[int, int]:
        """Bytes of a LIST of our `kind` children, and of what the operator keeps of them (`kept_child`, as JSON)."""
        raw = self.list_call[kind](NAMESPACE, label_selector=MANAGED_SELECTOR, _preload_content=False).data
        version = "batch/v1" if kind == "Job" else "apps/v1"
        # A LIST's items carry no kind: the operator's cache adds it, as here.
        kept = [kept_child({**child, "apiVersion": version, "kind": kind}) for child in json.loads(raw)["items"]]
        return len(raw), sum(len(json.dumps(child, separators=(",", ":"))) for child in kept)

    def delete_children(self, pods: Census, children: Census, timeout: float) -> float:
        """Delete every child of ours and their pods (without waiting for the garbage collector); seconds until
        all are gone."""
        started = time.monotonic()
        for delete in (*self.delete_call.values(), self.core.delete_collection_namespaced_pod):
            delete(NAMESPACE, label_selector=MANAGED_SELECTOR, propagation_policy="Background", grace_period_seconds=0,
                   _preload_content=False, _request_timeout=timeout)  # fmt: skip
        wait_for("every child and pod gone", lambda: not pods.items and not children.items, timeout, every=POLL_SECONDS)
        return time.monotonic() - started


def milestones(
    pods: Census, children: Census, want_pods: int, ends: bool, began: float, timeout: float
) -> dict[str, float]:
    """Seconds from `began` until the pods are created, bound, running (or done), and, when they `ends`,
    succeeded and their Jobs Complete; gives up after `timeout`, leaving out what was not reached."""
    steps: dict[str, Callable[[list[PodState]], bool]] = {
        "created": lambda states: len(states) >= want_pods,
        "bound": lambda states: sum(s.node is not None for s in states) >= want_pods,
        "started": lambda states: sum(s.phase in ("Running", "Succeeded") for s in states) >= want_pods,
    }
    if ends:
        steps["succeeded"] = lambda states: sum(s.phase == "Succeeded" for s in states) >= want_pods
        steps["complete"] = lambda _: bool(children.items) and all(children.values())
    reached: dict[str, float] = {}
    while len(reached) < len(steps) and time.monotonic() - began < timeout:
        states = pods.values()
        for step, holds in steps.items():
            if step not in reached and holds(states):
                reached[step] = round(time.monotonic() - began, 1)
        time.sleep(POLL_SECONDS)
    return reached


def run_shape(cluster: Cluster, manifests: list[dict[str, Any]], targets: set[str], timeout: float) -> dict[str, Any]:
    """Create `manifests`, time them to the end, count where the pods went, measure the children, delete them all."""
    kind = manifests[0]["kind"]
    pods = Census(cluster.plane, PODS, pod_state)
    children = Census(cluster.plane, JOBS if kind == "Job" else DAEMONSETS, job_complete)
    try:
        result: dict[str, Any] = {"load_before": load()}
        with concurrent.futures.ThreadPoolExecutor(1) as creator:
            began = time.monotonic()
            creates = creator.submit(lambda: (cluster.create(manifests), time.monotonic() - began))
            reached = milestones(pods, children, len(targets), kind == "Job", began, timeout)
            result["creates"], seconds = creates.result()
            result["creates_s"] = round(seconds, 1)
        result |= {f"{step}_s": seconds for step, seconds in reached.items()}
        states = pods.values()
        on = [s.node for s in states if s.node]
        result |= {
            "pods": len(states),
            "distinct_nodes": len(set(on)),
            "nodes_with_2_pods_or_more": sum(on.count(node) > 1 for node in set(on)),
            "targets_without_a_pod": len(targets - set(on)),
            "pending_at_end": sum(s.node is None for s in states),
            "children_complete": sum(children.values()),
            "children_held": len(children.items),
        }
        result["list_bytes"], result["kept_bytes"] = cluster.list_bytes(kind)
        result["load_after"] = load()
        result["delete_s"] = round(cluster.delete_children(pods, children, timeout), 1)
        return result
    finally:
        pods.stop()
        children.stop()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def compare(plane: ControlPlane, timeout: float, daemonsets: bool) -> dict[str, Any]:
    """Both shapes of one fleet-wide Batch job, one after the other on the same fleet."""
    cluster = Cluster(plane)
    job = batch_job(plane, "batch-fleet")
    targets = target_nodes(plane)
    results: dict[str, Any] = {"targets": len(targets)}
    shapes = [("job-per-node", jobs_per_node), ("indexed", indexed_jobs)]
    if daemonsets:
        shapes.append(("daemonset", daemonsets_of))
    for shape, build in shapes:
        manifests = [with_exit_code(m, "0") for m in build(job, targets)]
        results[shape] = run_shape(cluster, manifests, set(targets), timeout)
        print(f"{shape}: {json.dumps(results[shape])}", flush=True)
    return results


# ------------------------------------------------------------------------------------------------
# The probe: what happens to an Indexed Job's pods when one fails, or a target node is tainted.

PLACEMENTS = ("spread", "anti-affinity")
PROBE_TAINT = {"key": "bench.edgeinference.io/probe", "value": "true", "effect": "NoSchedule"}


def set_exit_code(plane: ControlPlane, pod: str, code: str) -> None:
    patch = {"metadata": {"annotations": {EXIT_CODE_ANNOTATION: code}}}
    status, body = plane.request("PATCH", f"{PODS}/{pod}", patch, "application/merge-patch+json")
    if status != 200:
        raise RuntimeError(f"PATCH pod {pod}: HTTP {status}: {body}")


def set_taints(plane: ControlPlane, node: str, taints: list[dict[str, str]]) -> None:
    status, body = plane.request("PATCH", f"/api/v1/nodes/{node}", {"spec": {"taints": taints}},
                                 "application/merge-patch+json")  # fmt: skip
    if status != 200:
        raise RuntimeError(f"PATCH node {node}: HTTP {status}: {body}")


def of_index(pods: Census, index: str) -> dict[str, PodState]:
    return {name: state for name, state in list(pods.items.items()) if state.completion_index == index}


def fail_and_follow(plane: ControlPlane, pods: Census, index: str, settle: float) -> dict[str, Any]:
    """Fail index `index`'s pod; where does the Job controller's replacement go (within `settle` s)?"""
    ((failed, before),) = of_index(pods, index).items()
    set_exit_code(plane, failed, "1")

    def replacement() -> dict[str, PodState]:
        return {name: s for name, s in of_index(pods, index).items() if name != failed}

    wait_for(f"a replacement for index {index}", lambda: bool(replacement()), 60, every=POLL_SECONDS)
    settled = time.monotonic() + settle
    while time.monotonic() < settled and not all(s.node for s in replacement().values()):
        time.sleep(POLL_SECONDS)
    ((_, after),) = replacement().items()
    others = {s.node for name, s in pods.items.items() if s.completion_index != index and s.phase == "Running"}
    return {"index": index, "failed_on": before.node, "replacement_on": after.node,
            "same_node": after.node == before.node, "replacement_on_a_node_with_a_running_pod": after.node in others,
            "failed_pod_kept": failed in pods.items}  # fmt: skip


def probe_retries(
    plane: ControlPlane, cluster: Cluster, job: ParsedJob, targets: dict[str, str], placement: str
) -> dict[str, Any]:
    """An Indexed Job over `targets` (pods one to a node by `placement`), pods running until told: fail one
    while the others run, then fail another after every other pod succeeded."""
    pods = Census(plane, PODS, pod_state)
    jobs = Census(plane, JOBS, job_complete)
    try:
        cluster.create(indexed_jobs(job, targets, placement))
        wait_for(
            "every pod Running",
            lambda: sum(s.phase == "Running" for s in pods.values()) >= len(targets),
            120,
            every=POLL_SECONDS,
        )
        placed = {"pods": len(pods.items), "distinct_nodes": len({s.node for s in pods.values()})}
        while_running = fail_and_follow(plane, pods, "0", settle=20)
        for name, state in list(pods.items.items()):
            if state.completion_index != "1" and state.phase == "Running":
                set_exit_code(plane, name, "0")
        done = len(targets) - 1
        wait_for(
            "every other index Succeeded",
            lambda: sum(s.phase == "Succeeded" for s in pods.values()) >= done,
            120,
            every=POLL_SECONDS,
        )
        after_others_succeeded = fail_and_follow(plane, pods, "1", settle=20)
        result = {"placed": placed, "while_others_run": while_running, "after_others_succeeded": after_others_succeeded}
        cluster.delete_children(pods, jobs, 120)
        return result
    finally:
        pods.stop()
        jobs.stop()


def probe_tainted_node(
    plane: ControlPlane, cluster: Cluster, job: ParsedJob, targets: dict[str, str]
) -> dict[str, Any]:
    """A target node tainted NoSchedule after the targets were chosen, before the pods are placed: each shape,
    its pods succeeding at once; what is left once the others finished."""
    lost = sorted(targets)[0]
    set_taints(plane, lost, [PROBE_TAINT])
    try:
        shapes = {
            "job-per-node": jobs_per_node(job, targets),
            **{f"indexed-{placement}": indexed_jobs(job, targets, placement) for placement in PLACEMENTS},
        }
        return {"tainted": lost} | {
            shape: left_behind(plane, cluster, manifests, len(targets) - 1, lost) for shape, manifests in shapes.items()
        }
    finally:
        set_taints(plane, lost, [])


def left_behind(
    plane: ControlPlane, cluster: Cluster, manifests: list[dict[str, Any]], others: int, lost: str
) -> dict[str, Any]:
    """Create `manifests` (pods succeeding at once); once `others` pods succeeded, what is complete and what is not."""
    pods = Census(plane, PODS, pod_state)
    jobs = Census(plane, JOBS, job_complete)
    try:
        cluster.create([with_exit_code(m, "0") for m in manifests])

        def succeeded() -> int:
            return sum(s.phase == "Succeeded" for s in pods.values())

        wait_for("the others Succeeded", lambda: succeeded() >= others, 120, every=POLL_SECONDS)
        time.sleep(15)  # the scheduler retries the unschedulable pod meanwhile (its back-off starts at 1 s)
        states = pods.values()
        result = {
            "jobs": len(jobs.items), "jobs_complete": sum(jobs.values()),
            "pods_pending": sum(s.node is None for s in states), "pods_succeeded": succeeded(),
            "succeeded_on_nodes": len({s.node for s in states if s.phase == "Succeeded"}),
            "pod_on_the_tainted_node": any(s.node == lost for s in states),
            "incomplete_jobs": sorted(name for name, complete in jobs.items.items() if not complete),
        }  # fmt: skip
        cluster.delete_children(pods, jobs, 120)
        return result
    finally:
        pods.stop()
        jobs.stop()


def probe(plane: ControlPlane) -> dict[str, Any]:
    """The Indexed Job's failure cases, on the fleet's cpu nodes (one pod each)."""
    cluster = Cluster(plane)
    job = batch_job(plane, "probe")
    targets = {node: kind for node, kind in target_nodes(plane).items() if kind == "cpu"}
    results: dict[str, Any] = {"targets": len(targets)}
    for placement in PLACEMENTS:
        results[f"retries-{placement}"] = retries = probe_retries(plane, cluster, job, targets, placement)
        print(f"retries ({placement}): {json.dumps(retries)}", flush=True)
    results["tainted_node"] = probe_tainted_node(plane, cluster, job, targets)
    print(f"tainted node: {json.dumps(results['tainted_node'])}", flush=True)
    return results


# ------------------------------------------------------------------------------------------------


def commit() -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, help="kwok nodes (default: 1000; 20 with --probe)")
    parser.add_argument("--probe", action="store_true", help="the Indexed Job's failure cases instead of the timing")
    parser.add_argument("--daemonsets", action="store_true", help="a third shape: a DaemonSet per kind")
    parser.add_argument("--timeout", type=float, help="seconds a shape may take (default: 300 + 0.3 per node)")
    args = parser.parse_args()
    nodes = args.nodes or (20 if args.probe else 1000)
    results: dict[str, Any] = {"nodes": nodes, "commit": commit(), "load_before": load()}
    print(f"batch shapes at {results['commit']}: {nodes} nodes, load before {results['load_before']}", flush=True)
    with control_plane(nodes) as plane:
        Fleet(plane, nodes)
        results |= probe(plane) if args.probe else compare(plane, args.timeout or 300 + 0.3 * nodes, args.daemonsets)
    results["load_after"] = load()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
