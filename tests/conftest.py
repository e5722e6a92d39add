"""Fixtures shared by every test layer: the real control plane (one per session, started on first
use) and the chart installed into it by Helm."""

from pathlib import Path

import pytest
from support.controlplane import ControlPlane, control_plane  # noqa: F401  (a session fixture)
from support.helm import install_chart, operator_user
from support.refused_specs import PINNED_IMAGE

# The chart's admission policy allows /srv; the operator tests' own allow-list (/srv/video) is
# narrower, so that the operator's second check is reachable behind the API server's.
CHART_VALUES = {"allowedHostPaths": ["/srv"], "workerImages": {"allowed": [PINNED_IMAGE]}}


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The chart installed by Helm (CRD, RBAC, admission policy); a kubeconfig with its ServiceAccount's
    token (TokenRequest API): whoever uses it is the operator as the API server's authorizer sees it."""
    install_chart(control_plane.kubeconfig, CHART_VALUES)
    control_plane.kubectl_ok("wait", "--for=condition=Established", "crd/inferencejobs.edgeinference.io",
                             "--timeout=60s")  # fmt: skip
    namespace, name = operator_user().split(":")[2:]
    return control_plane.token_kubeconfig(namespace, name, tmp_path_factory.mktemp("operator") / "kubeconfig")
