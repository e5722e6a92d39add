"""Specs whose worker pods the API server would refuse are refused when the job is applied.

Each row is a spec the review found (its DaemonSet or Jobs got a 422, and the job a blank status),
or one of the smaller holes. The model (what the operator checks) refuses every row with a message
that says what is wrong; the CRD's own rules (CEL and patterns, run by the API server at apply)
are checked against the real API server in tests/operator.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from edge_inference_api.models import InferenceJobSpec
from pydantic import ValidationError

BASE_SPEC: dict[str, Any] = {
    "input": {"hostPath": "/srv/video/lobby"},
    "output": {"endpoint": "minio.storage:9000", "bucket": "events", "credentialsSecretRef": {"name": "s3"}},
}


def spec_with(path: str, value: Any) -> dict[str, Any]:
    """BASE_SPEC with the dotted `path` set to `value`."""
    spec = copy.deepcopy(BASE_SPEC)
    *parents, last = path.split(".")
    node = spec
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return spec


# (id, dotted field, value, what the refusal says)
REFUSED = [
    ("memory-request-over-default-limit", "resources", {"requests": {"memory": "4Gi"}}, "at most its resources.limits"),
    ("cpu-limit-under-default-request", "resources", {"limits": {"cpu": "200m"}}, "cpu 500m > 200m"),
    ("toleration-exists-with-value", "tolerations", [{"key": "k", "operator": "Exists", "value": "v"}], "Exists must not have a value"),
    ("toleration-no-key-equal", "tolerations", [{"operator": "Equal", "value": "v"}], "without a key must use operator Exists"),
    ("toleration-seconds-noschedule", "tolerations", [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30}], "only allowed with effect NoExecute"),
    ("toleration-bad-key", "tolerations", [{"key": "bad key!", "operator": "Exists"}], "String should match pattern"),
    ("node-selector-bad-key", "nodeSelector", {"bad key!": "x"}, "String should match pattern"),
    ("secret-bad-name", "output.credentialsSecretRef", {"name": "Bad Name!"}, "String should match pattern"),
    ("secret-empty-access-key-key", "output.credentialsSecretRef", {"name": "s3", "accessKeyKey": ""}, "at least 1 character"),
    ("secret-key-key-with-slash", "output.credentialsSecretRef", {"name": "s3", "secretKeyKey": "a/b"}, "String should match pattern"),
    ("runtime-class-bad", "accelerators", [{"type": "cpu", "runtimeClassName": "Bad_Class"}], "String should match pattern"),
    ("image-leading-space", "accelerators", [{"type": "cpu", "image": " worker:1"}], "String should match pattern"),
    ("resource-named-gpu", "resources", {"limits": {"gpu": "1"}}, "'cpu', 'memory' or 'ephemeral-storage'"),
    ("nvidia-zero-gpus", "accelerators", [{"type": "nvidia", "gpus": 0}], "gpus must be at least 1 for type nvidia"),
    ("host-path-newline", "input.hostPath", "/srv/video/lobby\n/etc", "control characters"),
    ("host-path-long-segment", "input.hostPath", "/srv/video/" + "a" * 256, "at most 255 bytes"),
    ("host-path-long-multibyte-segment", "input.hostPath", "/srv/video/" + "\u00e9" * 128, "at most 255 bytes"),
    ("bucket-double-dot", "output.bucket", "a..b", "must not contain '..'"),
    ("bucket-ip-shaped", "output.bucket", "192.168.10.1", "IP address"),
    ("bucket-xn-prefix", "output.bucket", "xn--events", "must not start with xn--"),
    ("model-bucket-double-dot", "model", {"source": {"bucket": "a..b", "key": "m.pt", "sha256": "0" * 64}}, "'..'"),
    ("endpoint-port-too-big", "output.endpoint", "minio:65536", "String should match pattern"),
    ("endpoint-port-zero", "output.endpoint", "minio:0", "String should match pattern"),
]

ACCEPTED = [
    ("toleration-exists-no-key", "tolerations", [{"operator": "Exists"}]),
    ("toleration-noexecute-seconds", "tolerations", [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 5, "value": "v"}]),
    ("prefixed-node-selector", "nodeSelector", {"topology.kubernetes.io/zone": "lobby"}),
    ("requests-equal-limits", "resources", {"requests": {"memory": "2048Mi"}, "limits": {"memory": "2Gi"}}),
    ("cpu-in-cores", "resources", {"requests": {"cpu": "0.5"}, "limits": {"cpu": "1", "memory": "2Gi"}}),
    ("nvidia-one-gpu", "accelerators", [{"type": "nvidia", "gpus": 1, "runtimeClassName": "nvidia"}]),
    ("image-with-registry-port-and-digest", "accelerators", [{"type": "cpu", "image": "registry.local:5000/edge/worker:0.1.0@sha256:" + "a" * 64}]),
    ("endpoint-highest-port", "output.endpoint", "minio:65535"),
    ("bucket-with-dots", "output.bucket", "events.site-7"),
    ("host-path-255-byte-segment", "input.hostPath", "/srv/video/" + "a" * 255),
]


def test_the_review_table_is_all_here() -> None:
    assert len(REFUSED) >= 13


@pytest.mark.parametrize(("path", "value", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_the_model_refuses_specs_whose_pods_the_api_server_would_refuse(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        InferenceJobSpec.model_validate(spec_with(path, value))
    assert message in str(refused.value)


@pytest.mark.parametrize(("path", "value"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_the_model_accepts_what_kubernetes_accepts(path: str, value: Any) -> None:
    InferenceJobSpec.model_validate(spec_with(path, value))
