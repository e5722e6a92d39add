"""The pure manifest builders: tables of specs in, plain manifests out (no cluster)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from edge_inference_api.models import ENV_WORKER_CONFIG, LABEL_ACCELERATOR, LABEL_CAMERA_STORAGE, WorkerConfig
from edge_inference_operator.builders import (
    build_batch_job,
    build_children,
    build_daemonset,
    build_worker_config,
)
from edge_inference_operator.names import ANNOTATION_SPEC_HASH, child_name, dns_name, label_value
from edge_inference_operator.settings import OperatorSettings, WorkerPodDefaults
from pydantic import ValidationError

# Every Kubernetes minor kubernetes-validate 1.37.0 ships schemas for goes from 1.25 to 1.37;
# 1.30 is the oldest the chart supports, 1.37 the newest available.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]

SPECS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "nvidia": {"accelerators": [{"type": "nvidia", "runtimeClassName": "nvidia", "gpus": 2}]},
    "cpu-and-nvidia": {"accelerators": [{"type": "cpu"}, {"type": "nvidia"}]},
    "tainted-edge": {
        "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"site": "lobby"},
    },
    "custom-model": {
        "model": {"name": "custom.pt", "source": {"bucket": "models", "key": "custom.pt", "sha256": "a" * 64}},
        "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}},
    },
    "own-image": {
        "accelerators": [{"type": "cpu", "image": "ghcr.io/edge-inference/worker-cuda:0.1.0"}],
    },
}


def containers(pod_spec: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    return pod_spec["initContainers" if init else "containers"]


def env_value(container: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in container["env"] if e["name"] == name)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_built_manifest_passes_strict_kubernetes_schema(case: str, version: str, settings, make_job) -> None:
    job = make_job(**SPECS[case])
    for manifest in build_children(job, settings) + [build_batch_job(job, job.spec.accelerators[0], settings, "n1")]:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("case", sorted(SPECS))
def test_worker_pod_is_locked_down(case: str, settings, make_job) -> None:
    job = make_job(**SPECS[case])
    for accelerator in job.spec.accelerators:
        pod = build_daemonset(job, accelerator, settings)["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (worker,) = containers(pod)
        ctx = worker["securityContext"]
        assert (ctx["runAsUser"], ctx["runAsNonRoot"], ctx["readOnlyRootFilesystem"]) == (10001, True, True)
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        chown = containers(pod, init=True)[0]
        assert chown["image"] == settings.image_for(accelerator.type)  # root runs only the admin's image
        assert chown["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
        assert chown["securityContext"]["runAsUser"] == 0
        assert chown["command"] == ["chown", "10001:10001", "/var/lib/edge-inference"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["videos"]["hostPath"] == {"path": "/srv/video/lobby", "type": "Directory"}
        assert volumes["state"]["hostPath"] == {
            "path": "/var/lib/edge-inference/default/lobby",
            "type": "DirectoryOrCreate",
        }
        assert "emptyDir" in volumes["tmp"]
        mounts = {m["name"]: m for m in worker["volumeMounts"]}
        assert mounts["videos"] == {
            "name": "videos",
            "mountPath": "/videos",
            "readOnly": True,
            "recursiveReadOnly": "IfPossible",
        }
        assert not mounts["state"].get("readOnly") and mounts["tmp"]["mountPath"] == "/tmp"
        assert worker["args"] == ["run"] and "command" not in worker  # the image's entrypoint, `edge-inference`
        assert worker["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
        assert {worker[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")} == {"/healthz", "/readyz"}
        secret = env_value(worker, "EDGE_INFERENCE_S3_SECRET_KEY")["valueFrom"]["secretKeyRef"]
        assert secret == {"name": "s3-credentials", "key": "secretKey"}
        assert env_value(worker, "EDGE_INFERENCE_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        assert "value" not in env_value(worker, "EDGE_INFERENCE_S3_ACCESS_KEY")  # by reference, never inline


@pytest.mark.parametrize(
    ("accelerator", "image", "gpu_limit", "runtime_class", "gpu_toleration"),
    [
        ({"type": "cpu"}, "ghcr.io/edge-inference/worker:0.1.0", None, None, False),
        ({"type": "nvidia"}, "ghcr.io/edge-inference/worker-cuda:0.1.0", "1", None, True),
        (
            {"type": "nvidia", "gpus": 2, "runtimeClassName": "nvidia"},
            "ghcr.io/edge-inference/worker-cuda:0.1.0",
            "2",
            "nvidia",
            True,
        ),
        ({"type": "cpu", "image": "registry.local/w:dev"}, "registry.local/w:dev", None, None, False),
    ],
)
def test_accelerator_kind_decides_image_gpu_and_runtime(
    accelerator, image, gpu_limit, runtime_class, gpu_toleration, settings, make_job
) -> None:
    job = make_job(accelerators=[accelerator])
    pod = build_daemonset(job, job.spec.accelerators[0], settings)["spec"]["template"]["spec"]
    (worker,) = containers(pod)
    assert worker["image"] == image
    assert worker["resources"]["limits"].get("nvidia.com/gpu") == gpu_limit
    assert pod.get("runtimeClassName") == runtime_class
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])) == gpu_toleration


def test_node_affinity_selects_camera_nodes_of_the_accelerator_plus_node_selector(settings, make_job) -> None:
    job = make_job(**SPECS["tainted-edge"])
    pod = build_daemonset(job, job.spec.accelerators[0], settings)["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": LABEL_CAMERA_STORAGE, "operator": "Exists"},
        {"key": LABEL_ACCELERATOR, "operator": "In", "values": ["cpu"]},
        {"key": "site", "operator": "In", "values": ["lobby"]},
    ]
    assert "matchFields" not in term
    assert pod["tolerations"] == [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}]


def test_batch_job_is_pinned_to_its_node_and_runs_to_completion(settings, make_job) -> None:
    job = make_job(mode="Batch")
    manifest = build_batch_job(job, job.spec.accelerators[0], settings, "edge-7")
    pod = manifest["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["edge-7"]}]
    assert pod["restartPolicy"] == "OnFailure" and manifest["spec"]["backoffLimit"] == settings.batch_backoff_limit
    assert "ttlSecondsAfterFinished" not in manifest["spec"]  # the finished Job records the outcome
    config = WorkerConfig.model_validate_json(env_value(containers(pod)[0], ENV_WORKER_CONFIG)["value"])
    assert config.node == "edge-7" and config.mode.value == "Batch"


def test_children_per_mode(settings, make_job) -> None:
    continuous = make_job(accelerators=[{"type": "cpu"}, {"type": "nvidia"}])
    assert [(c["kind"], c["metadata"]["name"]) for c in build_children(continuous, settings)] == [
        ("DaemonSet", "lobby-cpu"),
        ("DaemonSet", "lobby-nvidia"),
    ]
    batch = make_job(mode="Batch", accelerators=[{"type": "cpu"}, {"type": "nvidia"}])
    targets = {"n2": "nvidia", "n1": "cpu", "n3": "arm"}  # n3's kind is not accepted: no child
    assert [(c["kind"], c["metadata"]["name"]) for c in build_children(batch, settings, targets)] == [
        ("Job", "lobby-cpu-n1"),
        ("Job", "lobby-nvidia-n2"),
    ]


def test_children_carry_the_shared_labels_and_an_owner_reference(settings, make_job) -> None:
    job = make_job(uid="0a1b")
    (ds,) = build_children(job, settings)
    assert ds["metadata"]["labels"] == {
        "app.kubernetes.io/name": "edge-inference-worker",
        "app.kubernetes.io/managed-by": "edge-inference-operator",
        "edgeinference.io/job": "lobby",
        "edgeinference.io/accelerator": "cpu",
    }
    assert ds["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "edgeinference.io/v1alpha1",
            "kind": "InferenceJob",
            "name": "lobby",
            "uid": "0a1b",
            "controller": True,
        }
    ]
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector.items() <= ds["spec"]["template"]["metadata"]["labels"].items()


def test_worker_config_round_trips_with_the_jobs_values(settings, make_job) -> None:
    job = make_job(**SPECS["custom-model"], events={"minFrames": 5, "blurClasses": ["person"]}, sampling={"fps": 4})
    (ds,) = build_children(job, settings)
    raw = env_value(containers(ds["spec"]["template"]["spec"])[0], ENV_WORKER_CONFIG)["value"]
    config = WorkerConfig.model_validate_json(raw)
    assert config == build_worker_config(job, job.spec.accelerators[0], settings)
    assert (config.job.namespace, config.job.name, config.mode.value) == ("default", "lobby", "Continuous")
    assert config.sink.endpoint == "minio.storage:9000" and config.sink.bucket == "events"
    assert config.sink.prefix == "lobby" and config.sink.secure is False
    assert config.model_source_endpoint == config.sink
    assert config.model.source is not None and config.model.source.sha256 == "a" * 64
    assert config.events.min_frames == 5 and config.events.blur_classes == ["person"]
    assert config.sampling.fps == 4 and config.include == ["**/*.mp4"]
    assert (config.input_dir, config.state_dir, config.metrics_port) == ("/videos", "/var/lib/edge-inference", 9108)
    assert "secret" not in raw.lower().replace("secure", "")  # credentials never travel in the config
    assert json.loads(raw) == config.model_dump(mode="json", by_alias=True)


def test_spec_change_changes_hash_on_child_and_template(settings, make_job) -> None:
    before = build_daemonset(make_job(), make_job().spec.accelerators[0], settings)
    again = build_daemonset(make_job(), make_job().spec.accelerators[0], settings)
    changed_job = make_job(sampling={"fps": 5})
    after = build_daemonset(changed_job, changed_job.spec.accelerators[0], settings)
    assert before == again  # deterministic
    digest = before["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    assert before["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC_HASH] == digest
    assert after["metadata"]["annotations"][ANNOTATION_SPEC_HASH] != digest
    assert after["spec"]["template"]["metadata"]["annotations"] != before["spec"]["template"]["metadata"]["annotations"]


def test_settings_images_and_state_root_are_used(make_job) -> None:
    custom = OperatorSettings(
        allowed_host_paths=("/srv/video",), worker_images={"cpu": "w:1", "nvidia": "wc:1"}, state_host_path="/data/ei/"
    )
    job = make_job(accelerators=[{"type": "cpu"}, {"type": "nvidia"}])
    cpu, gpu = build_children(job, custom)
    assert containers(cpu["spec"]["template"]["spec"])[0]["image"] == "w:1"
    assert containers(gpu["spec"]["template"]["spec"])[0]["image"] == "wc:1"
    state = next(v for v in cpu["spec"]["template"]["spec"]["volumes"] if v["name"] == "state")
    assert state["hostPath"]["path"] == "/data/ei/default/lobby"


NAME_CASES = [
    (("lobby", "cpu"), "lobby-cpu"),
    (("lobby", "cpu", "edge1"), "lobby-cpu-edge1"),
    (("lobby-cams", "cpu", "edge1"), "lobby-cams-cpu-edge1"),
    (("lobby", "cpu", "edge-1"), None),  # a '-' after the first part: plain joining would be ambiguous
    (("lobby", "cpu", "edge-1.example.com"), None),  # dots are not allowed in a DNS label
    (("Lobby", "GPU_x"), None),
    (("a" * 60, "cpu"), None),
    (("a" * 253, "nvidia", "n" * 253), None),
]


@pytest.mark.parametrize(("parts", "expected"), NAME_CASES)
def test_child_names_are_deterministic_dns_labels(parts: tuple[str, ...], expected: str | None) -> None:
    name = dns_name(*parts)
    assert name == dns_name(*parts)
    assert len(name) <= 63
    assert all(ch.isdigit() or ("a" <= ch <= "z") or ch == "-" for ch in name)
    assert name[0].isalnum() and name[-1].isalnum()
    if expected is not None:
        assert name == expected
    else:
        assert name != "-".join(parts)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a-b", "c"), ("a", "b-c")),
        (("a-b", "c", "n"), ("a", "b-c", "n")),
        (("a", "cpu", "b-c"), ("a-cpu", "b", "c")),
        (("a", "b-c-d"), ("a-b", "c-d")),
        (("x" * 70, "b-c"), ("x" * 70 + "-b", "c")),
    ],
)
def test_child_names_of_different_parts_never_collide(one: tuple[str, ...], other: tuple[str, ...]) -> None:
    assert dns_name(*one) != dns_name(*other)


def test_long_names_that_share_a_prefix_stay_distinct(settings, make_job) -> None:
    a = child_name(make_job(name="x" * 70).name, "cpu", "edge-1")
    b = child_name(make_job(name="x" * 70).name, "cpu", "edge-2")
    assert a != b and len(a) <= 63 and len(b) <= 63


@pytest.mark.parametrize(
    ("value", "same"), [("lobby", True), ("a.b_c-d", True), ("x" * 63, True), ("x" * 64, False), ("-bad", False)]
)
def test_label_values_are_valid(value: str, same: bool) -> None:
    assert (label_value(value) == value) is same
    assert len(label_value(value)) <= 63


# What the cluster admin sets for every worker pod (the chart's workerPods), as the chart passes it.
ADMIN_WORKER_POD = {
    "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
    "priorityClassName": "edge-critical",
    "labels": {"team": "vision", "cost-centre": "cams"},
    "annotations": {"example.com/owner": "video-ops"},
    "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 10001, "supplementalGroups": [44]},
}


@pytest.mark.parametrize("mode", ["Continuous", "Batch"])
def test_admin_worker_pod_defaults_reach_every_pod(mode: str, make_job) -> None:
    admin = OperatorSettings.from_env(
        {"EDGE_INFERENCE_ALLOWED_HOST_PATHS": "/srv/video", "EDGE_INFERENCE_WORKER_POD": json.dumps(ADMIN_WORKER_POD)}
    )
    job = make_job(mode=mode)
    (child,) = build_children(job, admin, {"edge-1": "cpu"})
    template = child["spec"]["template"]
    pod = template["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert pod["priorityClassName"] == "edge-critical"
    assert pod["securityContext"] == ADMIN_WORKER_POD["podSecurityContext"]
    assert {"team": "vision", "cost-centre": "cams"}.items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["annotations"]["example.com/owner"] == "video-ops"
    assert (
        template["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        == child["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    )
    # The containers stay locked down whatever the pod-level defaults say.
    assert containers(pod)[0]["securityContext"]["runAsNonRoot"] is True
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(child, version, strict=True)


def test_default_worker_pod_settings_add_nothing_but_runtime_default_seccomp(settings, make_job) -> None:
    (child,) = build_children(make_job(), settings)
    template = child["spec"]["template"]
    assert template["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "imagePullSecrets" not in template["spec"] and "priorityClassName" not in template["spec"]
    assert set(template["metadata"]["annotations"]) == {ANNOTATION_SPEC_HASH}


def test_changing_admin_worker_pod_defaults_rolls_the_pods(settings, make_job) -> None:
    job = make_job()
    before = build_daemonset(job, job.spec.accelerators[0], settings)
    relabelled = settings.model_copy(update={"worker_pod": WorkerPodDefaults(labels={"team": "vision"})})
    after = build_daemonset(job, job.spec.accelerators[0], relabelled)
    assert (
        after["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        != before["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    )


BAD_WORKER_POD = [
    pytest.param({"labels": {"edgeinference.io/job": "x"}}, "edgeinference.io/job", id="reserved-label"),
    pytest.param({"labels": {"app.kubernetes.io/name": "x"}}, "app.kubernetes.io/name", id="selector-label"),
    pytest.param({"podSecurityContext": {"runAsUser": 0}}, "runAsUser", id="uid-is-not-the-admins"),
    pytest.param({"imagePullSecret": []}, "imagePullSecret", id="typo"),
    pytest.param({"imagePullSecrets": [{"name": "a", "x": 1}]}, "imagePullSecrets", id="pull-secret-shape"),
    pytest.param("{not json", "worker_pod\n  Value error, Expecting property name", id="not-json"),
]


@pytest.mark.parametrize(("value", "named"), BAD_WORKER_POD)
def test_bad_worker_pod_settings_are_refused_by_name(value: object, named: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(ValidationError) as refused:
        OperatorSettings.from_env({"EDGE_INFERENCE_WORKER_POD": raw})
    assert named in str(refused.value)


def test_the_root_init_container_never_runs_the_image_the_job_picked(settings, make_job) -> None:
    job = make_job(accelerators=[{"type": "nvidia", "image": "ghcr.io/edge-inference/worker:0.1.0"}])
    pod = build_daemonset(job, job.spec.accelerators[0], settings)["spec"]["template"]["spec"]
    assert containers(pod)[0]["image"] == "ghcr.io/edge-inference/worker:0.1.0"
    (chown,) = containers(pod, init=True)
    assert chown["image"] == "ghcr.io/edge-inference/worker-cuda:0.1.0"


WEIGHTS = {"bucket": "models", "sha256": "b" * 64}


@pytest.mark.parametrize(("key", "exported"), [("site/custom.pt", True), ("custom.onnx", False), ("ov.zip", False)])
def test_pt_weights_from_s3_get_an_export_init_container(key: str, exported: bool, settings, make_job) -> None:
    job = make_job(model={"name": "custom", "source": {**WEIGHTS, "key": key}}, accelerators=[{"type": "nvidia"}])
    pod = build_daemonset(job, job.spec.accelerators[0], settings)["spec"]["template"]["spec"]
    (worker,) = containers(pod)
    init = {c["name"]: c for c in containers(pod, init=True)}
    assert ("prepare-model" in init) is exported
    if not exported:
        return
    prepare = init["prepare-model"]
    assert prepare["image"] == settings.export_image and prepare["command"] == ["edge-inference", "prepare-model"]
    assert prepare["env"] == worker["env"]  # the same configuration and S3 credentials (by reference)
    assert {m["name"]: m["mountPath"] for m in prepare["volumeMounts"]} == {
        "state": "/var/lib/edge-inference",
        "tmp": "/tmp",
    }
    ctx = prepare["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsNonRoot"], ctx["readOnlyRootFilesystem"]) == (10001, True, True)
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["allowPrivilegeEscalation"] is False
    assert "nvidia.com/gpu" not in prepare["resources"].get("limits", {})
    assert list(init) == ["state-permissions", "prepare-model"]  # after the state folder is handed over
