"""The host-path allow-list at admission: the chart, installed by Helm into a real control plane,
refuses at `kubectl apply` every hostile path of the table.

The API server runs the CRD's schema and CEL rules (what is wrong with the path itself), then the
chart's ValidatingAdmissionPolicy (which names the allowed prefixes). Every verdict is compared
with the operator's own check, edge_inference_api.hostpaths.host_path_refusal.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from edge_inference_api.hostpaths import host_path_refusal
from edge_inference_api.models import host_path_problem
from support.admission import POLICY_REFUSAL, apply_job, chart_cluster, wait_for_policy
from support.controlplane import ControlPlane
from support.helm import find_objects, render_chart, upgrade_chart
from support.jobs import minimal_job

ALLOWED = ["/var/lib/edge-video", "/srv/nvr"]

HOSTILE_PATHS = [
    "/var/lib/edge-video/..",
    "/var/lib/edge-video/../../etc",
    "/var/lib/edge-video/../edge-video/cam1",  # resolves inside, still refused: no '..' at all
    "/var/lib/edge-video/cam1/../../../root/.ssh",
    "/var/lib/edge-video/../",
    "/var/lib/edge-video/./cam1",
    "/var/lib/./edge-video",
    "/var/lib/edge-video//etc",
    "//var/lib/edge-video",
    "/var/lib/edge-video2",  # prefix trick: a sibling, not a child
    "/var/lib/edge-video2/cam1",
    "/var/lib/edge-video-other/cam1",
    "/var/lib/edge-vide",
    "/var/lib/EDGE-VIDEO/cam1",
    "/var/lib/edge\u2010video/cam1",  # a Unicode hyphen lookalike
    "/var/lib",
    "/var",
    "/",
    "/etc",
    "/proc/self/root/var/lib/edge-video",
    "/srv/nvr-backup",
    "/srv",
    "var/lib/edge-video",
    "./var/lib/edge-video",
    "../var/lib/edge-video",
    " /var/lib/edge-video",
    "",
    "/var/lib/edge-video%2F..%2Fetc",
    "/var/lib/edge-video/cam1\x00",  # NUL: a control character, refused by the CRD's own rule
]

ALLOWED_PATHS = [
    "/var/lib/edge-video",
    "/var/lib/edge-video/",
    "/var/lib/edge-video/cam1",
    "/var/lib/edge-video/cam1/2026-11-26",
    "/var/lib/edge-video/...",  # a folder literally named '...': no traversal
    "/var/lib/edge-video/.hidden",
    "/var/lib/edge-video/..cam",
    "/srv/nvr",
    "/srv/nvr/site-7",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this module's own, with the chart installed (allowedHostPaths = ALLOWED)."""
    with chart_cluster(tmp_path_factory.mktemp("admission"), ALLOWED) as plane:
        yield plane


def test_the_table_is_big_enough() -> None:
    assert len(HOSTILE_PATHS) >= 20


@pytest.mark.parametrize("index", range(len(HOSTILE_PATHS)))
def test_hostile_paths_are_refused_at_kubectl_apply(cluster: ControlPlane, index: int) -> None:
    path = HOSTILE_PATHS[index]
    result = apply_job(cluster, f"hostile-{index}", path)
    assert result.returncode != 0, f"{path!r} was admitted"
    problem = host_path_problem(path)
    if problem is None:  # clean on its own: the policy refuses, naming the prefixes
        assert POLICY_REFUSAL in result.stderr and "(/var/lib/edge-video, /srv/nvr)" in result.stderr
    else:  # the CRD's own rules say what is wrong with the path
        assert problem in result.stderr or ("should be at least 1 chars long" in result.stderr and path == "")
    assert host_path_refusal(path, ALLOWED) is not None  # the operator's re-check agrees


@pytest.mark.parametrize("index", range(len(ALLOWED_PATHS)))
def test_paths_under_an_allowed_prefix_are_admitted(cluster: ControlPlane, index: int) -> None:
    path = ALLOWED_PATHS[index]
    result = apply_job(cluster, f"allowed-{index}", path)
    assert result.returncode == 0, result.stderr
    assert host_path_refusal(path, ALLOWED) is None


def test_changing_the_path_of_an_existing_job_is_checked(cluster: ControlPlane) -> None:
    assert apply_job(cluster, "moved", "/var/lib/edge-video/cam1").returncode == 0
    moved = apply_job(cluster, "moved", "/etc")
    assert moved.returncode != 0 and POLICY_REFUSAL in moved.stderr


