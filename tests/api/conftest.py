"""The API layer's real API server: a control plane of its own with only the CRD from crds/ (no
chart, no admission policy), so that what it refuses is the CRD's own schema and CEL rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.admission import CRD
from support.controlplane import ControlPlane, running_control_plane

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / f"{CRD}.yaml"


@pytest.fixture(scope="session")
def crd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane with only the committed CRD installed."""
    with running_control_plane(tmp_path_factory.mktemp("crd")) as plane:
        plane.kubectl_ok("apply", "-f", str(CRD_FILE))
        plane.kubectl_ok("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
        yield plane
