"""`helm lint --strict` of the chart, with default values and with every optional part on."""

from __future__ import annotations

import pytest
from support.helm import EVERYTHING_ON, lint_chart

KUBE_VERSIONS = ["v1.30.0", "v1.37.0"]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_lint_strict_is_clean(values: dict | None, kube_version: str) -> None:
    report = lint_chart(strict=True, values=values, kube_version=kube_version)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and findings == [], report


def test_lint_reports_a_broken_value() -> None:
    """The lint run does look at the values: a value the schema refuses is an error."""
    report = lint_chart(strict=True, values={"operator": {"replicas": 2}})
    assert any("replicas" in m["error"] for m in report["messages"] if m["severity"] == 3), report
