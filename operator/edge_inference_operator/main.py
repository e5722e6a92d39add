"""`edge-inference-operator`: run the operator cluster-wide (the chart's Deployment runs this)."""

from __future__ import annotations

import logging
import os
import sys

import kopf
from edge_inference_api.errors import one_line
from pydantic import ValidationError

from edge_inference_operator.handlers import register_handlers
from edge_inference_operator.settings import ENV_PREFIX, OperatorSettings


def main(argv: list[str] | None = None) -> int:
    """Parse settings from the environment, then run kopf until SIGTERM."""
    del argv  # everything comes from the environment, as the chart sets it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = OperatorSettings.from_env(os.environ)
    except ValidationError as error:
        problems = one_line(error, lambda loc: ENV_PREFIX + "_".join(map(str, loc)).upper())
        print(f"edge-inference-operator: invalid settings: {problems}", file=sys.stderr)
        return 2
    registry = kopf.OperatorRegistry()
    register_handlers(registry, settings)
    kopf.run(
        registry=registry,
        clusterwide=True,
        standalone=True,  # one replica: un-peered kopf instances would both handle every job
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