def test_the_message_names_the_path_and_prefixes(cluster: ControlPlane) -> None:
    result = apply_job(cluster, "sibling", "/var/lib/edge-video2")
    assert (
        "spec.input.hostPath /var/lib/edge-video2 is not allowed: it must be a clean absolute path under one of "
        "the allowed prefixes (/var/lib/edge-video, /srv/nvr)"
    ) in result.stderr


def test_an_unchanged_path_is_not_rechecked_on_update(cluster: ControlPlane) -> None:
    """After the admin narrows the list, jobs admitted before can still be updated (the operator's
    patches, a user's label) as long as their path stays; then an empty list refuses everything."""
    assert apply_job(cluster, "old-cameras", "/srv/nvr/old").returncode == 0
    try:
        upgrade_chart(cluster.kubeconfig, {"allowedHostPaths": []})
        wait_for_policy(cluster, [])
        relabelled = apply_job(cluster, "old-cameras", "/srv/nvr/old", labels={"team": "a"})
        assert relabelled.returncode == 0, relabelled.stderr
        refused = apply_job(cluster, "new-cameras", "/var/lib/edge-video")
        assert refused.returncode != 0 and "none: the admin allowed no host paths" in refused.stderr
    finally:
        upgrade_chart(cluster.kubeconfig, {"allowedHostPaths": ALLOWED})
        wait_for_policy(cluster, ALLOWED)


def _named(objects: list[dict], kind: str, suffix: str) -> dict:
    (found,) = [o for o in find_objects(objects, kind) if o["metadata"]["name"].endswith(suffix)]
    return found


@pytest.mark.parametrize("suffix", ["-host-paths", "-worker-images"])
def test_policy_matches_inference_jobs_and_is_bound(suffix: str) -> None:
    objects = render_chart()
    policy = _named(objects, "ValidatingAdmissionPolicy", suffix)
    binding = _named(objects, "ValidatingAdmissionPolicyBinding", suffix)
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["edgeinference.io"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["inferencejobs"],
        }
    ]
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}


def test_policy_can_be_switched_off() -> None:
    objects = render_chart(
        {"admissionPolicy": {"enabled": False, "validationActions": ["Deny"], "failurePolicy": "Fail"}}
    )
    assert not find_objects(objects, "ValidatingAdmissionPolicy")
    assert not find_objects(objects, "ValidatingAdmissionPolicyBinding")


# ---------------------------------------------------------------------------------- worker images

IMAGE_VALUES = {
    "workerImages": {
        "cpu": {"repository": "registry.local/worker", "tag": "1.0"},
        "allowed": ["registry.local/worker:1.1"],
    }
}
ALLOWED_IMAGES = "ghcr.io/edge-inference/worker-cuda:0.1.0, registry.local/worker:1.0, registry.local/worker:1.1"


@pytest.fixture(scope="module")
def image_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane with the chart installed with an image map and allow-list of its own."""
    with chart_cluster(tmp_path_factory.mktemp("images"), ALLOWED, IMAGE_VALUES) as plane:
        yield plane


def apply_with_images(plane: ControlPlane, name: str, *images: str | None) -> subprocess.CompletedProcess[str]:
    manifest = minimal_job(name, "/var/lib/edge-video/cam1")
    manifest["spec"]["accelerators"] = [
        {"type": f"kind{i}", **({"image": image} if image else {})} for i, image in enumerate(images)
    ]
    return plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


@pytest.mark.parametrize(
    "images",
    [
        (None,),
        ("registry.local/worker:1.0",),
        ("registry.local/worker:1.1", None),
        ("ghcr.io/edge-inference/worker-cuda:0.1.0",),
    ],
)
def test_the_admins_images_are_admitted(image_cluster: ControlPlane, images: tuple) -> None:
    result = apply_with_images(image_cluster, f"admitted-{len(images)}-{abs(hash(images)) % 10**6}", *images)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("image", ["attacker/root-shell:1", "registry.local/worker:2.0", "registry.local/worker"])
def test_an_image_the_admin_did_not_allow_is_refused_at_kubectl_apply(image_cluster: ControlPlane, image: str) -> None:
    result = apply_with_images(image_cluster, "refused", None, image)
    assert result.returncode != 0
    assert f"spec.accelerators[].image {image} is not allowed; allowed images: {ALLOWED_IMAGES}" in result.stderr


def test_changing_the_image_of_an_existing_job_is_checked(image_cluster: ControlPlane) -> None:
    assert apply_with_images(image_cluster, "changed", None).returncode == 0
    changed = apply_with_images(image_cluster, "changed", "evil:1")
    assert changed.returncode != 0 and "evil:1 is not allowed" in changed.stderr
