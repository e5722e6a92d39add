"""The emulator serves real clients: kubectl and the official client over HTTP, from a sync or async test."""

import kubernetes
import yaml

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cams"}}


async def test_kubectl_and_official_client_see_the_same_objects(kube_api):
    applied = kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(NAMESPACE))
    assert applied.returncode == 0, applied.stderr

    core = kubernetes.client.CoreV1Api(kube_api.api_client())
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "cams"} <= names
