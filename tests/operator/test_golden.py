"""Golden manifests: the children built from examples/*.yaml, kept under tests/operator/data/ so
that every change to what the operator creates shows up in review as a YAML diff.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/operator/test_golden.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from edge_inference_api.models import InferenceJobSpec
from edge_inference_operator.builders import ParsedJob, build_children
from edge_inference_operator.settings import OperatorSettings
from support.jobs import example_jobs

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
SETTINGS = OperatorSettings(allowed_host_paths=("/var/lib/edge-video",))


def examples() -> list[tuple[str, dict]]:
    return [(path.stem, doc) for path, doc in example_jobs("inferencejob*.yaml")]


@pytest.mark.parametrize(("stem", "doc"), examples(), ids=[s for s, _ in examples()])
def test_children_match_the_golden_file(stem: str, doc: dict) -> None:
    meta = doc["metadata"]
    job = ParsedJob(
        meta["namespace"],
        meta["name"],
        "00000000-0000-0000-0000-000000000001",
        InferenceJobSpec.model_validate(doc["spec"]),
    )
    targets = {"edge-cpu-1": "cpu", "edge-intel-1": "intel", "gpu-1": "nvidia"}
    rendered = yaml.safe_dump_all(build_children(job, SETTINGS, targets), sort_keys=True, width=120)
    golden = DATA / f"{stem}.children.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing; run with UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"children of {stem} changed; review and run with UPDATE_GOLDEN=1"
