"""The thin I/O layer against the real API server, as the chart's ServiceAccount: create, update and
delete children, converge on conflicts."""

from __future__ import annotations

import copy
import json

import pytest
from edge_inference_operator import cache
from edge_inference_operator import kube as kube_api
from edge_inference_operator.builders import build_children
from edge_inference_operator.names import ANNOTATION_SPEC_HASH


@pytest.fixture
async def kube(cluster):
    client = kube_api.Kube.from_environment()
    yield client
    client.close()


async def converge(kube: kube_api.Kube, uid: str, desired: list[dict]) -> kube_api.Convergence:
    """converge_children with the job's children as a LIST finds them now."""
    existing = await kube_api.observed_children(kube, "default", "lobby", uid)
    return await kube_api.converge_children(kube, "default", desired, existing)


def owner_uid(cluster, make_body) -> str:
    cluster.apply(make_body())
    return cluster.job()["metadata"]["uid"]


async def test_create_conflict_converges_by_re_reading(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    (desired,) = build_children(make_job(uid=uid), settings)
    stale = copy.deepcopy(desired)
    stale["metadata"]["annotations"][ANNOTATION_SPEC_HASH] = "stale"
    stale["spec"]["template"]["spec"]["containers"][0]["image"] = "old:1"
    cluster.apps.create_namespaced_daemon_set("default", stale)  # another writer got there first

    action, now = await kube_api.ensure_child(kube, desired, None, "default")  # believes it is missing: 409

    assert action == "updated"
    assert (
        now["metadata"]["annotations"][ANNOTATION_SPEC_HASH] == desired["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    )
    assert now["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/edge-inference/worker:0.1.0"
    assert len(cluster.daemonsets()) == 1


async def test_update_with_a_stale_resource_version_retries(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    (desired,) = build_children(make_job(uid=uid), settings)
    await kube_api.ensure_child(kube, desired, None, "default")
    seen = cluster.daemonsets()[0]
    # Someone writes in between: the copy we hold is now stale (its resourceVersion no longer matches).
    cluster.apps.patch_namespaced_daemon_set("lobby-cpu", "default", {"metadata": {"labels": {"touched": "yes"}}})
    changed_job = make_job(uid=uid, sampling={"fps": 9})
    (wanted,) = build_children(changed_job, settings)

    action, now = await kube_api.ensure_child(kube, wanted, seen, "default")

    assert action == "updated"
    assert (
        now["metadata"]["annotations"][ANNOTATION_SPEC_HASH] == wanted["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    )
    assert now["metadata"]["labels"]["touched"] == "yes"  # the other writer's change survives
    assert int(now["metadata"]["resourceVersion"]) > int(seen["metadata"]["resourceVersion"])


async def test_converge_is_idempotent(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    job = make_job(uid=uid, accelerators=[{"type": "cpu"}, {"type": "nvidia"}])
    first = await converge(kube, uid, build_children(job, settings))
    # generation, not resourceVersion: the DaemonSet controller writes the status meanwhile.
    versions = {d["metadata"]["name"]: d["metadata"]["generation"] for d in cluster.daemonsets()}
    again = await converge(kube, uid, build_children(job, settings))
    assert sorted(first.created) == ["DaemonSet/lobby-cpu", "DaemonSet/lobby-nvidia"]
    assert (again.created, again.updated, again.deleted) == ([], [], [])
    assert {d["metadata"]["name"]: d["metadata"]["generation"] for d in cluster.daemonsets()} == versions


async def test_changed_batch_job_is_replaced_not_patched(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    batch = make_job(uid=uid, mode="Batch")
    await converge(kube, uid, build_children(batch, settings, {"n1": "cpu"}))
    changed = make_job(uid=uid, mode="Batch", sampling={"fps": 3})
    result = await converge(kube, uid, build_children(changed, settings, {"n1": "cpu"}))
    assert result.deleted == ["Job/lobby-cpu-n1"]  # a Job's template is immutable: delete, then create
    result = await converge(kube, uid, build_children(changed, settings, {"n1": "cpu"}))
    assert result.created == ["Job/lobby-cpu-n1"]


async def test_children_of_another_owner_are_left_alone(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    # Owned by another job that exists: an owner that does not exist would be the garbage collector's.
    cluster.apply(make_body("elsewhere"))
    (foreign,) = build_children(make_job(uid=cluster.job("elsewhere")["metadata"]["uid"]), settings)
    foreign["metadata"]["ownerReferences"][0]["name"] = "elsewhere"
    cluster.apps.create_namespaced_daemon_set("default", foreign)
    assert await kube_api.observed_children(kube, "default", "lobby", uid) == []
    result = await converge(kube, uid, [])
    assert result.deleted == [] and len(cluster.daemonsets()) == 1


async def test_an_object_of_someone_else_with_our_name_is_not_taken_over(
    cluster, kube, make_job, make_body, settings
) -> None:
    uid = owner_uid(cluster, make_body)
    # Owned by another job that exists: an owner that does not exist would be the garbage collector's.
    cluster.apply(make_body("elsewhere"))
    (foreign,) = build_children(make_job(uid=cluster.job("elsewhere")["metadata"]["uid"]), settings)
    foreign["metadata"]["ownerReferences"][0]["name"] = "elsewhere"
    cluster.apps.create_namespaced_daemon_set("default", foreign)
    (desired,) = build_children(make_job(uid=uid), settings)
    result = await converge(kube, uid, [desired])
    assert result.taken == ["DaemonSet/lobby-cpu"] and result.created == [] and result.children == []
    (untouched,) = cluster.daemonsets()
    assert untouched["metadata"]["ownerReferences"][0]["uid"] == cluster.job("elsewhere")["metadata"]["uid"]


async def test_an_invalid_update_is_reported_at_once_not_retried_as_a_conflict(
    cluster, kube, make_job, make_body, settings
) -> None:
    uid = owner_uid(cluster, make_body)
    (desired,) = build_children(make_job(uid=uid), settings)
    await kube_api.ensure_child(kube, desired, None, "default")
    current = cluster.daemonsets()[0]
    refused = copy.deepcopy(desired)
    refused["metadata"]["labels"]["broken"] = "not a label value!"
    refused["metadata"]["annotations"][ANNOTATION_SPEC_HASH] = "changed"

    with pytest.raises(kube_api.KubeError) as raised:
        await kube_api.ensure_child(kube, refused, current, "default")

    assert raised.value.status == 422
    assert "not a label value!" in raised.value.message and "still conflicting" not in str(raised.value)
    assert "broken" not in cluster.daemonsets()[0]["metadata"]["labels"]


async def test_an_invalid_create_carries_the_servers_message(cluster, kube, make_job, make_body, settings) -> None:
    uid = owner_uid(cluster, make_body)
    (desired,) = build_children(make_job(uid=uid), settings)
    desired["metadata"]["labels"]["broken"] = "not a label value!"
    with pytest.raises(kube_api.KubeError) as raised:
        await kube_api.ensure_child(kube, desired, None, "default")
    assert raised.value.status == 422 and 'DaemonSet.apps "lobby-cpu" is invalid' in raised.value.message


LIVE_DEFAULTS = {  # what an API server adds to a child: defaults, its own labels, canonical quantities
    "metadata": {"labels": {"app.kubernetes.io/name": "w", "controller-uid": "x"}},
    "spec": {
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {
                "containers": [
                    {
                        "name": "w",
                        "image": "w:1",
                        "terminationMessagePath": "/dev/termination-log",
                        "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}},
                    }
                ],
                "dnsPolicy": "ClusterFirst",
                "volumes": [{"name": "videos", "hostPath": {"path": "/srv/video", "type": "Directory"}}],
            },
        },
    },
}
DESIRED = {
    "metadata": {"labels": {"app.kubernetes.io/name": "w"}},
    "spec": {
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {
                "containers": [
                    {
                        "name": "w",
                        "image": "w:1",
                        "resources": {"requests": {"cpu": "0.5"}, "limits": {"memory": "2Gi"}},
                    }
                ],
                "volumes": [{"name": "videos", "hostPath": {"path": "/srv/video", "type": "Directory"}}],
            },
        },
    },
}


def edited(path: str, value) -> dict:
    live = copy.deepcopy(LIVE_DEFAULTS)
    *parents, last = path.split(".")
    node = live
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return live


def test_server_defaults_and_canonical_quantities_are_not_drift() -> None:
    assert not kube_api.drifted(LIVE_DEFAULTS, DESIRED)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.template.spec.containers.0.image", "evil:1"),
        ("spec.template.spec.volumes.0.hostPath.path", "/etc"),
        ("spec.template.spec.containers.0.resources", {}),
        ("spec.template.spec.volumes", []),
        ("metadata.labels", {}),
        ("spec.revisionHistoryLimit", 10),
    ],
)
def test_a_field_edited_by_hand_is_drift(path: str, value) -> None:
    assert kube_api.drifted(edited(path, value), DESIRED)


async def test_a_kept_daemonset_holds_only_what_is_read_and_still_shows_drift(
    cluster, kube, make_job, make_body, settings
) -> None:
    uid = owner_uid(cluster, make_body)
    desired = build_children(make_job(uid=uid), settings)[0]
    await converge(kube, uid, [desired])
    live = await kube.get("/apis/apps/v1/namespaces/default/daemonsets/" + desired["metadata"]["name"])
    assert live is not None and live["metadata"].get("managedFields") and "status" in live

    kept = cache.DAEMONSETS.keep(live)

    assert set(kept) == {"apiVersion", "kind", "metadata", "spec"}  # no status: nothing reads it
    assert set(kept["metadata"]) <= set(kube_api._KEPT_METADATA)  # no managedFields
    assert not kube_api.drifted(kept, desired)
    image = live["spec"]["template"]["spec"]["containers"][0]
    image["image"] = "evil:1"
    assert kube_api.drifted(cache.DAEMONSETS.keep(live), desired)


def test_kept_objects_share_their_strings() -> None:
    decoded = [json.loads('{"metadata": {"labels": {"edgeinference.io/job": "lobby-cpu"}}}') for _ in range(2)]
    labels = [next(iter(o["metadata"]["labels"].items())) for o in decoded]
    assert labels[0][1] is not labels[1][1]  # each watch event is decoded on its own

    kept = [next(iter(cache.shared_strings(o)["metadata"]["labels"].items())) for o in decoded]

    assert kept[0][0] is kept[1][0] and kept[0][1] is kept[1][1]
