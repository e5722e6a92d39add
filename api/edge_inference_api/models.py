"""The InferenceJob API (spec and status) and the worker's configuration.

These pydantic models are the single source of truth: the CRD in `crds/` is
generated from `InferenceJobSpec`/`InferenceJobStatus` (see `crd.py`), and the
operator hands every pod a `WorkerConfig` as JSON, which the worker parses back.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

API_GROUP = "edgeinference.io"
API_VERSION = "v1alpha1"
KIND = "InferenceJob"
PLURAL = "inferencejobs"
SINGULAR = "inferencejob"
SHORT_NAMES = ["ij"]

LABEL_CAMERA_STORAGE = f"{API_GROUP}/camera-storage"
LABEL_ACCELERATOR = f"{API_GROUP}/accelerator"

# Where the worker finds its configuration and the S3 credentials in a pod.
ENV_WORKER_CONFIG = "EDGE_INFERENCE_CONFIG"
ENV_S3_ACCESS_KEY = "EDGE_INFERENCE_S3_ACCESS_KEY"
ENV_S3_SECRET_KEY = "EDGE_INFERENCE_S3_SECRET_KEY"
ENV_NODE_NAME = "EDGE_INFERENCE_NODE_NAME"
ENV_WEBHOOK_HMAC_KEY = "EDGE_INFERENCE_WEBHOOK_HMAC_KEY"

DEFAULT_MODEL = "yolov5nu"
# Where the operator mounts a worker's folders and where the worker serves /metrics: the
# WorkerConfig defaults, and what the operator's pod template uses.
WORKER_INPUT_DIR = "/videos"
WORKER_STATE_DIR = "/var/lib/edge-inference"
WORKER_METRICS_PORT = 9108
# status.nodeProgress lists at most this many nodes, so that a fleet's status stays small.
MAX_NODE_PROGRESS = 50
# A failed node's message in status (its worker's termination message) is one line of at most this many characters.
MAX_NODE_MESSAGE = 256
DEFAULT_INCLUDE = ["**/*.mp4", "**/*.mkv", "**/*.avi", "**/*.mov"]

# Static rules on a host path, enforced by the API server (CEL) and again by pydantic (host_path_problem).
MAX_PATH_SEGMENT_BYTES = 255  # NAME_MAX of Linux file systems: a longer segment cannot exist
HOST_PATH_RULES: list[JsonValue] = [
    {"rule": "self.startsWith('/')", "message": "hostPath must be absolute"},
    {
        "rule": "!self.split('/').exists(s, s == '..' || s == '.')",
        "message": "hostPath must not contain '.' or '..' segments",
    },
    {"rule": "!self.contains('//')", "message": "hostPath must not contain empty segments ('//')"},
    {"rule": "!self.matches('[[:cntrl:]]')", "message": "hostPath must not contain control characters (newline, tab)"},
    {
        # Characters, not bytes: a byte count over split() exceeds the API server's CEL cost budget.
        # The operator counts bytes (host_path_problem), so a long multi-byte segment is refused there.
        "rule": f"!self.matches('[^/]{{{MAX_PATH_SEGMENT_BYTES + 1},}}')",
        "message": f"hostPath segments must be at most {MAX_PATH_SEGMENT_BYTES} bytes",
    },
]


@dataclasses.dataclass(frozen=True)
class ForbiddenPattern:
    """A static rule on a string: refused when `regex` matches. One definition serves both checks:
    the CRD gets it as a CEL rule (the API server refuses at apply) and pydantic applies it again."""

    regex: str
    message: str

    def cel(self) -> dict[str, str]:
        return {"rule": f"!self.matches(r'{self.regex}')", "message": self.message}


def cel_rules(rules: Sequence[ForbiddenPattern]) -> dict[str, Any]:
    """The rules as the CRD's `x-kubernetes-validations` (for `json_schema_extra`)."""
    return {"x-kubernetes-validations": [rule.cel() for rule in rules]}


def refuse(rules: Sequence[ForbiddenPattern]) -> Callable[[str], str]:
    """A pydantic validator applying the same rules."""

    def check(value: str) -> str:
        for rule in rules:
            if re.search(rule.regex, value):
                raise ValueError(rule.message)
        return value

    return check


