"""Set the project version everywhere it is written, from the one place it is defined: pyproject.toml.

    python scripts/set-version.py 0.2.0     # write 0.2.0 into pyproject.toml and everything that follows it
    python scripts/set-version.py --check   # exit 1 when any place disagrees with pyproject.toml

What follows the version: the chart's version and appVersion, the image tags (docker-bake.hcl's default
VERSION and every ghcr.io/edge-inference/<image>:<version> reference), the Argo CD Application's
targetRevision, the README's `helm install --version`, the operator's User-Agent, and the chart README
(regenerated). The release workflow refuses a tag that is not v<pyproject version>.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$")
# Folders whose files may name an image by tag (code, tests and their golden files, docs, examples).
IMAGE_REF_FOLDERS = ("api", "operator", "inference-image", "tests", "docs", "examples", "charts", "scripts")
IMAGE_REF_FILES = ("README.md", "Makefile")


@dataclass(frozen=True)
class VersionSpot:
    """One place that carries the version: a file and a pattern whose group 2 is the version."""

    path: str
    pattern: str

    def find(self, root: Path) -> list[str]:
        """The versions written at this spot (one per match)."""
        return [m.group(2) for m in re.finditer(self.pattern, (root / self.path).read_text(), re.M)]

    def write(self, root: Path, version: str) -> None:
        """Replace the version at every match of this spot."""
        file = root / self.path
        file.write_text(
            re.sub(self.pattern, lambda m: f"{m.group(1)}{version}{m.group(3)}", file.read_text(), flags=re.M)
        )


SPOTS = [
    VersionSpot("pyproject.toml", r'^(version = ")([^"]+)(")'),
    VersionSpot("charts/edge-inference-operator/Chart.yaml", r"^(version: )(\S+)()$"),
    VersionSpot("charts/edge-inference-operator/Chart.yaml", r'^(appVersion: ")([^"]+)(")'),
    VersionSpot("docker-bake.hcl", r'(variable "VERSION" \{\n  default = ")([^"]+)(")'),
    VersionSpot("examples/argocd/application-operator.yaml", r"^(    targetRevision: )(\S+)()$"),
    VersionSpot("README.md", r"(oci://ghcr\.io/edge-inference/charts/edge-inference-operator --version )([0-9]\S*)()"),
    VersionSpot("README.md", r"^(  VERSION=)(\S+)()$"),
    VersionSpot("operator/edge_inference_operator/kube.py", r'^(USER_AGENT = "edge-inference-operator/)([^"]+)(")'),
]
IMAGE_REF = r"(ghcr\.io/edge-inference/[a-z0-9-]+:)({old})(?![0-9A-Za-z.-])"


def pyproject_version(root: Path = ROOT) -> str:
    """The project version: the one definition."""
    return SPOTS[0].find(root)[0]


def disagreements(root: Path = ROOT) -> list[str]:
    """Every spot whose version differs from pyproject.toml's, as 'path: found X' lines."""
    version = pyproject_version(root)
    problems = []
    for spot in SPOTS:
        found = spot.find(root)
        if not found:
            problems.append(f"{spot.path}: no version found (pattern {spot.pattern!r})")
        problems += [f"{spot.path}: {v} (pyproject.toml: {version})" for v in found if v != version]
    return problems


def _image_ref_files(root: Path) -> list[Path]:
    files = [root / name for name in IMAGE_REF_FILES if (root / name).is_file()]
    for folder in IMAGE_REF_FOLDERS:
        files += [p for p in sorted((root / folder).rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return files


def _replace_image_refs(root: Path, old: str, new: str) -> None:
    pattern = re.compile(IMAGE_REF.format(old=re.escape(old)))
    for path in _image_ref_files(root):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary files (models, icons) name no image
        replaced = pattern.sub(lambda m: f"{m.group(1)}{new}", text)
        if replaced != text:
            path.write_text(replaced)


def set_version(root: Path, new: str, regenerate: Callable[[Path], None]) -> None:
    """Write `new` at every spot and into every image reference that carried the old version."""
    if not SEMVER.match(new):
        raise ValueError(f"not a semantic version: {new!r} (e.g. 0.2.0 or 0.2.0-rc.1)")
    old = pyproject_version(root)
    for spot in SPOTS:
        spot.write(root, new)
    _replace_image_refs(root, old, new)
    regenerate(root)


def _regenerate_chart_readme(root: Path) -> None:
    subprocess.run([sys.executable, str(root / "scripts" / "gen_chart_readme.py")], check=True)


def main(argv: list[str]) -> int:
    """Set the version, or check that every place agrees."""
    if argv[1:] == ["--check"]:
        problems = disagreements()
        for problem in problems:
            print(f"set-version: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) != 2:
        print("usage: set-version.py <version> | --check", file=sys.stderr)
        return 2
    try:
        set_version(ROOT, argv[1], _regenerate_chart_readme)
    except ValueError as error:
        print(f"set-version: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
