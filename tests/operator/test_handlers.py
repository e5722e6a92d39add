"""Which child events make the operator reconcile at once (a pure rule, no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from edge_inference_operator.handlers import needs_reconcile


def job(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {"kind": "Job", "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}


@pytest.mark.parametrize(
    ("event_type", "child", "expected"),
    [
        ("DELETED", {"kind": "DaemonSet"}, True),
        ("DELETED", job(), True),
        ("MODIFIED", job(("Complete", "True")), True),
        ("MODIFIED", job(("Failed", "True")), True),
        ("MODIFIED", job(("Failed", "False")), False),
        ("MODIFIED", job(), False),
        ("MODIFIED", {"kind": "DaemonSet", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}, False),
        ("ADDED", job(("Complete", "True")), False),
        (None, job(("Complete", "True")), False),
    ],
)
def test_needs_reconcile(event_type: str | None, child: dict[str, Any], expected: bool) -> None:
    assert needs_reconcile(event_type, child) is expected
