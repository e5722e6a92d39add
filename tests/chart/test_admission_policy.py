"""The host-path allow-list at admission: the chart's ValidatingAdmissionPolicy, evaluated with real CEL.

The policy's CEL runs here in cel-expr-python (Google's C++ CEL runtime, with the strings extension
that Kubernetes also enables), the way the API server runs it: matchConditions first, then the
variables, then each validation and, on refusal, its messageExpression. Every verdict is compared
with the operator's own check, edge_inference_api.hostpaths.host_path_refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cel_expr_python import cel
from cel_expr_python.ext.ext_strings import ExtStrings
from edge_inference_api.hostpaths import host_path_refusal
from support.helm import find_objects, render_chart

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


@dataclass(frozen=True)
class Verdict:
    evaluated: bool  # false when the matchConditions skip the request
    allowed: bool
    message: str


class AdmissionPolicy:
    """One rendered ValidatingAdmissionPolicy, compiled with real CEL."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.env = cel.NewEnv(
            variables={name: cel.Type.DYN for name in ("object", "oldObject", "request", "variables")},
            extensions=[ExtStrings()],
        )
        spec = policy["spec"]
        self.conditions = [self.env.compile(c["expression"]) for c in spec.get("matchConditions", [])]
        self.variables = [(v["name"], self.env.compile(v["expression"])) for v in spec.get("variables", [])]
        self.validations = [
            (self.env.compile(v["expression"]), self.env.compile(v["messageExpression"])) for v in spec["validations"]
        ]

    def review(self, operation: str, obj: dict, old: dict | None = None) -> Verdict:
        data: dict[str, Any] = {"object": obj, "oldObject": old, "request": {"operation": operation}}
        if not all(c.eval(data=data).plain_value() is True for c in self.conditions):
            return Verdict(evaluated=False, allowed=True, message="")
        data["variables"] = {}
        for name, expression in self.variables:
            data["variables"] = {**data["variables"], name: expression.eval(data=data).plain_value()}
        for expression, message in self.validations:
            if expression.eval(data=data).plain_value() is not True:
                return Verdict(evaluated=True, allowed=False, message=message.eval(data=data).plain_value())
        return Verdict(evaluated=True, allowed=True, message="")


def _named(objects: list[dict], kind: str, suffix: str) -> dict:
    (found,) = [o for o in find_objects(objects, kind) if o["metadata"]["name"].endswith(suffix)]
    return found


def _policy(allowed: list[str]) -> AdmissionPolicy:
    return AdmissionPolicy(_named(render_chart({"allowedHostPaths": allowed}), "ValidatingAdmissionPolicy", "-host-paths"))


def _job(host_path: str) -> dict:
    return {
        "apiVersion": "edgeinference.io/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": "lobby", "namespace": "default"},
        "spec": {"input": {"hostPath": host_path}, "output": {"endpoint": "minio:9000", "bucket": "events"}},
    }


@pytest.fixture(scope="module")
def policy() -> AdmissionPolicy:
    return _policy(ALLOWED)


def test_the_table_is_big_enough() -> None:
    assert len(HOSTILE_PATHS) >= 20


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_are_refused_at_admission(policy: AdmissionPolicy, path: str) -> None:
    verdict = policy.review("CREATE", _job(path))
    assert verdict.evaluated and not verdict.allowed
    assert "/var/lib/edge-video, /srv/nvr" in verdict.message
    assert host_path_refusal(path, ALLOWED) is not None  # the operator's re-check agrees


@pytest.mark.parametrize("path", ALLOWED_PATHS)
def test_paths_under_an_allowed_prefix_are_admitted(policy: AdmissionPolicy, path: str) -> None:
    assert policy.review("CREATE", _job(path)).allowed
    assert host_path_refusal(path, ALLOWED) is None


