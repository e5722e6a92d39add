"""A real control plane with only the InferenceJob CRD from crds/ (no chart: no admission policy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.admission import CRD
from support.controlplane import ControlPlane, running_control_plane

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / f"{CRD}.yaml"


@pytest.fixture(scope="package")
def crd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of these tests' own with the CRD from crds/ applied and established."""
    with running_control_plane(tmp_path_factory.mktemp("crd")) as plane:
        plane.kubectl_ok("apply", "-f", str(CRD_FILE))
        plane.kubectl_ok("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")
        yield plane
