"""Real placement over a kwok fleet: where the DaemonSet controller, the Job controller and the
scheduler put the workers the operator asks for, read back from the pods' spec.nodeName.

The table follows Kubernetes' own semantics. A DaemonSet's pods tolerate a cordoned node
(node.kubernetes.io/unschedulable) and the NoExecute taints of a node that goes NotReady, but not
the NoSchedule not-ready taint that the node lifecycle controller puts on a node that is NotReady
already: so a cordoned node gets a Continuous worker and a NotReady one does not. A Batch Job's pod
is placed by the scheduler like any pod, so it goes to schedulable, Ready nodes only.
"""

from __future__ import annotations

from edge_inference_api import conditions
from edge_inference_api.models import LABEL_ACCELERATOR
from edge_inference_operator.names import LABEL_JOB
from edge_inference_operator.settings import OperatorSettings
from support.controlplane import EXIT_CODE_ANNOTATION

NVIDIA_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
DEDICATED = {"key": "edgeinference.io/dedicated", "value": "video", "effect": "NoSchedule"}
OTHER_TEAM = {"key": "team", "value": "payments", "effect": "NoSchedule"}

# node -> (how it is made, what a Continuous job gets, what a Batch job gets); None: no worker.
FLEET = {
    "cpu": (dict(accelerator="cpu"), "cpu", "cpu"),
    "nvidia": (dict(accelerator="nvidia", taints=[NVIDIA_TAINT], capacity={"nvidia.com/gpu": "2"}), "nvidia", "nvidia"),
    "intel": (dict(accelerator="intel"), None, None),  # a kind the job does not accept
    "unlabelled": (dict(accelerator=None), None, None),  # no camera storage
    "tainted": (dict(accelerator="cpu", taints=[OTHER_TEAM]), None, None),  # a taint the job does not tolerate
    "tolerated": (dict(accelerator="cpu", taints=[DEDICATED]), "cpu", "cpu"),  # a taint the job tolerates
    "cordoned": (dict(accelerator="cpu", unschedulable=True), "cpu", None),
    "not-ready": (dict(accelerator="cpu", kwok=False), None, None),
}
SETTINGS = OperatorSettings(
    allowed_host_paths=("/srv/video",), metrics_port=0, reconcile_seconds=0.5, batch_backoff_limit=0
)


def expected(mode: int) -> dict[str, str]:
    """node -> accelerator kind of its worker, for mode 1 (Continuous) or 2 (Batch)."""
    return {node: row[mode] for node, row in FLEET.items() if row[mode] is not None}


def workers(cluster, job: str) -> list[dict]:
    return [pod for pod in cluster.pods() if pod["metadata"]["labels"].get(LABEL_JOB) == job]


def placed(cluster, job: str) -> dict[str, str]:
    """node -> accelerator kind of every pod of `job`'s workers that has a node."""
    return {
        pod["spec"]["nodeName"]: pod["metadata"]["labels"][LABEL_ACCELERATOR]
        for pod in workers(cluster, job)
        if pod["spec"].get("nodeName")
    }


def make_fleet(cluster) -> None:
    for name, (how, _, _) in FLEET.items():
        how = dict(how)
        unschedulable = how.pop("unschedulable", False)
        cluster.add_node(name, wait=False, **how)
        if unschedulable:
            cluster.api.kubectl_ok("cordon", name)

    def settled() -> bool:
        # Ready kwok nodes without the not-ready taint; the NotReady one tainted by the node lifecycle controller.
        nodes = {n.metadata.name: n for n in cluster.core.list_node().items}
        taints = {name: {t.key for t in (n.spec.taints or [])} for name, n in nodes.items()}
        return (
            all(cluster.node_settled(name) for name, (how, _, _) in FLEET.items() if how.get("kwok", True))
            and "node.kubernetes.io/not-ready" in taints["not-ready"]
            and "node.kubernetes.io/unschedulable" in taints["cordoned"]
        )

    cluster.api.wait(settled, "the fleet to settle")


async def test_workers_land_where_kubernetes_puts_them(cluster, start_operator, make_body) -> None:
    make_fleet(cluster)
    accelerators = [{"type": "cpu"}, {"type": "nvidia"}]
    cluster.apply(make_body("watch", accelerators=accelerators, tolerations=[DEDICATED]))
    cluster.apply(make_body("sweep", mode="Batch", accelerators=accelerators, tolerations=[DEDICATED]))
    await start_operator(SETTINGS)

    continuous, batch = expected(1), expected(2)
    await cluster.wait(lambda: placed(cluster, "watch") == continuous, timeout=60, what=f"Continuous: {continuous}")
    await cluster.wait(lambda: placed(cluster, "sweep") == batch, timeout=60, what=f"Batch: {batch}")
    assert cluster.status("sweep")["targetNodes"] == sorted(batch)

    # The nvidia workers hold a GPU of the node; the others none.
    for pod in cluster.pods():
        limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
        gpus = "1" if pod["metadata"]["labels"][LABEL_ACCELERATOR] == "nvidia" else None
        assert limits.get("nvidia.com/gpu") == gpus, (pod["metadata"]["name"], limits)

    # What the operator reports agrees with what the DaemonSet controller scheduled.
    scheduled = sum(d["status"].get("desiredNumberScheduled", 0) for d in cluster.daemonsets())
    assert scheduled == len(continuous)
    await cluster.wait(
        lambda: cluster.status("watch").get("nodes", {}).get("desired") == len(continuous),
        what=f"the Continuous job to count {len(continuous)} nodes",
    )

    # Every Batch worker succeeds: the job reaches Succeeded with every target counted.
    for pod in workers(cluster, "sweep"):
        exit_zero = {"metadata": {"annotations": {EXIT_CODE_ANNOTATION: "0"}}}
        cluster.core.patch_namespaced_pod(pod["metadata"]["name"], "default", exit_zero)
    await cluster.wait(lambda: cluster.status("sweep").get("phase") == "Succeeded", timeout=60, what="Succeeded")
    assert cluster.condition(conditions.READY, "sweep") == ("True", conditions.BATCH_SUCCEEDED)
    assert cluster.status("sweep")["nodes"] == {"desired": len(batch), "ready": 0, "succeeded": len(batch), "failed": 0}
