"""Write a release's notes: every image and the chart with the digest it was pushed under.

    python scripts/release-notes.py <version> <bake-metadata.json> <chart-digest> <targets> [<base-images.lock>]

<bake-metadata.json> is what `docker buildx bake --push --metadata-file` wrote (per target:
"image.name" and "containerimage.digest"); <chart-digest> is the digest `helm push` printed; <targets> is
the comma-separated list of docker-bake.hcl's default group. Every one of them must have been pushed: a
release with an image missing fails here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHART_REF = "ghcr.io/edge-inference/charts/edge-inference-operator"


class NotesError(Exception):
    """The build metadata lacks an image or a digest."""


def image_digests(metadata: dict, targets: list[str]) -> dict[str, tuple[str, str]]:
    """target -> (pushed image name, digest), for every target; raises NotesError naming what is missing."""
    if not targets:
        raise NotesError("no image targets given")
    found = {}
    for target in targets:
        entry = metadata.get(target)
        if entry is None:
            raise NotesError(f"the build metadata has no image for target {target!r}")
        digest = entry.get("containerimage.digest", "")
        if not DIGEST.match(digest):
            raise NotesError(f"target {target!r} has no sha256 digest in the build metadata (got {digest!r})")
        name = entry.get("image.name", "").split(",")[0]
        found[target] = (name, digest)
    return found


def render_notes(version: str, images: dict[str, tuple[str, str]], chart_digest: str, bases: str = "") -> str:
    """The release notes in Markdown."""
    if not DIGEST.match(chart_digest):
        raise NotesError(f"the chart digest is not a sha256 digest: {chart_digest!r}")
    lines = [
        f"## edge-inference-operator {version}",
        "",
        "```bash",
        f"helm install edge-inference-operator oci://{CHART_REF} --version {version} \\",
        "  --namespace edge-inference-system --create-namespace",
        "```",
        "",
        "### Images and chart (signed with cosign, keyless; SBOM and provenance attached)",
        "",
        "| artifact | reference | digest |",
        "|---|---|---|",
    ]
    lines += [f"| {target} | `{name}` | `{digest}` |" for target, (name, digest) in images.items()]
    lines += [f"| chart | `{CHART_REF}:{version}` | `{chart_digest}` |", ""]
    lines += [
        "Verify a signature:",
        "",
        "```bash",
        "cosign verify <reference>@<digest> \\",
        "  --certificate-identity-regexp '^https://github.com/edge-inference/edge-inference-operator/' \\",
        "  --certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "```",
    ]
    if bases.strip():
        lines += ["", "### Base images", "", "```", bases.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the notes; exit 1 with one line when an image or digest is missing."""
    if len(argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    version, metadata_path, chart_digest, targets = argv[1:5]
    bases = Path(argv[5]).read_text() if len(argv) == 6 else ""
    metadata = json.loads(Path(metadata_path).read_text())
    try:
        images = image_digests(metadata, [t for t in targets.split(",") if t])
        print(render_notes(version, images, chart_digest, bases), end="")
    except NotesError as error:
        print(f"release-notes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