def test_nul_bytes_are_refused_by_the_operator() -> None:
    """Not in the CEL table: cel-expr-python's data binding cuts Python strings at a NUL byte.

    The policy does refuse '\\u0000' (a CEL literal is not cut; checked here), and the operator re-checks.
    """
    rendered = _named(render_chart(), "ValidatingAdmissionPolicy", "-host-paths")
    assert "!variables.path.contains('\\u0000')" in rendered["spec"]["validations"][0]["expression"]
    env = cel.NewEnv(extensions=[ExtStrings()])
    assert env.compile(r"'/var/lib/edge-video\u0000/x'.contains('\u0000')").eval().plain_value() is True
    assert host_path_refusal("/var/lib/edge-video\x00/x", ALLOWED) is not None


def test_changing_the_path_of_an_existing_job_is_checked(policy: AdmissionPolicy) -> None:
    verdict = policy.review("UPDATE", _job("/etc"), old=_job("/var/lib/edge-video/cam1"))
    assert verdict.evaluated and not verdict.allowed


def test_an_unchanged_path_is_not_rechecked_on_update(policy: AdmissionPolicy) -> None:
    """After the admin narrows the list, the operator can still patch (finalizers) jobs admitted before."""
    verdict = policy.review("UPDATE", _job("/mnt/old-cameras"), old=_job("/mnt/old-cameras"))
    assert not verdict.evaluated and verdict.allowed


def test_an_empty_allow_list_refuses_everything_and_says_so() -> None:
    verdict = _policy([]).review("CREATE", _job("/var/lib/edge-video"))
    assert not verdict.allowed and "none: the admin allowed no host paths" in verdict.message


def test_the_message_names_the_path_and_prefixes(policy: AdmissionPolicy) -> None:
    verdict = policy.review("CREATE", _job("/var/lib/edge-video2"))
    assert verdict.message == (
        "spec.input.hostPath /var/lib/edge-video2 is not allowed: it must be a clean absolute path under one of "
        "the allowed prefixes (/var/lib/edge-video, /srv/nvr)"
    )


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

IMAGE_VALUES = {"workerImages": {"cpu": {"repository": "registry.local/worker", "tag": "1.0"}, "allowed": ["registry.local/worker:1.1"]}}


@pytest.fixture(scope="module")
def image_policy() -> AdmissionPolicy:
    return AdmissionPolicy(_named(render_chart(IMAGE_VALUES), "ValidatingAdmissionPolicy", "-worker-images"))


def _job_with_images(*images: str | None) -> dict:
    job = _job("/var/lib/edge-video")
    job["spec"]["accelerators"] = [
        {"type": f"kind{i}", **({"image": image} if image else {})} for i, image in enumerate(images)
    ]
    return job


@pytest.mark.parametrize(
    "images",
    [(None,), ("registry.local/worker:1.0",), ("registry.local/worker:1.1", None), ("ghcr.io/edge-inference/worker-cuda:0.1.0",)],
)
def test_the_admins_images_are_admitted(image_policy: AdmissionPolicy, images: tuple) -> None:
    assert image_policy.review("CREATE", _job_with_images(*images)).allowed


@pytest.mark.parametrize("image", ["attacker/root-shell:1", "registry.local/worker:1.0 ", "registry.local/worker"])
def test_an_image_the_admin_did_not_allow_is_refused(image_policy: AdmissionPolicy, image: str) -> None:
    verdict = image_policy.review("CREATE", _job_with_images(None, image))
    assert verdict.evaluated and not verdict.allowed
    assert verdict.message == (
        f"spec.accelerators[].image {image} is not allowed; allowed images: "
        "ghcr.io/edge-inference/worker-cuda:0.1.0, registry.local/worker:1.0, registry.local/worker:1.1"
    )


def test_changing_the_image_of_an_existing_job_is_checked(image_policy: AdmissionPolicy) -> None:
    verdict = image_policy.review("UPDATE", _job_with_images("evil:1"), old=_job_with_images(None))
    assert verdict.evaluated and not verdict.allowed
