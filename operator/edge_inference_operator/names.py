"""The operator's labels, annotations and child-naming rules, defined once.

Every child, selector and index of the operator names things through this module, so that what
the builders write and what kube, handlers and scrape look for cannot drift apart. (The node
labels a cluster admin sets, such as the camera-storage and accelerator labels, are part of the
API and live in edge_inference_api.models.)
"""

from __future__ import annotations

import hashlib
import re

from edge_inference_api.models import API_GROUP, LABEL_ACCELERATOR

LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = f"{API_GROUP}/job"
LABEL_NODE = f"{API_GROUP}/node"
ANNOTATION_SPEC_HASH = f"{API_GROUP}/spec-hash"
WORKER_APP_NAME = "edge-inference-worker"
MANAGER = "edge-inference-operator"
METRICS_PORT_NAME = "metrics"
WORKER_CONTAINER = "worker"  # the worker pod's container, whose termination message status shows
MAX_NAME = 63  # DNS-1123 label: Job names become pod labels, DaemonSet names prefix pod names

# Every object the operator manages carries this label; its watches and indices select on it.
MANAGED = {LABEL_MANAGED_BY: MANAGER}
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER}"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def short_hash(text: str, length: int = 8) -> str:
    """The first `length` hex digits of the sha256 of `text`."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_name(*parts: str) -> str:
    """A deterministic DNS-1123 label from `parts`: joined with '-' when that fits and says which parts
    they were, else cleaned + truncated + a hash of the parts.

    Only the first part may contain '-' in a plain name: job `a-b` with accelerator `c` and job `a`
    with accelerator `b-c` would otherwise both be `a-b-c`.
    """
    raw = "-".join(parts)
    cleaned = _NOT_DNS.sub("-", raw.lower()).strip("-")
    unambiguous = not any("-" in part for part in parts[1:])
    if cleaned == raw and len(raw) <= MAX_NAME and unambiguous:
        return raw
    head = cleaned[: MAX_NAME - 9].rstrip("-")
    digest = short_hash("/".join(parts))  # '/' occurs in no part: the hash tells the parts apart
    return f"{head}-{digest}" if head else digest


def label_value(value: str) -> str:
    """`value` as a label value (<= 63 chars); long or unusual values become a name + hash."""
    if len(value) <= MAX_NAME and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value):
        return value
    return dns_name(value)


def child_name(job_name: str, accelerator: str, node: str | None = None) -> str:
    """Name of the DaemonSet (no node) or Batch Job (with node) of a job for one accelerator kind."""
    return dns_name(job_name, accelerator) if node is None else dns_name(job_name, accelerator, node)


def selector_labels(job_name: str, accelerator: str) -> dict[str, str]:
    """Labels that select the pods of one workload (immutable once a DaemonSet exists)."""
    return {
        LABEL_APP_NAME: WORKER_APP_NAME,
        LABEL_JOB: label_value(job_name),
        LABEL_ACCELERATOR: label_value(accelerator),
    }


def child_labels(job_name: str, accelerator: str, node: str | None = None) -> dict[str, str]:
    """Labels of a child and its pods: the selector's, the manager's, and the node of a Batch Job."""
    labels = {**selector_labels(job_name, accelerator), **MANAGED}
    if node is not None:
        labels[LABEL_NODE] = label_value(node)
    return labels


def job_selector(job_name: str) -> str:
    """The label selector of every child of one job."""
    return f"{LABEL_JOB}={label_value(job_name)},{MANAGED_SELECTOR}"
