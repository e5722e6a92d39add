"""Which nodes a job's workers can land on: labels, nodeSelector and taints (pure tables)."""

from __future__ import annotations

import pytest
from edge_inference_operator.placement import InputClaim, InputClaims, NodeInfo, matching_nodes, tolerates
from support.jobs import job_spec

CAMERA = {"edgeinference.io/camera-storage": "true"}


def node(accelerator: str | None = "cpu", taints: list[dict] | None = None, **labels: str) -> NodeInfo:
    all_labels = {**CAMERA, **labels}
    if accelerator:
        all_labels["edgeinference.io/accelerator"] = accelerator
    return NodeInfo(labels=all_labels, taints=taints or [])


def edge_taint(effect: str = "NoSchedule", value: str = "yes") -> dict:
    return {"key": "edge", "value": value, "effect": effect}


TOLERATION_CASES = [
    # (toleration, taint, tolerated)
    ({"operator": "Exists"}, edge_taint(), True),  # empty key + Exists: everything
    ({"key": "edge", "operator": "Exists"}, edge_taint(), True),
    ({"key": "edge", "operator": "Equal", "value": "yes"}, edge_taint(), True),
    ({"key": "edge", "operator": "Equal", "value": "no"}, edge_taint(), False),
    ({"key": "edge", "operator": "Exists", "effect": "NoExecute"}, edge_taint("NoSchedule"), False),
    ({"key": "edge", "operator": "Exists", "effect": "NoSchedule"}, edge_taint("NoSchedule"), True),
    ({"key": "other", "operator": "Exists"}, edge_taint(), False),
    ({"key": "edge"}, {"key": "edge", "effect": "NoSchedule"}, True),  # Equal with no value on both sides
]


@pytest.mark.parametrize(("toleration", "taint", "tolerated"), TOLERATION_CASES)
def test_tolerations_follow_kubernetes(toleration: dict, taint: dict, tolerated: bool) -> None:
    assert tolerates(toleration, taint) is tolerated


def test_nodes_are_matched_by_labels_selector_and_taints(make_body) -> None:
    nodes = {
        "plain": node(),
        "gpu": node("nvidia", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),  # tolerated for nvidia
        "arm": node("arm"),  # kind not accepted
        "no-camera": NodeInfo(labels={"edgeinference.io/accelerator": "cpu"}),
        "other-site": node(site="parking"),
        "tainted": node(taints=[edge_taint()]),
        "prefer": node(taints=[edge_taint("PreferNoSchedule")]),  # does not block
        "not-ready": node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        # What the node lifecycle controller puts on a node that is NotReady: no new DaemonSet pod either.
        "still-not-ready": node(
            taints=[{"key": "node.kubernetes.io/not-ready", "effect": e} for e in ("NoSchedule", "NoExecute")]
        ),
    }
    for name in ("plain", "tainted", "prefer", "not-ready", "still-not-ready", "gpu"):
        nodes[name] = NodeInfo({**nodes[name].labels, "site": "lobby"}, nodes[name].taints)
    job = job_spec(accelerators=[{"type": "cpu"}, {"type": "nvidia"}], nodeSelector={"site": "lobby"})
    assert matching_nodes(nodes, job) == {"plain": "cpu", "gpu": "nvidia", "prefer": "cpu", "not-ready": "cpu"}
    # Batch Jobs do not get the DaemonSet controller's automatic tolerations.
    assert "not-ready" not in matching_nodes(nodes, job, daemonset=False)
    tolerant = job_spec(nodeSelector={"site": "lobby"}, tolerations=[{"key": "edge", "operator": "Exists"}])
    assert "tainted" in matching_nodes(nodes, tolerant)


def claim(path: str, *nodes: str) -> InputClaim:
    return InputClaim(path, frozenset(nodes))


@pytest.mark.parametrize(
    ("other", "shared"),
    [
        (claim("/srv/video/lobby", "a", "b"), ["a"]),  # same folder, one node in common
        (claim("/srv/video/lobby/", "a"), ["a"]),
        (claim("/srv/video", "a"), ["a"]),  # a folder around ours
        (claim("/srv/video/lobby/cam1", "a"), ["a"]),  # a folder inside ours
        (claim("/srv/video/lobby", "b"), None),  # no node in common
        (claim("/srv/video/lobby2", "a"), None),  # a sibling, not inside
        (claim("/srv/video/parking", "a"), None),
    ],
)
def test_jobs_reading_the_same_folder_on_the_same_node_are_found(other: InputClaim, shared: list | None) -> None:
    claims = InputClaims()
    claims.claim("default/mine", claim("/srv/video/lobby", "a", "c"))
    claims.claim("default/other", other)
    assert claims.shared_with("default/mine") == ({"default/other": shared} if shared else {})


def test_shared_inputs_follow_each_jobs_latest_claim() -> None:
    claims = InputClaims()
    claims.claim("default/mine", claim("/srv/video", "a", "b", "c"))
    claims.claim("team/one", claim("/srv/video/lobby", "c", "b"))
    claims.claim("team/two", claim("/srv/video", "z"))
    assert claims.shared_with("default/mine") == {"team/one": ["b", "c"]}
    assert claims.shared_with("team/one") == {"default/mine": ["b", "c"]}

    claims.claim("team/two", claim("/srv/video", "a"))  # moved onto one of mine
    claims.claim("team/one", claim("/srv/video/lobby", "c"))  # left b
    assert claims.shared_with("default/mine") == {"team/one": ["c"], "team/two": ["a"]}

    claims.release("team/one")
    claims.release("team/one")  # twice: nothing to do
    assert claims.shared_with("default/mine") == {"team/two": ["a"]}
    assert claims.shared_with("team/one") == {}
    claims.release("team/two")
    assert claims.shared_with("default/mine") == {}
