"""The operator process's settings, read once from its environment (the chart sets them)."""

from __future__ import annotations

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
    worker_image: str = Field("ghcr.io/edge-inference/worker:0.1.0", min_length=1)
    worker_image_cuda: str = Field("ghcr.io/edge-inference/worker-cuda:0.1.0", min_length=1)
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
            if name == "allowed_host_paths":
                values[name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            else:
                values[name] = raw
        return cls.model_validate(values)
