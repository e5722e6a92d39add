"""Specs whose worker pods the API server would refuse (the review's table), shared by the model's
tests (tests/api) and the admission tests on the real API server (tests/operator)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from support.jobs import MINIMAL_SPEC


def spec_with(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL_SPEC with the dotted `path` set to `value`."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    *parents, last = path.split(".")
    node = spec
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return spec


# An image reference with every part (registry port, tag, digest); the test cluster's chart allows it.
PINNED_IMAGE = "registry.local:5000/edge/worker:0.1.0@sha256:" + "a" * 64


@dataclasses.dataclass(frozen=True)
class RefusedSpec:
    """A spec the review found, and where each layer refuses it."""

    id: str
    path: str  # the dotted field set on BASE_SPEC
    value: Any
    message: str  # in the model's (the operator's) refusal
    where: str | None  # the field the API server names at `kubectl apply`; None: only the operator refuses


REFUSED = [
    RefusedSpec(
        "memory-request-over-default-limit",
        "resources",
        {"requests": {"memory": "4Gi"}},
        "at most its resources.limits",
        "spec.resources",
    ),
    RefusedSpec(
        "cpu-limit-under-default-request", "resources", {"limits": {"cpu": "200m"}}, "cpu 500m > 200m", "spec.resources"
    ),
    RefusedSpec(
        "toleration-exists-with-value",
        "tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        "Exists must not have a value",
        "spec.tolerations[0]",
    ),
    RefusedSpec(
        "toleration-no-key-equal",
        "tolerations",
        [{"operator": "Equal", "value": "v"}],
        "without a key must use operator Exists",
        "spec.tolerations[0]",
    ),
    RefusedSpec(
        "toleration-seconds-noschedule",
        "tolerations",
        [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30}],
        "only allowed with effect NoExecute",
        "spec.tolerations[0]",
    ),
    RefusedSpec(
        "toleration-bad-key",
        "tolerations",
        [{"key": "bad key!", "operator": "Exists"}],
        "String should match pattern",
        "spec.tolerations[0].key",
    ),
    RefusedSpec(
        "node-selector-bad-key", "nodeSelector", {"bad key!": "x"}, "String should match pattern", "spec.nodeSelector"
    ),
    RefusedSpec(
        "secret-bad-name",
        "output.credentialsSecretRef",
        {"name": "Bad Name!"},
        "String should match pattern",
        "spec.output.credentialsSecretRef.name",
    ),
    RefusedSpec(
        "secret-empty-access-key-key",
        "output.credentialsSecretRef",
        {"name": "s3", "accessKeyKey": ""},
        "at least 1 character",
        "spec.output.credentialsSecretRef.accessKeyKey",
    ),
    RefusedSpec(
        "secret-key-key-with-slash",
        "output.credentialsSecretRef",
        {"name": "s3", "secretKeyKey": "a/b"},
        "String should match pattern",
        "spec.output.credentialsSecretRef.secretKeyKey",
    ),
    RefusedSpec(
        "runtime-class-bad",
        "accelerators",
        [{"type": "cpu", "runtimeClassName": "Bad_Class"}],
        "String should match pattern",
        "spec.accelerators[0].runtimeClassName",
    ),
    RefusedSpec(
        "image-leading-space",
        "accelerators",
        [{"type": "cpu", "image": " worker:1"}],
        "String should match pattern",
        "spec.accelerators[0].image",
    ),
    RefusedSpec(
        "resource-named-gpu",
        "resources",
        {"limits": {"gpu": "1"}},
        "'cpu', 'memory' or 'ephemeral-storage'",
        "spec.resources.limits",
    ),
    RefusedSpec(
        "nvidia-zero-gpus",
        "accelerators",
        [{"type": "nvidia", "gpus": 0}],
        "gpus must be at least 1 for type nvidia",
        "spec.accelerators[0]",
    ),
    RefusedSpec(
        "host-path-newline", "input.hostPath", "/srv/video/lobby\n/etc", "control characters", "spec.input.hostPath"
    ),
    RefusedSpec(
        "host-path-long-segment",
        "input.hostPath",
        "/srv/video/" + "a" * 256,
        "at most 255 bytes",
        "spec.input.hostPath",
    ),
    # 128 characters, 256 bytes: the CRD's rule counts characters (CEL's cost budget), the operator bytes.
    RefusedSpec(
        "host-path-long-multibyte-segment", "input.hostPath", "/srv/video/" + "\u00e9" * 128, "at most 255 bytes", None
    ),
    RefusedSpec("bucket-double-dot", "output.bucket", "a..b", "must not contain '..'", "spec.output.bucket"),
    RefusedSpec("bucket-ip-shaped", "output.bucket", "192.168.10.1", "IP address", "spec.output.bucket"),
    RefusedSpec("bucket-xn-prefix", "output.bucket", "xn--events", "must not start with xn--", "spec.output.bucket"),
    RefusedSpec(
        "model-bucket-double-dot",
        "model",
        {"source": {"bucket": "a..b", "key": "m.pt", "sha256": "0" * 64}},
        "'..'",
        "spec.model.source.bucket",
    ),
    RefusedSpec(
        "endpoint-port-too-big", "output.endpoint", "minio:65536", "String should match pattern", "spec.output.endpoint"
    ),
    RefusedSpec(
        "endpoint-port-zero", "output.endpoint", "minio:0", "String should match pattern", "spec.output.endpoint"
    ),
]

ACCEPTED = [
    ("toleration-exists-no-key", "tolerations", [{"operator": "Exists"}]),
    (
        "toleration-noexecute-seconds",
        "tolerations",
        [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 5, "value": "v"}],
    ),
    ("prefixed-node-selector", "nodeSelector", {"topology.kubernetes.io/zone": "lobby"}),
    ("requests-equal-limits", "resources", {"requests": {"memory": "2048Mi"}, "limits": {"memory": "2Gi"}}),
    ("cpu-in-cores", "resources", {"requests": {"cpu": "0.5"}, "limits": {"cpu": "1", "memory": "2Gi"}}),
    ("nvidia-one-gpu", "accelerators", [{"type": "nvidia", "gpus": 1, "runtimeClassName": "nvidia"}]),
    ("image-with-registry-port-and-digest", "accelerators", [{"type": "cpu", "image": PINNED_IMAGE}]),
    ("endpoint-highest-port", "output.endpoint", "minio:65535"),
    ("bucket-with-dots", "output.bucket", "events.site-7"),
    ("host-path-255-byte-segment", "input.hostPath", "/srv/video/" + "a" * 255),
]