# S3's bucket naming rules beyond the character set (the pattern): names that S3 refuses or that
# cannot be a virtual-hosted DNS name.
BUCKET_RULES = [
    ForbiddenPattern(r"\.\.|\.-|-\.", "bucket must not contain '..', '.-' or '-.'"),
    ForbiddenPattern(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$", "bucket must not be formatted as an IP address"),
    ForbiddenPattern(r"^(xn--|sthree-|amzn-s3-demo-)", "bucket must not start with xn--, sthree- or amzn-s3-demo-"),
    ForbiddenPattern(r"(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$", "bucket must not end with an S3-reserved suffix"),
]

# Kubernetes' own syntax for the names that end up in the workers' pods.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# An image reference: [registry[:port]/]path[:tag][@sha256:digest], no whitespace.
IMAGE_REFERENCE = (
    r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"

class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Mode(enum.StrEnum):
    """How the job runs on each node."""

    CONTINUOUS = "Continuous"
    BATCH = "Batch"


class Device(enum.StrEnum):
    """Where the detector runs."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class SnapshotStyle(enum.StrEnum):
    """Whether the event snapshot has the detection boxes drawn on it."""

    ANNOTATED = "annotated"
    RAW = "raw"


class TolerationOperator(enum.StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(enum.StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]
QualifiedName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=317,
        pattern=QUALIFIED_NAME,
        description="a label key: [DNS-subdomain prefix/]name, the name at most 63 of A-Z a-z 0-9 - _ .",
    ),
]
DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
BucketName = Annotated[
    str,
    Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
        json_schema_extra=cel_rules(BUCKET_RULES),
    ),
    AfterValidator(refuse(BUCKET_RULES)),
]
_QUANTITY_SUFFIXES = {
    "m": decimal.Decimal("0.001"), "": decimal.Decimal(1),
    "k": decimal.Decimal(10) ** 3, "M": decimal.Decimal(10) ** 6, "G": decimal.Decimal(10) ** 9,
    "T": decimal.Decimal(10) ** 12, "P": decimal.Decimal(10) ** 15, "E": decimal.Decimal(10) ** 18,
    "Ki": decimal.Decimal(2) ** 10, "Mi": decimal.Decimal(2) ** 20, "Gi": decimal.Decimal(2) ** 30,
    "Ti": decimal.Decimal(2) ** 40, "Pi": decimal.Decimal(2) ** 50, "Ei": decimal.Decimal(2) ** 60,
}
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY)]
ResourceName = Literal["cpu", "memory", "ephemeral-storage"]
ClassName = Annotated[str, Field(min_length=1, max_length=63)]


def quantity_value(quantity: str) -> decimal.Decimal:
    """The value of a Kubernetes quantity (in the form `Quantity` admits), to compare two of them."""
    number = re.match(r"^[0-9.]+", quantity)
    assert number is not None, quantity
    return decimal.Decimal(number.group()) * _QUANTITY_SUFFIXES[quantity[number.end():]]


def host_path_problem(path: str) -> str | None:
    """Say what is wrong with a host path on its own (not yet against the allow-list)."""
    if not path.startswith("/"):
        return "hostPath must be absolute"
    if "//" in path:
        return "hostPath must not contain empty segments ('//')"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "hostPath must not contain '.' or '..' segments"
    if re.search(r"[\x00-\x1f\x7f]", path):
        return "hostPath must not contain control characters (newline, tab)"
    if any(len(segment.encode()) > MAX_PATH_SEGMENT_BYTES for segment in path.split("/")):
        return f"hostPath segments must be at most {MAX_PATH_SEGMENT_BYTES} bytes"
    return None


# Kubernetes' validation of a Pod's tolerations, as CEL (the CRD) and as Python (pydantic), message shared.
TOLERATION_RULES = [
    (
        "!has(self.value) || self.value == '' || !has(self.operator) || self.operator != 'Exists'",
        lambda t: not t.value or t.operator != TolerationOperator.EXISTS,
        "a toleration with operator Exists must not have a value",
    ),
    (
        "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        lambda t: bool(t.key) or t.operator == TolerationOperator.EXISTS,
        "a toleration without a key must use operator Exists",
    ),
    (
        "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        lambda t: t.toleration_seconds is None or t.effect == TaintEffect.NO_EXECUTE,
        "tolerationSeconds is only allowed with effect NoExecute",
    ),
]


class Toleration(ApiModel):
    """A toleration for tainted edge nodes, as in a Pod spec."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [{"rule": r, "message": m} for r, _, m in TOLERATION_RULES]}
    )

    key: QualifiedName | None = Field(
        None, description="Taint key to tolerate; empty with Exists tolerates every taint."
    )
    operator: TolerationOperator = Field(TolerationOperator.EQUAL, description="Exists or Equal.")
    value: LabelValue | None = Field(None, description="Taint value to match with Equal.")
    effect: TaintEffect | None = Field(None, description="Taint effect to match; empty matches all effects.")
    toleration_seconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated before eviction."
    )

    @model_validator(mode="after")
    def _check_like_kubernetes(self) -> Toleration:
        for _, holds, message in TOLERATION_RULES:
            if not holds(self):
                raise ValueError(message)
        return self


