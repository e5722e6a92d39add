"""The optional events browser in the chart: off by default; when on, restricted, wired to S3 by reference."""

from __future__ import annotations

import helm_python
import kubernetes_validate
import pytest
from support.helm import NAMESPACE, find_objects, render_chart

NAME = "edge-inference-operator-events-browser"
ON = {
    "eventsBrowser": {
        "enabled": True,
        "source": "s3://edge-events/site-a",
        "s3": {"endpoint": "https://s3.example.com", "credentialsSecret": {"name": "events-reader"}},
    }
}


def browser(values: dict) -> tuple[dict, dict]:
    objects = render_chart(values)
    (deployment,) = find_objects(objects, "Deployment", NAME)
    return deployment, deployment["spec"]["template"]["spec"]


def test_off_by_default():
    assert not [o for o in render_chart() if "events-browser" in o["metadata"]["name"]]


@pytest.mark.parametrize("kube_version", ["1.30.0", "1.37.0"])
def test_deployment_service_and_ingress_are_valid_kubernetes(kube_version):
    values = {"eventsBrowser": {**ON["eventsBrowser"], "ingress": {"enabled": True, "host": "events.example.com"}}}
    objects = [o for o in render_chart(values, kube_version=f"v{kube_version}") if o["metadata"]["name"] == NAME]
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Ingress", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, kube_version, strict=True)


def test_runs_restricted_without_an_api_token():
    _, pod = browser(ON)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "runAsUser": 10001, "runAsGroup": 10001, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"]["limits"]["memory"]


def test_serves_the_configured_bucket_with_credentials_by_reference():
    values = {"eventsBrowser": {**ON["eventsBrowser"], "s3": {**ON["eventsBrowser"]["s3"],
                                                               "publicEndpoint": "https://s3.public.example.com"}}}
    _, pod = browser(values)
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/edge-inference/worker:0.1.0"
    assert container["args"] == [
        "events", "serve", "s3://edge-events/site-a", "--host=0.0.0.0", "--port=8080",
        "--s3-endpoint=https://s3.example.com", "--public-endpoint=https://s3.public.example.com",
    ]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {
        "EDGE_INFERENCE_S3_ACCESS_KEY": {"name": "events-reader", "key": "accessKey"},
        "EDGE_INFERENCE_S3_SECRET_KEY": {"name": "events-reader", "key": "secretKey"},
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_service_selects_only_the_browser():
    objects = render_chart(ON)
    (service,) = find_objects(objects, "Service", NAME)
    selected = [o for o in objects if o["kind"] == "Deployment"
                and service["spec"]["selector"].items() <= o["spec"]["template"]["metadata"]["labels"].items()]
    assert [o["metadata"]["name"] for o in selected] == [NAME]


def test_with_the_charts_minio_it_needs_no_s3_settings():
    _, pod = browser({"minio": {"enabled": True}, "eventsBrowser": {"enabled": True}})
    (container,) = pod["containers"]
    assert f"--s3-endpoint=http://edge-inference-operator-minio.{NAMESPACE}:9000" in container["args"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {"edge-inference-operator-minio"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"eventsBrowser": {"enabled": True}}, "eventsBrowser.s3.endpoint is required"),
        ({"eventsBrowser": {"enabled": True, "s3": {"endpoint": "http://minio:9000"}}},
         "eventsBrowser.s3.credentialsSecret.name is required"),
        ({"eventsBrowser": {**ON["eventsBrowser"], "ingress": {"enabled": True}}}, "eventsBrowser.ingress.host"),
    ],
)
def test_missing_settings_are_named(values, message):
    with pytest.raises(helm_python.HelmError, match=message):
        render_chart(values)


@pytest.mark.parametrize(
    "values, where",
    [
        ({"eventsBrowser": {"source": "events/site-a"}}, "/eventsBrowser/source"),
        ({"eventsBrowser": {"s3": {"endpoint": "minio:9000"}}}, "/eventsBrowser/s3/endpoint"),
        ({"eventsBrowser": {"port": 80}}, "additional properties 'port'"),
    ],
)
def test_the_schema_refuses_bad_values(values, where):
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render_chart(values)
    assert where in str(refused.value)
