"""The operator process's settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edge_inference_api.hostpaths import normalise_prefixes
from edge_inference_api.models import API_GROUP
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from edge_inference_operator.names import LABEL_APP_NAME, LABEL_MANAGED_BY

ENV_PREFIX = "EDGE_INFERENCE_"
# Label keys the operator sets on its worker pods itself: an admin's extra label may not replace them,
# or the DaemonSet selectors and the operator's own bookkeeping would break.
RESERVED_LABEL_PREFIXES = (f"{API_GROUP}/", LABEL_APP_NAME, LABEL_MANAGED_BY)
# The pod-level securityContext fields an admin may set; the containers' own contexts (uid 10001, non-root,
# read-only, no capabilities) are fixed because the image and the state folder's owner depend on them.
POD_SECURITY_CONTEXT_FIELDS = frozenset(
    {"seccompProfile", "appArmorProfile", "seLinuxOptions", "supplementalGroups", "fsGroup", "fsGroupChangePolicy"}
)
DEFAULT_POD_SECURITY_CONTEXT = {"seccompProfile": {"type": "RuntimeDefault"}}


class WorkerPodDefaults(BaseModel):
    """What the cluster admin sets for every worker pod (the chart's `workerPods`, passed as one JSON value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    image_pull_secrets: tuple[str, ...] = Field((), description="Names of Secrets for pulling the worker images.")
    priority_class_name: str = Field("", description="PriorityClass of the worker pods; empty: the cluster default.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the worker pods.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations on the worker pods.")
    pod_security_context: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_POD_SECURITY_CONTEXT),
        description="The worker pods' pod-level securityContext.",
    )

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        # The chart passes Kubernetes' own shape, [{name: regcred}].
        if isinstance(value, list | tuple):
            return tuple(v["name"] if isinstance(v, dict) and set(v) == {"name"} else v for v in value)
        return value

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(k for k in value if k.startswith(RESERVED_LABEL_PREFIXES))
        if taken:
            raise ValueError(f"the operator sets these worker pod labels itself: {', '.join(taken)}")
        return value

    @field_validator("pod_security_context")
    @classmethod
    def _known_security_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - POD_SECURITY_CONTEXT_FIELDS)
        if unknown:
            allowed = ", ".join(sorted(POD_SECURITY_CONTEXT_FIELDS))
            raise ValueError(f"not settable for worker pods: {', '.join(unknown)} (allowed: {allowed})")
        return value


class OperatorSettings(BaseModel):
    """Settings of one operator process; `from_env` maps `EDGE_INFERENCE_<FIELD>` to each field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_host_paths: tuple[str, ...] = Field(
        (), description="Absolute host-path prefixes a job may mount; empty allows none (secure default)."
    )
    worker_images: dict[str, str] = Field(
        default_factory=lambda: {
            "cpu": "ghcr.io/edge-inference/worker:0.1.0",
            "nvidia": "ghcr.io/edge-inference/worker-cuda:0.1.0",
        },
        description="Worker image per accelerator kind (the chart's workerImages); kinds not listed use cpu's.",
    )
    export_image: str = Field(
        "ghcr.io/edge-inference/worker-export:0.1.0",
        min_length=1,
        description="Image (ultralytics + torch) of the init container that exports .pt weights from S3.",
    )
    allowed_worker_images: tuple[str, ...] = Field(
        (), description="Further images a job may pick in spec.accelerators[].image (the map's are always allowed)."
    )
    worker_image_pull_policy: str = Field("IfNotPresent", pattern=r"^(Always|IfNotPresent|Never)$")
    state_host_path: str = Field(
        "/var/lib/edge-inference", description="Node folder for outbox/ledger/model cache; per job <root>/<ns>/<job>."
    )
    metrics_port: int = Field(8080, ge=0, le=65535, description="The operator's own /metrics; 0 disables.")
    liveness_port: int = Field(8081, ge=1, le=65535, description="kopf's /healthz.")
    reconcile_seconds: float = Field(10.0, gt=0, description="Interval of the level-based reconcile timer.")
    scrape_timeout_seconds: float = Field(2.0, gt=0, description="Timeout of one worker /metrics scrape.")
    scrape_concurrency: int = Field(32, ge=1, description="Worker scrapes in flight at once.")
    stale_after_seconds: float = Field(
        60.0, ge=0, description="A running worker whose metrics fail this long is reported Stale."
    )
    backlog_age_seconds: float = Field(
        600.0, gt=0, description="An outbox whose oldest event is older than this counts as a backlog."
    )
    batch_backoff_limit: int = Field(3, ge=0, le=100, description="Retries of a Batch worker before its node fails.")
    worker_pod: WorkerPodDefaults = Field(
        default_factory=WorkerPodDefaults, description="Admin-set defaults of every worker pod (JSON in the env)."
    )
    batch_start_deadline_seconds: float = Field(
        600.0, gt=0, description="A Batch node whose worker has not started this long after its Job was made fails."
    )

    @field_validator("allowed_host_paths")
    @classmethod
    def _clean_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_prefixes(value))

    @field_validator("worker_pod", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        # One environment variable carries the whole object, as JSON (the chart writes it with toJson).
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("worker_images")
    @classmethod
    def _cpu_image_is_the_fallback(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("cpu"):
            raise ValueError("worker_images must name the cpu image (the image of every kind not listed)")
        return value

    def image_for(self, accelerator: str) -> str:
        """The admin's worker image for an accelerator kind."""
        return self.worker_images.get(accelerator) or self.worker_images["cpu"]

    def image_allowed(self, image: str) -> bool:
        """Whether a job may pick `image`: one of the map's images or of the allow-list."""
        return image in self.worker_images.values() or image in self.allowed_worker_images

    @field_validator("state_host_path")
    @classmethod
    def _clean_state_root(cls, value: str) -> str:
        return normalise_prefixes([value])[0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """Parse the settings from environment variables; unset variables keep their defaults."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            if name in ("allowed_host_paths", "allowed_worker_images"):
                values[name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            elif name == "worker_images":
                try:
                    values[name] = json.loads(raw)
                except ValueError:
                    values[name] = raw  # refused by the model with a clear "should be a valid dictionary"
            else:
                values[name] = raw
        return cls.model_validate(values)
