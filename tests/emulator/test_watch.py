"""Fixes 1 and 5: watches replay from a resource version, lose nothing, and stream JSON kubectl accepts."""

import asyncio
import itertools
import json
import urllib.request

import kubernetes
import yaml


def watch_names(core, resource_version: str, count: int) -> list[tuple[str, str, str]]:
    """The first ``count`` events of a watch on default's config maps (the server ends it after 3 s)."""
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=resource_version, timeout_seconds=3
    )
    events = itertools.islice(stream, count)
    return [(e["type"], e["object"].metadata.name, (e["object"].data or {}).get("k", "")) for e in events]


def test_list_reports_the_current_resource_version_and_a_watch_from_it_replays_later_changes(
        core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("before", data={"k": "v1"}))
    listing = core.list_namespaced_config_map("default")
    assert [item.metadata.name for item in listing.items] == ["before"]
    assert listing.metadata.resource_version == listing.items[0].metadata.resource_version

    # Changes made while no watch is open are not lost: the next watch from the listed version replays them.
    core.create_namespaced_config_map("default", make_config_map("after", data={"k": "a1"}))
    core.patch_namespaced_config_map("before", "default", {"data": {"k": "v2"}})
    core.delete_namespaced_config_map("after", "default")

    events = watch_names(core, listing.metadata.resource_version, 3)
    assert events == [("ADDED", "after", "a1"), ("MODIFIED", "before", "v2"), ("DELETED", "after", "a1")]


def test_a_watch_from_a_later_version_skips_the_events_before_it(core, make_config_map):
    first = core.create_namespaced_config_map("default", make_config_map("one"))
    second = core.create_namespaced_config_map("default", make_config_map("two"))
    core.create_namespaced_config_map("default", make_config_map("three"))
    assert int(first.metadata.resource_version) < int(second.metadata.resource_version)

    assert watch_names(core, second.metadata.resource_version, 1) == [("ADDED", "three", "")]


async def test_a_watch_without_a_version_starts_with_the_current_objects_then_streams_changes(
        api, core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("existing"))
    stream = asyncio.create_task(asyncio.to_thread(watch_names, core, "", 2))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(r.verb == "watch" for r in api.requests) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    core.create_namespaced_config_map("default", make_config_map("new"))

    assert await stream == [("ADDED", "existing", ""), ("ADDED", "new", "")]


def test_watch_responses_are_json_lines_and_end_after_timeout_seconds(api, core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("seen"))
    url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        lines = response.read().splitlines()  # returns only because the server ends the stream
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in map(json.loads, lines)] == [("ADDED", "seen")]


def test_initial_events_end_with_a_bookmark_when_asked_for(api, core, make_config_map):
    core.create_namespaced_config_map("default", make_config_map("seen"))
    url = (f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
           "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response.read().splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_kubectl_wait_follows_the_watch_until_the_status_changes(api, custom, job):
    assert api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job)).returncode == 0
    waiting = asyncio.create_task(asyncio.to_thread(
        api.kubectl, "wait", "--for=jsonpath={.status.phase}=Running", "inferencejob/lobby", "--timeout=20s"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(r.verb == "watch" and r.resource == "inferencejobs" for r in api.requests):
        assert loop.time() < deadline, "kubectl wait never opened its watch"
        await asyncio.sleep(0.02)
    custom.patch_namespaced_custom_object_status(
        "edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby", {"status": {"phase": "Running"}})

    waited = await waiting
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout


async def test_kubectl_get_watch_prints_objects_created_later(api, make_config_map):
    assert api.kubectl("get", "configmaps", "-o", "name").stdout == ""
    watching = asyncio.create_task(asyncio.to_thread(
        api.kubectl, "get", "configmaps", "--watch", "-o", "name", "--request-timeout=2s"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(r.verb == "watch" for r in api.requests):
        assert loop.time() < deadline, "kubectl never opened its watch"
        await asyncio.sleep(0.02)
    assert api.request("POST", "/api/v1/namespaces/default/configmaps", make_config_map("late"))[0] == 201

    watched = await watching
    assert "configmap/late" in watched.stdout, watched.stderr


def test_a_watch_from_a_compacted_version_gets_410_expired(api, core, make_config_map):
    listing = core.list_namespaced_config_map("default")
    core.create_namespaced_config_map("default", make_config_map("c"))
    api.emulator.compact()

    since = listing.metadata.resource_version
    url = f"{api.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={since}"
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response.read().splitlines()]
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [("ERROR", 410, "Expired")]


async def test_kubectl_wait_for_delete_sees_the_deletion(api, custom, job):
    assert api.kubectl("apply", "-f", "-", input=yaml.safe_dump(job)).returncode == 0
    waiting = asyncio.create_task(asyncio.to_thread(
        api.kubectl, "wait", "--for=delete", "inferencejob/lobby", "--timeout=20s"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(r.verb == "watch" and r.resource == "inferencejobs" for r in api.requests):
        assert loop.time() < deadline, "kubectl wait never opened its watch"
        await asyncio.sleep(0.02)
    custom.delete_namespaced_custom_object("edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby")

    waited = await waiting
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
