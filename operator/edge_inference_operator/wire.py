"""Kubernetes' protobuf encoding, for the two collections that grow with the fleet: pods and nodes.

At 5,000 nodes and 10,000 worker pods, decoding the pods' LIST pages from JSON (about 115 MB) was half of
the operator's start-up CPU; the API server serves either encoding in about the same time
(docs/benchmarks.md, "Operator at fleet scale", bench/operator_startup.py). So the cache reads pods and
nodes in protobuf, parsed in C by the protobuf runtime with the API's own schema (kubeproto/, generated),
and turns each object straight into the JSON-shaped subset that the cache keeps: what a JSON body would
hold under the same keys, empty strings left out as the API server's JSON leaves them out. Nothing else
of the object becomes a Python object. Everything else (InferenceJobs, DaemonSets, Jobs, writes) stays JSON.

Framing (k8s.io/apimachinery/pkg/runtime/serializer/protobuf): a body is the 4 bytes "k8s\\0" and a
runtime.Unknown that holds the object's kind and bytes; a watch stream is a sequence of frames, each a
4-byte big-endian length and a meta.v1.WatchEvent, whose object is such a body.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from google.protobuf.message import DecodeError, Message

from edge_inference_operator.kubeproto import core_v1_pb2 as core
from edge_inference_operator.kubeproto import meta_v1_pb2 as meta
from edge_inference_operator.kubeproto import runtime_pb2 as runtime

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
FRAME_HEADER = 4  # bytes of a watch frame's length


class WireError(ValueError):
    """A body or frame that is not Kubernetes' protobuf encoding of what was asked for."""


def _time(value: meta.Time) -> str | None:
    """A meta.v1.Time as the API server writes it in JSON (RFC 3339, whole seconds, UTC)."""
    if not value.HasField("seconds"):
        return None
    return datetime.datetime.fromtimestamp(value.seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strings(**fields: str | None) -> dict[str, str]:
    """The fields that are not empty (JSON leaves empty strings out: `omitempty`)."""
    return {key: value for key, value in fields.items() if value}


def _object_meta(value: meta.ObjectMeta) -> dict[str, Any]:
    fields: dict[str, Any] = _strings(name=value.name, namespace=value.namespace,
                                      resourceVersion=value.resourceVersion,
                                      creationTimestamp=_time(value.creationTimestamp))  # fmt: skip
    if value.labels:
        fields["labels"] = dict(value.labels)
    return fields


def _container_state(state: core.ContainerState) -> dict[str, Any]:
    """Which of waiting/running/terminated is set, with its reason and message."""
    found: dict[str, Any] = {}
    for kind in ("waiting", "running", "terminated"):
        if state.HasField(kind):
            detail = getattr(state, kind)
            found[kind] = _strings(reason=getattr(detail, "reason", ""), message=getattr(detail, "message", ""))
    return found


def _container_statuses(statuses: Iterable[core.ContainerStatus]) -> list[dict[str, Any]]:
    return [
        {"name": s.name, "state": _container_state(s.state), "lastState": _container_state(s.lastState)}
        for s in statuses
    ]


def pod(value: core.Pod) -> dict[str, Any]:
    """The parts of a pod that cache.pod_summary keeps, under its JSON keys."""
    spec, status = value.spec, value.status
    containers = [
        {"name": c.name, "ports": [{**_strings(name=p.name), "containerPort": p.containerPort} for p in c.ports]}
        for c in spec.containers
    ]
    return {
        "metadata": _object_meta(value.metadata),
        "spec": {**_strings(nodeName=spec.nodeName), "containers": containers},
        "status": {
            **_strings(phase=status.phase, podIP=status.podIP),
            "conditions": [_strings(type=c.type, status=c.status) for c in status.conditions if c.type == "Ready"],
            "containerStatuses": _container_statuses(status.containerStatuses),
            "initContainerStatuses": _container_statuses(status.initContainerStatuses),
        },
    }


def node(value: core.Node) -> dict[str, Any]:
    """The parts of a node that placement.NodeInfo keeps, under its JSON keys."""
    taints = [_strings(key=t.key, value=t.value, effect=t.effect) for t in value.spec.taints]
    return {"metadata": _object_meta(value.metadata), "spec": {"taints": taints}}


@dataclasses.dataclass(frozen=True)
class Codec:
    """How one collection is decoded: its list and item messages, and the item's JSON-shaped subset."""

    kind: str
    list_type: type[Message]
    item_type: type[Message]
    to_dict: Callable[[Any], dict[str, Any]]


PODS = Codec("Pod", core.PodList, core.Pod, pod)
NODES = Codec("Node", core.NodeList, core.Node, node)


def _unwrap(body: bytes) -> tuple[str, bytes]:
    """(kind, encoded object) of a protobuf body."""
    if not body.startswith(MAGIC):
        raise WireError(f"not Kubernetes protobuf (starts {body[:8]!r})")
    envelope = runtime.Unknown()
    try:
        envelope.ParseFromString(body[len(MAGIC) :])
    except DecodeError as error:
        raise WireError(f"undecodable envelope: {error}") from None
    return envelope.typeMeta.kind, envelope.raw


def _parse(message_type: type[Message], data: bytes) -> Any:
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise WireError(f"undecodable {message_type.__name__}: {error}") from None
    return message


def decode_list(codec: Codec, body: bytes) -> dict[str, Any]:
    """A LIST answer: `metadata` (resourceVersion, continue) and the `items`, JSON-shaped."""
    kind, data = _unwrap(body)
    if kind != f"{codec.kind}List":
        raise WireError(f"expected a {codec.kind}List, got {kind!r}")
    answer = _parse(codec.list_type, data)
    listed = answer.metadata  # its field `continue` is a Python keyword
    metadata = _strings(resourceVersion=listed.resourceVersion, **{"continue": getattr(listed, "continue")})
    return {"metadata": metadata, "items": [codec.to_dict(item) for item in answer.items]}


def _status(value: meta.Status) -> dict[str, Any]:
    return {"kind": "Status", "code": value.code, **_strings(reason=value.reason, message=value.message)}


def decode_event(codec: Codec, frame: bytes) -> dict[str, Any]:
    """One watch frame (without its length): `type` and `object`, JSON-shaped (an ERROR's object is a Status)."""
    event = _parse(meta.WatchEvent, frame)
    kind, data = _unwrap(event.object.raw)
    if kind == "Status":
        return {"type": event.type, "object": _status(_parse(meta.Status, data))}
    if kind != codec.kind:
        raise WireError(f"expected a {codec.kind} in the watch, got {kind!r}")
    return {"type": event.type, "object": codec.to_dict(_parse(codec.item_type, data))}


def frames(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The frames of a protobuf watch stream, as its chunks arrive."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= FRAME_HEADER:
            size = int.from_bytes(pending[:FRAME_HEADER], "big")
            if len(pending) < FRAME_HEADER + size:
                break
            yield bytes(pending[FRAME_HEADER : FRAME_HEADER + size])
            del pending[: FRAME_HEADER + size]
