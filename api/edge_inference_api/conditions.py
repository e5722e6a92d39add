"""metav1.Condition bookkeeping as pure functions (the clock is passed in)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from edge_inference_api.models import Condition, ConditionStatus

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"

# Reasons, CamelCase as in metav1.Condition.
HOST_PATH_NOT_ALLOWED = "HostPathNotAllowed"
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
INVALID_SPEC = "InvalidSpec"
SECRET_NOT_FOUND = "SecretNotFound"
CHILD_NAME_TAKEN = "ChildNameTaken"
CHILD_REJECTED = "ChildRejected"
NO_MATCHING_NODES = "NoMatchingNodes"
WORKLOADS_CREATED = "WorkloadsCreated"
WAITING_FOR_NODES = "WaitingForNodes"
ALL_NODES_READY = "AllNodesReady"
SOME_NODES_NOT_READY = "SomeNodesNotReady"
NODES_FAILED = "NodesFailed"
NODES_STALE = "NodesStale"
OUTBOX_BACKLOG = "OutboxBacklog"
SHARED_INPUT = "SharedInput"
BATCH_RUNNING = "BatchRunning"
BATCH_SUCCEEDED = "BatchSucceeded"
BATCH_FAILED = "BatchFailed"
AS_EXPECTED = "AsExpected"


def rfc3339(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    """Return the conditions with `type` set; lastTransitionTime moves only when status changes."""
    previous = next((c for c in conditions if c.type == type), None)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status
        else rfc3339(now)
    )
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type]
    return sorted([*others, updated], key=lambda c: c.type)


def find_condition(conditions: Sequence[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