REQUESTS_WITHIN_LIMITS: JsonDict = {
    "rule": "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
    "!isQuantity(self.requests[k]) || !isQuantity(self.limits[k]) || "
    "quantity(self.requests[k]).compareTo(quantity(self.limits[k])) <= 0)",
    "message": "each resources.requests value must be at most its resources.limits value "
    "(the defaults are requests cpu 500m, memory 1Gi and limits memory 2Gi)",
}


DEFAULT_REQUESTS: dict[ResourceName, Quantity] = {"cpu": "500m", "memory": "1Gi"}
DEFAULT_LIMITS: dict[ResourceName, Quantity] = {"memory": "2Gi"}


class Resources(ApiModel):
    """Compute resources of each worker container (GPUs come from spec.accelerators)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [REQUESTS_WITHIN_LIMITS]})

    requests: dict[ResourceName, Quantity] = Field(
        default_factory=lambda: dict(DEFAULT_REQUESTS),
        max_length=3,
        description="Minimum resources reserved for the worker (Kubernetes quantities): "
        "cpu, memory, ephemeral-storage.",
    )
    limits: dict[ResourceName, Quantity] = Field(
        default_factory=lambda: dict(DEFAULT_LIMITS),
        max_length=3,
        description="Upper bounds for the worker (Kubernetes quantities): cpu, memory, ephemeral-storage.",
    )

    @model_validator(mode="after")
    def _check_requests_within_limits(self) -> Resources:
        limits = self.limits
        over = [k for k, v in self.requests.items() if k in limits and quantity_value(v) > quantity_value(limits[k])]
        if over:
            detail = ", ".join(f"{k} {self.requests[k]} > {self.limits[k]}" for k in over)
            raise ValueError(f"{REQUESTS_WITHIN_LIMITS['message']}: {detail}")
        return self


GPUS_FOR_NVIDIA: JsonDict = {
    "rule": "self.type != 'nvidia' || self.gpus >= 1",
    "message": "gpus must be at least 1 for type nvidia (with 0 the pod would see every GPU of the node)",
}


class AcceleratorTarget(ApiModel):
    """One accelerator kind the job accepts; each gets its own workload."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [GPUS_FOR_NVIDIA]})

    type: LabelValue = Field(
        ...,
        min_length=1,
        description=(
            f"Value of the node label {LABEL_ACCELERATOR} to match, e.g. cpu or nvidia. "
            "nvidia requests nvidia.com/gpu and uses the CUDA image."
        ),
    )
    image: str | None = Field(
        None,
        max_length=512,
        pattern=IMAGE_REFERENCE,
        description="Worker image for this kind, one of the images the admin allows (the chart's "
        "workerImages.allowed); defaults to the chart's image for this accelerator kind.",
    )
    runtime_class_name: DnsSubdomain | None = Field(
        None, description="RuntimeClass for the pods, e.g. nvidia on k3s with the NVIDIA container runtime."
    )
    gpus: int = Field(1, ge=0, le=16, description="nvidia.com/gpu per pod (only for type nvidia, at least 1).")

    @model_validator(mode="after")
    def _check_gpus(self) -> AcceleratorTarget:
        if self.type == "nvidia" and self.gpus < 1:
            raise ValueError(GPUS_FOR_NVIDIA["message"])
        return self


