"""Pure builders of the manifests the operator wants to exist (plain dicts, no API calls).

One InferenceJob becomes, per accepted accelerator kind, a DaemonSet (Continuous) or one
batch/v1 Job per target node (Batch). Every child carries the same labels, an ownerReference
to the job (so deleting the job garbage-collects it) and a spec-hash annotation: the thin I/O
layer compares hashes to decide whether a child must change, and because the hash is also on
the pod template, any spec change rolls the DaemonSet.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from edge_inference_api import telemetry
from edge_inference_api.models import (
    API_GROUP,
    API_VERSION,
    ENV_NODE_NAME,
    ENV_S3_ACCESS_KEY,
    ENV_S3_SECRET_KEY,
    ENV_WEBHOOK_HMAC_KEY,
    ENV_WORKER_CONFIG,
    KIND,
    LABEL_ACCELERATOR,
    LABEL_CAMERA_STORAGE,
    WORKER_INPUT_DIR,
    WORKER_METRICS_PORT,
    WORKER_STATE_DIR,
    AcceleratorTarget,
    InferenceJobSpec,
    JobRef,
    Mode,
    S3Sink,
    WebhookTarget,
    WorkerConfig,
)

from edge_inference_operator.names import (
    ANNOTATION_SPEC_HASH,
    METRICS_PORT_NAME,
    WORKER_CONTAINER,
    child_labels,
    child_name,
    selector_labels,
    short_hash,
)
from edge_inference_operator.settings import OperatorSettings, WorkerPodDefaults

NVIDIA = "nvidia"
GPU_RESOURCE = "nvidia.com/gpu"
WORKER_UID = 10001


@dataclasses.dataclass(frozen=True)
class ParsedJob:
    """An InferenceJob whose spec parsed: identity plus typed spec."""

    namespace: str
    name: str
    uid: str
    spec: InferenceJobSpec


def owner_reference(job: ParsedJob) -> dict[str, Any]:
    # blockOwnerDeletion stays unset: setting it needs update on inferencejobs/finalizers,
    # a right the operator does not otherwise need; background GC removes children anyway.
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": job.name,
        "uid": job.uid,
        "controller": True,
    }


def state_host_path(job: ParsedJob, settings: OperatorSettings) -> str:
    """The node folder of this job's outbox, ledger and model cache."""
    return f"{settings.state_host_path}/{job.namespace}/{job.name}"


def worker_image(accelerator: AcceleratorTarget, settings: OperatorSettings) -> str:
    """The job's pick (checked against the allow-list before anything is built), else the admin's image."""
    return accelerator.image or settings.image_for(accelerator.type)


def exports_weights(spec: InferenceJobSpec) -> bool:
    """Whether the model comes from S3 as PyTorch weights, which an init container exports first."""
    return spec.model.source is not None and spec.model.source.key.endswith(".pt")


def build_worker_config(
    job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings, node: str | None = None
) -> WorkerConfig:
    """The WorkerConfig every pod of this workload gets as JSON in EDGE_INFERENCE_CONFIG.

    `node` is set for Batch (one Job per node); DaemonSet pods share one config and learn
    their node from EDGE_INFERENCE_NODE_NAME.
    """
    spec = job.spec
    output = spec.output
    sink = S3Sink(
        endpoint=output.endpoint, bucket=output.bucket, prefix=output.prefix, secure=output.secure, region=output.region
    )
    extra: dict[str, Any] = {"node": node} if node is not None else {}
    if spec.webhook is not None:
        extra["webhook"] = WebhookTarget(url=spec.webhook.url, classes=list(spec.webhook.classes))
    return WorkerConfig(
        job=JobRef(namespace=job.namespace, name=job.name),
        mode=spec.mode,
        input_dir=WORKER_INPUT_DIR,
        include=list(spec.input.include),
        model=spec.model,
        model_source_endpoint=sink if spec.model.source is not None else None,
        events=spec.events,
        sampling=spec.sampling,
        sink=sink,
        state_dir=WORKER_STATE_DIR,
        outbox=spec.outbox,
        metrics_port=WORKER_METRICS_PORT,
        **extra,
    )


