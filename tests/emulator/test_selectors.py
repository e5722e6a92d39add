"""Fix 6: label selectors (=, ==, !=, in, notin, exists, !exists) and field selectors on lists and watches."""

import itertools

import kubernetes
import pytest
from support.kube_emulator import ApiError, parse_label_selector

LABELS = {
    "gpu-a": {"accelerator": "nvidia", "camera-storage": "yes"},
    "cpu-a": {"accelerator": "cpu", "camera-storage": "yes"},
    "cpu-b": {"accelerator": "cpu"},
    "bare": {},
}


@pytest.fixture()
def labelled(core, make_config_map):
    for name, labels in LABELS.items():
        core.create_namespaced_config_map("default", make_config_map(name, labels=labels))


@pytest.mark.parametrize(("selector", "names"), [
    ("accelerator=cpu", {"cpu-a", "cpu-b"}),
    ("accelerator==nvidia", {"gpu-a"}),
    ("accelerator!=cpu", {"gpu-a", "bare"}),  # != also matches objects without the label
    ("accelerator in (nvidia, cpu)", {"gpu-a", "cpu-a", "cpu-b"}),
    ("accelerator notin (cpu)", {"gpu-a", "bare"}),
    ("camera-storage", {"gpu-a", "cpu-a"}),
    ("!camera-storage", {"cpu-b", "bare"}),
    ("camera-storage,accelerator=cpu", {"cpu-a"}),
    ("accelerator in (cpu),!camera-storage", {"cpu-b"}),
    ("", set(LABELS)),
])
def test_label_selectors_filter_lists(core, labelled, selector, names):
    listed = core.list_namespaced_config_map("default", label_selector=selector).items
    assert {c.metadata.name for c in listed} == names


def test_kubectl_selects_by_label(api, labelled):
    selected = api.kubectl("get", "configmaps", "-l", "accelerator in (cpu),camera-storage", "-o", "name")
    assert selected.stdout.split() == ["configmap/cpu-a"]


@pytest.mark.parametrize(("selector", "names"), [
    ("metadata.name=cpu-a", {"cpu-a"}),
    ("metadata.name!=cpu-a", {"gpu-a", "cpu-b", "bare"}),
    ("metadata.namespace=default,metadata.name==bare", {"bare"}),
    ("metadata.namespace=elsewhere", set()),
])
def test_field_selectors_filter_lists(core, labelled, selector, names):
    listed = core.list_config_map_for_all_namespaces(field_selector=selector).items
    assert {c.metadata.name for c in listed} == names


def test_unsupported_selectors_are_bad_requests(core, labelled):
    for kwargs in ({"field_selector": "data.k=v"}, {"label_selector": "a in b"}):
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.list_namespaced_config_map("default", **kwargs)
        assert refused.value.status == 400
    with pytest.raises(ApiError):
        parse_label_selector("a=b=c")


def test_a_selective_watch_sees_objects_enter_and_leave_its_selection(core, make_config_map):
    listing = core.list_namespaced_config_map("default")
    core.create_namespaced_config_map("default", make_config_map("n", labels={"accelerator": "cpu"}))
    core.patch_namespaced_config_map("n", "default", {"metadata": {"labels": {"accelerator": "nvidia"}}})
    core.patch_namespaced_config_map("n", "default", {"metadata": {"labels": {"zone": "b"}}})
    core.patch_namespaced_config_map("n", "default", {"metadata": {"labels": {"accelerator": "cpu"}}})

    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map, "default", label_selector="accelerator=nvidia",
        resource_version=listing.metadata.resource_version, timeout_seconds=3)
    events = [(e["type"], e["object"].metadata.labels["accelerator"]) for e in itertools.islice(stream, 3)]
    # Created as cpu: unseen. Relabelled nvidia: enters. Another label: still in. Back to cpu: leaves.
    assert events == [("ADDED", "nvidia"), ("MODIFIED", "nvidia"), ("DELETED", "cpu")]


def test_a_field_selected_watch_follows_one_object(core, make_config_map):
    listing = core.list_namespaced_config_map("default")
    for name in ("a", "b"):
        core.create_namespaced_config_map("default", make_config_map(name))
    stream = kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map, "default", field_selector="metadata.name=b",
        resource_version=listing.metadata.resource_version, timeout_seconds=3)
    assert [(e["type"], e["object"].metadata.name) for e in itertools.islice(stream, 1)] == [("ADDED", "b")]