class InputSpec(ApiModel):
    """Where the video is on each node."""

    host_path: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="Absolute folder on the node with the video, mounted read-only. Must be under an allowed prefix.",
        json_schema_extra={"x-kubernetes-validations": HOST_PATH_RULES},
    )
    include: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        min_length=1,
        max_length=32,
        description="Glob patterns, relative to hostPath, of the files to process (** is recursive).",
    )

    @model_validator(mode="after")
    def _check_host_path(self) -> InputSpec:
        problem = host_path_problem(self.host_path)
        if problem:
            raise ValueError(problem)
        return self


class S3ModelSource(ApiModel):
    """Custom weights fetched from S3/MinIO, verified, then cached on the node."""

    bucket: BucketName = Field(..., description="Bucket holding the weights.")
    key: str = Field(..., min_length=1, description="Object key of the weights (.pt, .onnx or an OpenVINO zip).")
    sha256: str = Field(
        ..., pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the weights; a mismatch refuses the model."
    )


class ModelSpec(ApiModel):
    """The detector."""

    name: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        max_length=128,
        description="Built-in model name (baked into the image) or a file name for weights from S3.",
    )
    source: S3ModelSource | None = Field(
        None, description="Fetch the weights from the output's S3 endpoint instead of the built-in ones."
    )
    image_size: int = Field(640, ge=32, le=1920, multiple_of=32, description="Inference size in pixels.")
    confidence: float = Field(0.25, ge=0.0, le=1.0, description="Minimum detection confidence.")
    iou: float = Field(0.45, ge=0.0, le=1.0, description="IoU threshold of non-maximum suppression.")
    classes: list[ClassName] = Field(
        default_factory=lambda: ["person", "car"],
        min_length=1,
        max_length=100,
        description="Class names of interest; other detections are ignored.",
    )
    device: Device = Field(Device.AUTO, description="auto (cuda when present), cpu or cuda.")
    batch_size: int = Field(8, ge=1, le=64, description="Frames per forward pass (GPU); CPU uses 1.")


class EventsSpec(ApiModel):
    """How detections become events."""

    min_frames: int = Field(3, ge=1, le=1000, description="Sampled frames with the class needed to open an event.")
    cooldown_seconds: float = Field(
        3.0, ge=0.0, le=3600.0, description="Video seconds without the class after which the event closes."
    )
    snapshot: SnapshotStyle = Field(SnapshotStyle.ANNOTATED, description="annotated (boxes drawn) or raw.")
    blur_classes: list[ClassName] = Field(
        default_factory=list,
        max_length=100,
        description="Classes blurred in the snapshot before it leaves the node (e.g. person).",
    )
    snapshot_quality: int = Field(
        70, ge=10, le=100,
        description="JPEG quality of snapshots (70, as Frigate's default: a 640x360 frame is about 19 kB).",
    )
    stationary_seconds: float = Field(
        30.0, ge=0.0, le=86400.0,
        description="Video seconds an object stays still before it is stationary: its event closes (flagged "
        "stationary), its region leaves the motion gate, and it is only re-checked. 0 turns this off.",
    )
    stationary_recheck_seconds: float = Field(
        10.0, gt=0.0, le=3600.0, description="Video seconds between re-checks of a stationary object."
    )


class SecretRef(ApiModel):
    """S3 credentials by reference to a Secret in the job's namespace (never inline)."""

    name: DnsSubdomain = Field(..., description="Secret name.")
    access_key_key: SecretKey = Field("accessKey", description="Key in the Secret holding the access key.")
    secret_key_key: SecretKey = Field("secretKey", description="Key in the Secret holding the secret key.")


class OutputSpec(ApiModel):
    """Where events go."""

    endpoint: str = Field(
        ...,
        min_length=1,
        max_length=259,
        pattern=rf"^[A-Za-z0-9.-]+(:{PORT})?$",
        description="S3/MinIO endpoint as host[:port], without scheme; the port is 1-65535.",
    )
    bucket: BucketName = Field(..., description="Bucket for events (S3's bucket naming rules).")
    prefix: str = Field(
        # 409 keeps the longest event key within S3's 1024 bytes: namespace (63), job name (253) and
        # node name (253) at their Kubernetes maximum, the ids (16, 20), separators and ".json" (46).
        "events", max_length=409, pattern=r"^[A-Za-z0-9!_.*'()/-]*$", description="Key prefix for events."
    )
    secure: bool = Field(True, description="Use TLS to the endpoint.")
    region: str | None = Field(None, description="S3 region, if the server needs one.")
    credentials_secret_ref: SecretRef = Field(..., description="Secret with the S3 access and secret keys.")


