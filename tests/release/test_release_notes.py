"""scripts/release-notes.py: every released image and the chart with its digest, from buildx bake's metadata
file; a release missing an image or a digest fails instead of publishing incomplete notes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.release import REPO_ROOT, bake_groups, load_script, project_version

notes = load_script("release-notes.py")
# Made-up digests standing in for what a push returns.
DIGESTS = {target: "sha256:" + f"{i:x}" * 64 for i, target in enumerate(bake_groups()["default"], 1)}
CHART_DIGEST = "sha256:" + "c" * 64


def _metadata() -> dict:
    """What `docker buildx bake --push --metadata-file` writes, per target (plus bake's own build refs)."""
    meta: dict = {"buildx.build.warnings": []}
    for target, digest in DIGESTS.items():
        meta[target] = {
            "containerimage.digest": digest,
            "image.name": f"ghcr.io/edge-inference/{target}:{project_version()}",
            "buildx.build.ref": "builder/builder0/abc",
        }
    return meta


def test_notes_list_every_image_and_the_chart_with_digests() -> None:
    images = notes.image_digests(_metadata(), bake_groups()["default"])
    text = notes.render_notes(project_version(), images, CHART_DIGEST, "python:3.11 sha256:" + "d" * 64)
    for target, digest in DIGESTS.items():
        assert f"| {target} | `ghcr.io/edge-inference/{target}:{project_version()}` | `{digest}` |" in text
    assert f"`ghcr.io/edge-inference/charts/edge-inference-operator:{project_version()}` | `{CHART_DIGEST}`" in text
    assert f"--version {project_version()}" in text and "cosign verify" in text and "### Base images" in text


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda m: m.pop("worker"), "no image for target 'worker'"),
        (lambda m: m["operator"].update({"containerimage.digest": ""}), "target 'operator' has no sha256 digest"),
    ],
    ids=["image-missing", "digest-missing"],
)
def test_an_incomplete_build_fails_the_notes(broken, message: str, tmp_path: Path) -> None:
    metadata = _metadata()
    broken(metadata)
    path = tmp_path / "bake-metadata.json"
    path.write_text(json.dumps(metadata))
    targets = ",".join(bake_groups()["default"])
    script = REPO_ROOT / "scripts" / "release-notes.py"
    args = [sys.executable, str(script), project_version(), str(path), CHART_DIGEST, targets]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert message in result.stderr and result.stdout == ""


def test_a_bad_chart_digest_or_no_targets_fail() -> None:
    with pytest.raises(notes.NotesError, match="chart digest"):
        notes.render_notes("1.0.0", {}, "sha256:xyz")
    with pytest.raises(notes.NotesError, match="no image targets"):
        notes.image_digests(_metadata(), [])
