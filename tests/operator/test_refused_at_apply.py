"""The review's table of specs whose worker pods the API server would refuse, sent to the real API
server with `kubectl apply` (server-side dry run): the CRD's schema and CEL rules refuse each at
apply and name the field; what no static rule can say is refused by the operator's own check."""

from __future__ import annotations

import json

import pytest
from edge_inference_operator.reconcile import Refusal, check_job
from edge_inference_operator.settings import OperatorSettings
from support.refused_specs import ACCEPTED, REFUSED, RefusedSpec, spec_with

SETTINGS = OperatorSettings(allowed_host_paths=("/srv",))


def apply(control_plane, spec: dict, dry_run: bool = True):
    manifest = {
        "apiVersion": "edgeinference.io/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": "refused", "namespace": "default"},
        "spec": spec,
    }
    extra = ["--dry-run=server"] if dry_run else []
    return control_plane.kubectl("apply", *extra, "-f", "-", input=json.dumps(manifest))


@pytest.mark.parametrize("row", REFUSED, ids=[r.id for r in REFUSED])
def test_the_api_server_refuses_at_apply(control_plane, operator_kubeconfig, row: RefusedSpec) -> None:
    result = apply(control_plane, spec_with(row.path, row.value))
    if row.where is None:  # no static rule can say it: the operator refuses it with a condition
        assert result.returncode == 0, result.stderr
        body = {
            "metadata": {"namespace": "default", "name": "refused", "uid": "u"},
            "spec": spec_with(row.path, row.value),
        }
        refusal = check_job(body, SETTINGS)
        assert isinstance(refusal, Refusal) and row.message in refusal.message
        return
    assert result.returncode != 0, f"{row.id} was admitted"
    assert f"{row.where}: " in result.stderr or f"{row.where}:" in result.stderr, result.stderr


@pytest.mark.parametrize(("path", "value"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_the_api_server_admits_what_kubernetes_accepts(control_plane, operator_kubeconfig, path: str, value) -> None:
    result = apply(control_plane, spec_with(path, value))
    assert result.returncode == 0, result.stderr