class WebhookSecretRef(ApiModel):
    """The webhook's HMAC key by reference to a Secret in the job's namespace (never inline)."""

    name: str = Field(..., min_length=1, max_length=253, description="Secret name.")
    key: str = Field("hmacKey", min_length=1, max_length=253, description="Key in the Secret holding the HMAC key.")


class WebhookSpec(ApiModel):
    """Where the workers post a signed message about each event, once the event is confirmed in S3."""

    url: str = Field(
        ...,
        max_length=2048,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="http(s) URL the workers POST each event to (reachable from the edge nodes).",
    )
    secret_ref: WebhookSecretRef = Field(
        ..., description="Secret with the key of the HMAC-SHA256 signature (header X-Edge-Inference-Signature)."
    )
    classes: list[ClassName] = Field(
        default_factory=list, max_length=80, description="Classes to send; empty sends every event."
    )


class SamplingSpec(ApiModel):
    """Which frames are analysed."""

    fps: float = Field(2.0, gt=0.0, le=120.0, description="Frames per second of video to analyse.")
    motion_gating: bool = Field(True, description="Skip inference on frames where nothing moved.")
    motion_threshold: float = Field(
        0.002, ge=0.0, le=1.0, description="Fraction of changed pixels (small grey frame) that counts as motion."
    )


class OutboxSpec(ApiModel):
    """The durable on-node outbox for events waiting to be uploaded."""

    max_megabytes: int = Field(1024, ge=1, le=1048576, description="Size bound of the outbox on the node's disk.")


