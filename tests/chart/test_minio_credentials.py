"""The demo MinIO's generated credentials survive upgrades: the chart's `lookup` reads the Secret back.

Rendered by real Helm with cluster access (helm_python.Config.render, where `lookup` queries the API
server), against a real control plane (tests/support/controlplane.py) holding the Secret of an earlier install.
"""

from __future__ import annotations

import base64
from pathlib import Path

import helm_python as helm
import yaml
from support.controlplane import running_control_plane
from support.helm import CHART_DIR, NAMESPACE, RELEASE_NAME

SECRET_NAME = f"{RELEASE_NAME}-minio"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _rendered_minio_secret(kubeconfig: Path, upgrade: bool) -> dict:
    with (
        helm.Config(kubeconfig_path=str(kubeconfig), namespace=NAMESPACE) as config,
        helm.Chart.load(CHART_DIR) as chart,
    ):
        manifests = config.render(
            chart,
            {"minio": {"enabled": True}},
            name=RELEASE_NAME,
            namespace=NAMESPACE,
            is_upgrade=upgrade,
            is_install=not upgrade,
        )
    (text,) = [t for path, t in manifests.items() if path.endswith("templates/minio.yaml")]
    (secret,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Secret"]
    return secret["data"]


def test_an_upgrade_keeps_the_credentials_of_the_earlier_install(tmp_path: Path) -> None:
    earlier = {"rootUser": _b64("edge-abc123"), "rootPassword": _b64("s" * 40)}
    with running_control_plane(tmp_path) as api:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE},
            "data": {**earlier, "accessKey": earlier["rootUser"], "secretKey": earlier["rootPassword"]},
        }
        applied = api.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([namespace, secret]))
        assert applied.returncode == 0, applied.stderr
        data = _rendered_minio_secret(api.kubeconfig, upgrade=True)
        looked_up = [e for e in api.audit_events() if e["verb"] == "get" and "objectRef" in e]
        assert any(e["objectRef"]["resource"] == "secrets" and e["objectRef"].get("name") == SECRET_NAME
                   for e in looked_up)  # fmt: skip
    assert data == {**earlier, "accessKey": earlier["rootUser"], "secretKey": earlier["rootPassword"]}


def test_a_first_install_generates_fresh_credentials(tmp_path: Path) -> None:
    with running_control_plane(tmp_path) as api:
        first = _rendered_minio_secret(api.kubeconfig, upgrade=False)
        second = _rendered_minio_secret(api.kubeconfig, upgrade=False)
    for data in (first, second):
        assert base64.b64decode(data["rootUser"]).decode().startswith("edge-")
        assert len(base64.b64decode(data["rootPassword"])) == 40
        assert (data["accessKey"], data["secretKey"]) == (data["rootUser"], data["rootPassword"])
    assert first["rootPassword"] != second["rootPassword"]  # random, not a default password
