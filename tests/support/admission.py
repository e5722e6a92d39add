"""InferenceJobs sent to a real API server the way a user sends them (`kubectl apply`), to see what
admission says: the CRD's schema and CEL rules, then the chart's ValidatingAdmissionPolicy.

    with chart_cluster(tmp_path, allowed=["/srv/nvr"]) as plane:
        result = apply_job(plane, "lobby", "/etc")
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from support.controlplane import ControlPlane, running_control_plane
from support.helm import install_chart
from support.jobs import minimal_job

CRD = "inferencejobs.edgeinference.io"
# The start of the chart's admission policy's refusal (its messageExpression).
POLICY_REFUSAL = "is not allowed: it must be a clean absolute path under one of the allowed prefixes"


def apply_job(plane: ControlPlane, name: str, host_path: str, **metadata: Any) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of an InferenceJob (not checked: assert on returncode and stderr)."""
    return plane.kubectl("apply", "-f", "-", input=json.dumps(minimal_job(name, host_path, **metadata)))


def wait_for_policy(plane: ControlPlane, allowed: Sequence[str]) -> None:
    """Wait until the API server enforces the policy (it loads policies asynchronously): a server-side
    dry run of a job outside the allow-list is refused with the policy's message."""
    manifest = json.dumps(minimal_job("policy-probe", "/policy-probe"))
    expected = f"allowed prefixes ({', '.join(allowed)})" if allowed else "none: the admin allowed no host paths"

    def enforced() -> bool:
        result = plane.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
        return result.returncode != 0 and expected in result.stderr

    plane.wait(enforced, "the chart's admission policy to be enforced")


@contextlib.contextmanager
def chart_cluster(
    workdir: Path, allowed: Sequence[str], values: dict[str, Any] | None = None
) -> Iterator[ControlPlane]:
    """A control plane of its own with the chart installed by Helm (allowedHostPaths `allowed`)."""
    with running_control_plane(workdir) as plane:
        install_chart(plane.kubeconfig, {**(values or {}), "allowedHostPaths": list(allowed)})
        plane.kubectl_ok("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
        wait_for_policy(plane, allowed)
        yield plane
