"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status changes."""

from __future__ import annotations

import datetime

import pytest
from edge_inference_api.conditions import find_condition, rfc3339, set_condition
from edge_inference_api.models import Condition, ConditionStatus

T0 = datetime.datetime(2026, 11, 26, 6, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=10)
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def ready(status: ConditionStatus, reason: str = "AllNodesReady", at: datetime.datetime = T0) -> Condition:
    return Condition(type="Ready", status=status, reason=reason, message="m", last_transition_time=rfc3339(at))


CASES = [
    # (before, new status, new reason, expected lastTransitionTime)
    (None, TRUE, "AllNodesReady", rfc3339(T1)),  # new condition: now
    (ready(TRUE), TRUE, "AllNodesReady", rfc3339(T0)),  # unchanged: kept
    (ready(TRUE), TRUE, "OtherReason", rfc3339(T0)),  # only the reason changed: kept
    (ready(TRUE), FALSE, "SomeNodesNotReady", rfc3339(T1)),  # status flipped: now
    (ready(FALSE, "NoMatchingNodes"), UNKNOWN, "Unknown", rfc3339(T1)),
    (ready(UNKNOWN, "Unknown"), UNKNOWN, "Unknown", rfc3339(T0)),
]


@pytest.mark.parametrize(("before", "status", "reason", "expected"), CASES)
def test_last_transition_time(before, status, reason, expected) -> None:
    conditions = [before] if before else []
    after = set_condition(conditions, type="Ready", status=status, reason=reason, message="x", generation=4, now=T1)
    (cond,) = after
    assert cond.last_transition_time == expected
    assert (cond.status, cond.reason, cond.message, cond.observed_generation) == (status, reason, "x", 4)


def test_other_conditions_are_kept_and_sorted() -> None:
    degraded = Condition(type="Degraded", status=FALSE, reason="AsExpected", last_transition_time=rfc3339(T0))
    after = set_condition(
        [ready(TRUE), degraded],
        type="Progressing",
        status=TRUE,
        reason="WorkloadsCreated",
        message="",
        generation=1,
        now=T1,
    )
    assert [c.type for c in after] == ["Degraded", "Progressing", "Ready"]
    assert find_condition(after, "Degraded") == degraded and find_condition(after, "Missing") is None


def test_input_is_not_mutated() -> None:
    conditions = [ready(TRUE)]
    set_condition(conditions, type="Ready", status=FALSE, reason="X", message="", generation=1, now=T1)
    assert conditions == [ready(TRUE)]


@pytest.mark.parametrize("reason", ["", "lower case", "Has Space", "Trailing-", "1Digit"])
def test_reasons_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError):
        Condition(type="Ready", status=TRUE, reason=reason, last_transition_time=rfc3339(T0))


def test_rfc3339_is_utc_with_seconds() -> None:
    other_zone = T0.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert rfc3339(other_zone) == "2026-11-26T06:00:00Z"
