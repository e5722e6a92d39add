"""Which nodes a job's workers can run on (pure): labels, spec.nodeSelector and taints.

The same rules the scheduler applies to the workers' pods (see builders.node_affinity and
builders.pod_tolerations), so that `nodes.desired` counts the nodes a worker can actually land on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from edge_inference_api.models import LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE, InferenceJobSpec

from edge_inference_operator.builders import pod_tolerations

# Taints that only block scheduling or evict (PreferNoSchedule merely discourages).
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
# (key, effect) of the taints every DaemonSet pod tolerates (the DaemonSet controller adds these
# tolerations; network-unavailable only for host-network pods, which workers are not). A node that
# is already NotReady also carries not-ready:NoSchedule, which they do not tolerate: no new worker.
DAEMONSET_TOLERATED = {
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
}


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """What placement needs to know about a node."""

    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> NodeInfo:
        return cls(
            labels=dict(node.get("metadata", {}).get("labels") or {}),
            # What a toleration is matched against (the same from JSON and from wire.node's protobuf subset).
            taints=[
                {key: t[key] for key in ("key", "value", "effect") if t.get(key)}
                for t in node.get("spec", {}).get("taints") or []
            ],
        )


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: empty key + Exists matches all; effect empty matches every effect."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def blocking_taints(
    taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], daemonset: bool
) -> list[Mapping[str, Any]]:
    """The taints that keep a worker off the node."""
    return [
        taint
        for taint in taints
        if taint.get("effect") in BLOCKING_EFFECTS
        and not (daemonset and (taint.get("key"), taint.get("effect")) in DAEMONSET_TOLERATED)
        and not any(tolerates(t, taint) for t in tolerations)
    ]


def matching_nodes(nodes: Mapping[str, NodeInfo], spec: InferenceJobSpec, daemonset: bool = True) -> dict[str, str]:
    """Nodes (name -> accelerator kind) with camera storage, an accepted kind, spec.nodeSelector, and no
    taint the workers do not tolerate."""
    types = {a.type for a in spec.accelerators}
    matched = {}
    for name, node in nodes.items():
        labels = node.labels
        kind = labels.get(LABEL_ACCELERATOR)
        if LABEL_CAMERA_STORAGE not in labels or kind not in types:
            continue
        if not all(labels.get(key) == value for key, value in spec.node_selector.items()):
            continue
        if blocking_taints(node.taints, pod_tolerations(spec, kind), daemonset):
            continue
        matched[name] = kind
    return matched


@dataclasses.dataclass(frozen=True)
class InputClaim:
    """The video a job reads: its host folder on its nodes."""

    host_path: str
    nodes: frozenset[str]


@functools.lru_cache(maxsize=4096)
def _folders_overlap(one: str, other: str) -> bool:
    a, b = PurePosixPath(one.rstrip("/") or "/"), PurePosixPath(other.rstrip("/") or "/")
    return a.is_relative_to(b) or b.is_relative_to(a)


class InputClaims:
    """What every job reads (its host folder on its nodes, as last reconciled), indexed by node.

    Finding the jobs that share a job's input looks only at the jobs on its own nodes: a scan of
    every other job from every reconcile made a resync of 1,000 jobs cost 1,000 x 1,000 comparisons
    (docs/benchmarks.md, "Operator at fleet scale").
    """

    def __init__(self) -> None:
        self._claims: dict[str, InputClaim] = {}  # "namespace/name" -> its claim
        self._on_node: dict[str, set[str]] = {}  # node -> the jobs claiming it

    def claim(self, job: str, claim: InputClaim) -> None:
        """`job` reads `claim` now (instead of what it claimed before)."""
        if self._claims.get(job) == claim:
            return
        self.release(job)
        self._claims[job] = claim
        for node in claim.nodes:
            self._on_node.setdefault(node, set()).add(job)

    def release(self, job: str) -> None:
        """`job` reads nothing (it is gone, or refused)."""
        claim = self._claims.pop(job, None)
        for node in claim.nodes if claim else ():
            jobs = self._on_node[node]
            jobs.discard(job)
            if not jobs:
                del self._on_node[node]

    def shared_with(self, job: str) -> dict[str, list[str]]:
        """Other jobs (name -> the shared nodes) that read the same folder, or one inside it, on a node of
        `job`'s: each file there is processed, and its events uploaded, once per job."""
        mine = self._claims.get(job)
        if mine is None:
            return {}
        on_my_nodes: dict[str, list[str]] = {}
        for node in mine.nodes:
            for other in self._on_node[node]:
                if other != job:
                    on_my_nodes.setdefault(other, []).append(node)
        return {
            other: sorted(nodes)
            for other, nodes in sorted(on_my_nodes.items())
            if _folders_overlap(mine.host_path, self._claims[other].host_path)
        }
