"""The operator process's settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from edge_inference_api.hostpaths import normalise_prefixes
from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "EDGE_INFERENCE_"


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
        "ghcr.io/edge-inference/worker:0.1.0",
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
    batch_start_deadline_seconds: float = Field(
        600.0, gt=0, description="A Batch node whose worker has not started this long after its Job was made fails."
    )

    @field_validator("allowed_host_paths")
    @classmethod
    def _clean_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_prefixes(value))

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
