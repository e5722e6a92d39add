"""Render and lint the Helm chart with real Helm (v4, through helm-python-sdk), offline.

    from support.helm import render_chart, lint_chart, cluster_role_rules

`render_chart` is what an install would apply: values are validated against values.schema.json
and the templates rendered by Helm's own engine; no cluster is contacted (`lookup` returns
nothing, as on a first install).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "edge-inference-operator"
# Release name equal to the chart name, so object names are simply "edge-inference-operator".
RELEASE_NAME = "edge-inference-operator"
NAMESPACE = "edge-inference-system"

# Values that switch on every optional part of the chart (MinIO, monitoring objects, dashboard).
EVERYTHING_ON: dict[str, Any] = {
    "minio": {"enabled": True},
    "monitoring": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
}


def render_manifests(values: Mapping[str, Any] | None = None, kube_version: str | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce (NOTES.txt included).

    `kube_version` (e.g. "v1.30.0") sets .Capabilities.KubeVersion for the templates (this render
    path does not enforce Chart.yaml's kubeVersion constraint; an install does).
    Raises helm_python.HelmValuesError for values the schema refuses, HelmRenderError otherwise.
    """
    opts: dict[str, Any] = {"name": RELEASE_NAME, "namespace": NAMESPACE, "is_install": True}
    if kube_version is not None:
        opts["kube_version"] = kube_version
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(dict(values) if values is not None else None)
        # Chart.render does not forward kube_version, but the C ABI's render options (helm-c-sdk's
        # RenderOptions) take it; same native call, same Helm engine.
        rendered = _native.call_string(
            "helm_render",
            chart._raw(),
            None if values is None else json.dumps(values),
            json.dumps(opts),
        )
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def render_chart(values: dict | None = None, kube_version: str | None = None) -> list[dict]:
    """Every Kubernetes object the chart renders with `values`, parsed, in template order."""
    objects: list[dict] = []
    for path, text in sorted(render_manifests(values, kube_version).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def render_notes(values: dict | None = None) -> str:
    """The rendered NOTES.txt (what `helm install` prints)."""
    manifests = render_manifests(values)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def lint_chart(strict: bool = True, values: dict | None = None, kube_version: str | None = None) -> dict[str, Any]:
    """`helm lint [--strict]` as data: {"messages": [{"severity", "path", "error"}], "errors": [...]}.

    Severity 1 is info, 2 warning, 3 error; with strict=True Helm counts warnings as errors.
    """
    return helm.lint(CHART_DIR, values, strict=strict, kube_version=kube_version, namespace=NAMESPACE)


def find_objects(objects: Iterable[dict], kind: str, name: str | None = None) -> list[dict]:
    """The rendered objects of `kind` (and `name`, when given)."""
    return [o for o in objects if o.get("kind") == kind and (name is None or o.get("metadata", {}).get("name") == name)]


def cluster_role_rules(values: dict | None = None) -> list[dict]:
    """The rules of the operator's ClusterRole, as the chart renders them."""
    roles = find_objects(render_chart(values), "ClusterRole")
    if len(roles) != 1:
        raise AssertionError(f"expected one ClusterRole in the chart, found {len(roles)}")
    return roles[0]["rules"]


def install_chart(
    kubeconfig: Path, values: dict | None = None, release: str = RELEASE_NAME, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """`helm install` of the chart into the cluster of `kubeconfig` (namespace created); the release summary."""
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as config:
        return config.install(str(CHART_DIR), release, values, namespace=namespace, create_namespace=True, timeout=120)


def operator_user(release: str = RELEASE_NAME, namespace: str = NAMESPACE) -> str:
    """The username the operator has when it runs as the chart's ServiceAccount."""
    return f"system:serviceaccount:{namespace}:{release}"


def upgrade_chart(
    kubeconfig: Path, values: dict | None = None, release: str = RELEASE_NAME, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """`helm upgrade` of the installed chart with `values`; the release summary."""
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as config:
        return config.upgrade(str(CHART_DIR), release, values, namespace=namespace, timeout=120)
