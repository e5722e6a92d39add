"""The reconciler's pure edge: parsing a job body into a ParsedJob or a Refusal with a specific reason.

This is the operator's own check, which holds even where the API server's CEL rules do not run.
"""

from __future__ import annotations

import pytest
from edge_inference_api import conditions
from edge_inference_operator.builders import ParsedJob
from edge_inference_operator.reconcile import Refusal, batch_targets, check_job, previous_status
from edge_inference_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(allowed_host_paths=("/srv/video",), allowed_worker_images=("registry.local/worker:2",))


def body(make_body, **spec) -> dict:
    manifest = make_body(**spec)
    manifest["metadata"]["uid"] = "u-1"
    return manifest


@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        ({"input": {"hostPath": "/srv/video/../../etc"}}, conditions.HOST_PATH_NOT_ALLOWED, "'..' segments"),
        ({"input": {"hostPath": "/srv/video//x"}}, conditions.HOST_PATH_NOT_ALLOWED, "empty segments"),
        ({"input": {"hostPath": "srv/video"}}, conditions.HOST_PATH_NOT_ALLOWED, "absolute"),
        ({"input": {"hostPath": "/srv/video\x00/x"}}, conditions.HOST_PATH_NOT_ALLOWED, "control characters"),
        ({"input": {"hostPath": "/srv/video2"}}, conditions.HOST_PATH_NOT_ALLOWED, "allowed prefixes: /srv/video"),
        ({"input": {"hostPath": "/srv"}}, conditions.HOST_PATH_NOT_ALLOWED, "allowed prefixes: /srv/video"),
        (
            {"accelerators": [{"type": "cpu"}, {"type": "cpu"}]},
            conditions.INVALID_SPEC,
            "accelerator types must be unique",
        ),
        ({"model": {"device": "cuda"}}, conditions.INVALID_SPEC, "no GPU"),
        ({"sampling": {"fps": 0}}, conditions.INVALID_SPEC, "spec.sampling.fps"),
        ({"output": {"endpoint": "s3", "bucket": "b"}}, conditions.INVALID_SPEC, "spec.output"),
        ({"surprise": True}, conditions.INVALID_SPEC, "spec.surprise"),
        (
            {"accelerators": [{"type": "cpu", "image": "attacker/root-shell:1"}]},
            conditions.IMAGE_NOT_ALLOWED,
            "attacker/root-shell:1 is not allowed; allowed images: ghcr.io/edge-inference/worker-cuda:0.1.0, "
            "ghcr.io/edge-inference/worker:0.1.0, registry.local/worker:2",
        ),
    ],
)
def test_refusals_have_specific_reasons(make_body, spec: dict, reason: str, fragment: str) -> None:
    refusal = check_job(body(make_body, **spec), SETTINGS)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == reason and fragment in refusal.message, refusal


@pytest.mark.parametrize("image", [None, "ghcr.io/edge-inference/worker-cuda:0.1.0", "registry.local/worker:2"])
def test_the_admins_images_may_be_picked(make_body, image: str | None) -> None:
    accelerator = {"type": "cpu", **({"image": image} if image else {})}
    assert isinstance(check_job(body(make_body, accelerators=[accelerator]), SETTINGS), ParsedJob)


def test_a_valid_job_parses(make_body) -> None:
    parsed = check_job(body(make_body, input={"hostPath": "/srv/video/lobby"}), SETTINGS)
    assert isinstance(parsed, ParsedJob) and (parsed.namespace, parsed.name, parsed.uid) == ("default", "lobby", "u-1")


def test_an_unreadable_status_is_rebuilt() -> None:
    assert previous_status({"status": {"phase": "Exploded"}}).phase is None


def test_batch_targets_are_fixed_once_recorded() -> None:
    matched_now = {"a": "cpu", "c": "cpu"}
    first = previous_status({})
    assert batch_targets(first, matched_now, []) == matched_now
    recorded = previous_status({"status": {"targetNodes": ["a", "b"]}})
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
    child = {
        "metadata": {"labels": {"edgeinference.io/accelerator": "nvidia"}},
        "spec": {
            "template": {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                        }
                    }
                }
            }
        },
    }
    # b no longer matches but its Job tells its kind; c matches now but was not a target.
    assert batch_targets(recorded, matched_now, [child]) == {"a": "cpu", "b": "nvidia"}