class InferenceJobSpec(ApiModel):
    """What to detect, where, and where the events go."""

    mode: Mode = Field(
        Mode.CONTINUOUS,
        description=(
            "Continuous watches for new video (DaemonSet); "
            "Batch processes what is there, per node, then finishes."
        ),
    )
    accelerators: list[AcceleratorTarget] = Field(
        default_factory=lambda: [AcceleratorTarget(type="cpu")],
        min_length=1,
        max_length=8,
        description="Accepted accelerator kinds; one workload per kind.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(a, self.exists_one(b, b.type == a.type))",
                    "message": "accelerator types must be unique",
                }
            ]
        },
    )
    node_selector: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict, max_length=32, description="Extra node labels the nodes must have."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations for tainted edge nodes."
    )
    resources: Resources = Field(default_factory=Resources, description="Worker container resources.")
    input: InputSpec = Field(..., description="The video on each node.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="The detector.")
    events: EventsSpec = Field(default_factory=EventsSpec, description="How detections become events.")
    output: OutputSpec = Field(..., description="Where events are uploaded.")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Which frames are analysed.")
    outbox: OutboxSpec = Field(default_factory=OutboxSpec, description="The on-node outbox.")
    webhook: WebhookSpec | None = Field(
        None, description="Notify a webhook of each event (delivered at least once, through a durable outbox)."
    )

    @model_validator(mode="after")
    def _check_unique_accelerators(self) -> InferenceJobSpec:
        types = [a.type for a in self.accelerators]
        if len(types) != len(set(types)):
            raise ValueError("accelerator types must be unique")
        return self


# ----------------------------------------------------------------------------- status


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Phase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"


class Condition(ApiModel):
    """Shaped like metav1.Condition."""

    type: str = Field(..., description="Ready, Progressing or Degraded.")
    status: ConditionStatus = Field(..., description="True, False or Unknown.")
    reason: str = Field(..., pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", description="CamelCase reason.")
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(..., description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="The spec generation this condition is about.")


class NodeCounts(ApiModel):
    desired: int = Field(0, description="Nodes that should run the job.")
    ready: int = Field(0, description="Nodes whose worker is running and reporting.")
    succeeded: int = Field(0, description="Nodes that finished (Batch).")
    failed: int = Field(0, description="Nodes whose worker failed (Batch).")


class NodeProgress(ApiModel):
    """Progress of one node, as read from its worker's metrics."""

    node: str = Field(..., description="Node name.")
    state: str = Field(..., description="Running, Succeeded, Failed, Pending or Stale.")
    reason: str | None = Field(
        None,
        description="Why the node failed: the Job's reason (e.g. BackoffLimitExceeded), WorkerFailed, "
        "NodeGone (Batch: the node was deleted or lost its labels) or StartDeadlineExceeded (Batch: "
        "its pod did not start in time).",
    )
    message: str | None = Field(
        None,
        max_length=MAX_NODE_MESSAGE,
        description="A failed node: the worker's own last words, from its container's termination message "
        "(e.g. `the event sink refuses: NoSuchBucket ...`, `cannot start: ...`, `batch finished with failures: "
        "...`), on one line and shortened.",
    )
    files_done: int = Field(0, description="Video files finished on this node.")
    frames_analysed: int = Field(0, description="Frames run through the detector.")
    events_uploaded: int = Field(0, description="Events confirmed by S3.")
    events_waiting: int = Field(0, description="Events waiting in the node's outbox.")
    last_heartbeat: str | None = Field(
        None,
        description="When the worker last answered (RFC 3339). The status is written only when something in it "
        "changes, so this may lag the worker's latest answer by up to the Stale grace.",
    )


class ProgressTotals(ApiModel):
    """Progress summed over all nodes."""

    files_done: int = Field(0, description="Video files finished.")
    frames_analysed: int = Field(0, description="Frames run through the detector.")
    events_uploaded: int = Field(0, description="Events confirmed by S3.")
    events_waiting: int = Field(0, description="Events waiting in node outboxes.")


class InferenceJobStatus(ApiModel):
    """Observed state, written by the operator only."""

    phase: Phase | None = Field(None, description="Pending, Running, Succeeded, Failed or Invalid.")
    observed_generation: int | None = Field(None, description="Generation of the spec last acted on.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Progressing, Degraded.")
    nodes: NodeCounts = Field(default_factory=NodeCounts, description="Node counts.")
    target_nodes: list[str] = Field(
        default_factory=list, description="Batch: the nodes that matched when the job started."
    )
    totals: ProgressTotals = Field(default_factory=ProgressTotals, description="Progress summed over nodes.")
    node_progress: list[NodeProgress] = Field(
        default_factory=list,
        max_length=MAX_NODE_PROGRESS,
        description="Per-node progress, bounded: nodes needing attention first, then the slowest.",
    )
    node_progress_omitted: int = Field(0, description="Nodes left out of nodeProgress to bound the status size.")
    events: int = Field(0, description="Events uploaded, summed over nodes (printer column).")
    ready_nodes: str = Field("", description="ready/desired (Batch: succeeded/desired), for the printer column.")


# ----------------------------------------------------------------------------- worker


class JobRef(ApiModel):
    namespace: str = "default"
    name: str = "standalone"


class S3Sink(ApiModel):
    type: Literal["s3"] = "s3"
    endpoint: str
    bucket: str
    prefix: str = "events"
    secure: bool = True
    region: str | None = None


class DirectorySink(ApiModel):
    type: Literal["directory"] = "directory"
    path: str


class WebhookTarget(ApiModel):
    """The worker's webhook settings (its HMAC key comes from the environment, never the config)."""

    url: str
    classes: list[str] = Field(default_factory=list)


class WorkerConfig(ApiModel):
    """Everything one worker needs; the operator sends exactly this as JSON."""

    job: JobRef = Field(default_factory=JobRef)
    node: str = Field("local", description="Node name, in object keys and metrics.")
    mode: Mode = Mode.BATCH
    input_dir: str = Field(WORKER_INPUT_DIR, description="Folder with the video inside the container.")
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    model: ModelSpec = Field(default_factory=ModelSpec)
    model_source_endpoint: S3Sink | None = Field(
        None, description="Where model.source is fetched from (the job's S3 endpoint)."
    )
    events: EventsSpec = Field(default_factory=EventsSpec)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    sink: Annotated[S3Sink | DirectorySink, Field(discriminator="type")]
    state_dir: str = Field(WORKER_STATE_DIR, description="Writable: outbox, ledger, model cache.")
    outbox: OutboxSpec = Field(default_factory=OutboxSpec)
    metrics_port: int = Field(
        WORKER_METRICS_PORT, ge=0, le=65535, description="Prometheus metrics and health; 0 disables."
    )
    poll_seconds: float = Field(2.0, gt=0, description="Continuous: how often the folder is rescanned.")
    settle_seconds: float = Field(5.0, ge=0, description="Continuous: a file unchanged this long is complete.")
    webhook: WebhookTarget | None = Field(None, description="Post each confirmed event here, signed.")