def webhook_key_env(spec: InferenceJobSpec) -> list[dict[str, Any]]:
    """The webhook's HMAC key from its Secret, by reference (nothing when the job names no webhook)."""
    if spec.webhook is None:
        return []
    ref = spec.webhook.secret_ref
    return [{"name": ENV_WEBHOOK_HMAC_KEY, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def node_affinity(job: ParsedJob, accelerator: str, node: str | None = None) -> dict[str, Any]:
    """Required node affinity: camera storage, this accelerator, spec.nodeSelector, and the node (Batch)."""
    expressions: list[dict[str, Any]] = [
        {"key": LABEL_CAMERA_STORAGE, "operator": "Exists"},
        {"key": LABEL_ACCELERATOR, "operator": "In", "values": [accelerator]},
    ]
    expressions += [
        {"key": key, "operator": "In", "values": [value]} for key, value in sorted(job.spec.node_selector.items())
    ]
    term: dict[str, Any] = {"matchExpressions": expressions}
    if node is not None:
        term["matchFields"] = [{"key": "metadata.name", "operator": "In", "values": [node]}]
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}


def pod_tolerations(spec: InferenceJobSpec, accelerator: str) -> list[dict[str, Any]]:
    """The workers' tolerations: the job's, plus the usual GPU taint for nvidia."""
    tolerations = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in spec.tolerations]
    if accelerator == NVIDIA:
        # GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule so that only GPU work lands there.
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _resources(job: ParsedJob, accelerator: AcceleratorTarget | None) -> dict[str, Any]:
    """The job's resources, plus the GPUs of an nvidia workload (None: a container without GPUs)."""
    requests: dict[str, str] = {name: value for name, value in job.spec.resources.requests.items()}
    limits: dict[str, str] = {name: value for name, value in job.spec.resources.limits.items()}
    if (
        accelerator is not None and accelerator.type == NVIDIA
    ):  # gpus >= 1 (the schema): without a limit the pod would see every GPU
        limits[GPU_RESOURCE] = str(accelerator.gpus)  # extended resources: requests default to limits
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


_RESTRICTED = {
    "runAsUser": WORKER_UID,
    "runAsGroup": WORKER_UID,
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def build_pod_template(
    job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings, node: str | None = None
) -> dict[str, Any]:
    """The worker pod template: locked down, read-only video, writable per-job state, metrics port."""
    worker = worker_container(job, accelerator, settings, node)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # workers never talk to the Kubernetes API
        "enableServiceLinks": False,
        "affinity": {"nodeAffinity": node_affinity(job, accelerator.type, node)},
        "tolerations": pod_tolerations(job.spec, accelerator.type),
        "initContainers": init_containers(job, accelerator, settings, worker),
        "containers": [worker],
        "volumes": pod_volumes(job, settings),
        "restartPolicy": "Always" if node is None else "OnFailure",
    }
    if accelerator.runtime_class_name:
        pod_spec["runtimeClassName"] = accelerator.runtime_class_name
    if not pod_spec["tolerations"]:
        del pod_spec["tolerations"]
    template = {"metadata": {"labels": child_labels(job.name, accelerator.type, node)}, "spec": pod_spec}
    return with_worker_pod_defaults(template, settings.worker_pod)


def worker_env(job: ParsedJob, config: WorkerConfig) -> list[dict[str, Any]]:
    """The worker's environment: its configuration, and every secret by reference."""
    secret = job.spec.output.credentials_secret_ref
    return [
        {"name": ENV_WORKER_CONFIG, "value": config.model_dump_json(by_alias=True)},
        {"name": ENV_S3_ACCESS_KEY, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.access_key_key}}},
        {"name": ENV_S3_SECRET_KEY, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.secret_key_key}}},
        {"name": ENV_NODE_NAME, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        *webhook_key_env(job.spec),
    ]


def worker_probes() -> dict[str, Any]:
    """Startup, liveness and readiness probes on the worker's metrics port."""
    probe = {"port": METRICS_PORT_NAME}
    return {
        # Loading a model from the node cache can take a while; the startup probe covers it.
        "startupProbe": {
            "httpGet": {"path": telemetry.LIVENESS_PATH, **probe},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "livenessProbe": {
            "httpGet": {"path": telemetry.LIVENESS_PATH, **probe},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "readinessProbe": {"httpGet": {"path": telemetry.READINESS_PATH, **probe}, "periodSeconds": 10},
    }


def worker_container(
    job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings, node: str | None = None
) -> dict[str, Any]:
    """The worker container: runs the job's WorkerConfig as an unprivileged user on a read-only root."""
    config = build_worker_config(job, accelerator, settings, node)
    volume_mounts = [
        # Recursively read-only where the kubelet and runtime support it (Kubernetes >= 1.30, Linux >= 5.12):
        # a mount under the video folder (an NFS share, a USB disk) is then read-only too.
        {"name": "videos", "mountPath": WORKER_INPUT_DIR, "readOnly": True, "recursiveReadOnly": "IfPossible"},
        {"name": "state", "mountPath": WORKER_STATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return {
        "name": WORKER_CONTAINER,
        "image": worker_image(accelerator, settings),
        "imagePullPolicy": settings.worker_image_pull_policy,
        "args": ["run"],  # the image's `edge-inference` runs the configuration in EDGE_INFERENCE_CONFIG
        "env": worker_env(job, config),
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"}],
        **worker_probes(),
        "resources": _resources(job, accelerator),
        "securityContext": _RESTRICTED,
        "volumeMounts": volume_mounts,
    }


def init_containers(
    job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings, worker: dict[str, Any]
) -> list[dict[str, Any]]:
    """What runs before the worker: the state folder handed to the worker's user, then the model export."""
    return [state_permissions_container(accelerator, settings), *_prepare_model(job, settings, worker)]


def state_permissions_container(accelerator: AcceleratorTarget, settings: OperatorSettings) -> dict[str, Any]:
    """kubelet creates a missing hostPath directory owned by root; only CAP_CHOWN is needed to hand it over.

    It runs as root, so it runs the admin's image for this kind, never one the job picked.
    """
    return {
        "name": "state-permissions",
        "image": settings.image_for(accelerator.type),
        "imagePullPolicy": settings.worker_image_pull_policy,
        "command": ["chown", f"{WORKER_UID}:{WORKER_UID}", WORKER_STATE_DIR],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
        },
        "volumeMounts": [{"name": "state", "mountPath": WORKER_STATE_DIR}],
    }


def pod_volumes(job: ParsedJob, settings: OperatorSettings) -> list[dict[str, Any]]:
    """The node's video folder, the job's state folder on the node, and a bounded scratch folder."""
    return [
        {"name": "videos", "hostPath": {"path": job.spec.input.host_path, "type": "Directory"}},
        {"name": "state", "hostPath": {"path": state_host_path(job, settings), "type": "DirectoryOrCreate"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]


def with_worker_pod_defaults(template: dict[str, Any], defaults: WorkerPodDefaults) -> dict[str, Any]:
    """The pod template with what the cluster admin set for every worker pod (the chart's workerPods).

    The operator's own labels win over extra ones (the settings refuse colliding keys anyway).
    """
    metadata, spec = template["metadata"], template["spec"]
    metadata["labels"] = {**defaults.labels, **metadata["labels"]}
    if defaults.annotations:
        metadata["annotations"] = dict(defaults.annotations)
    spec["securityContext"] = dict(defaults.pod_security_context)
    if defaults.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in defaults.image_pull_secrets]
    if defaults.priority_class_name:
        spec["priorityClassName"] = defaults.priority_class_name
    return template


def _prepare_model(job: ParsedJob, settings: OperatorSettings, worker: dict[str, Any]) -> list[dict[str, Any]]:
    """For .pt weights from S3: an init container that fetches, verifies and exports them into the
    node's model cache (under the state folder, by sha256), with the worker's environment."""
    if not exports_weights(job.spec):
        return []
    return [
        {
            "name": "prepare-model",
            "image": settings.export_image,
            "imagePullPolicy": settings.worker_image_pull_policy,
            "command": ["edge-inference", "prepare-model"],
            "env": worker["env"],
            "resources": _resources(job, None),
            "securityContext": _RESTRICTED,
            "volumeMounts": [m for m in worker["volumeMounts"] if m["name"] in ("state", "tmp")],
        }
    ]


def spec_hash(manifest: dict[str, Any]) -> str:
    """Hash of everything the operator decides about a child (metadata labels and spec)."""
    content = {"labels": manifest["metadata"].get("labels"), "spec": manifest["spec"]}
    return short_hash(json.dumps(content, sort_keys=True, separators=(",", ":")), 16)


def _with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    digest = spec_hash(manifest)
    manifest["metadata"]["annotations"] = {ANNOTATION_SPEC_HASH: digest}
    # On the template too, so that a DaemonSet rolls its pods whenever the job's spec changes.
    template_metadata = manifest["spec"]["template"]["metadata"]
    template_metadata["annotations"] = {**template_metadata.get("annotations", {}), ANNOTATION_SPEC_HASH: digest}
    return manifest


def _metadata(job: ParsedJob, name: str, accelerator: str, node: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": child_labels(job.name, accelerator, node),
        "ownerReferences": [owner_reference(job)],
    }


def build_daemonset(job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings) -> dict[str, Any]:
    """The Continuous workload for one accelerator kind: a pod on every matching node, now and later."""
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(job, child_name(job.name, accelerator.type), accelerator.type, None),
        "spec": {
            "selector": {"matchLabels": selector_labels(job.name, accelerator.type)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "revisionHistoryLimit": 3,
            "template": build_pod_template(job, accelerator, settings),
        },
    }
    return _with_hash(manifest)


def build_batch_job(
    job: ParsedJob, accelerator: AcceleratorTarget, settings: OperatorSettings, node: str
) -> dict[str, Any]:
    """The Batch workload for one target node: process what is there, then complete."""
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job, child_name(job.name, accelerator.type, node), accelerator.type, node),
        "spec": {
            "backoffLimit": settings.batch_backoff_limit,
            "completions": 1,
            "parallelism": 1,
            # No ttlSecondsAfterFinished: the finished Job is the record of the node's outcome.
            "template": build_pod_template(job, accelerator, settings, node),
        },
    }
    return _with_hash(manifest)


def build_children(
    job: ParsedJob, settings: OperatorSettings, targets: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every child the job should have: Continuous ignores `targets`; Batch gets one Job per (node -> type)."""
    if job.spec.mode == Mode.CONTINUOUS:
        return [build_daemonset(job, accelerator, settings) for accelerator in job.spec.accelerators]
    by_type = {a.type: a for a in job.spec.accelerators}
    return [
        build_batch_job(job, by_type[accelerator], settings, node)
        for node, accelerator in sorted((targets or {}).items())
        if accelerator in by_type
    ]
