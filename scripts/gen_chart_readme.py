"""Generate charts/edge-inference-operator/README.md from Chart.yaml and the `# --` comments of values.yaml.

The same convention as helm-docs: a comment block starting with `# --` documents the key below it, and the
table lists every documented key with its type and default. `--check` exits 1 when the committed README
differs (a test runs it).

    python scripts/gen_chart_readme.py          # write the README
    python scripts/gen_chart_readme.py --check  # fail on drift
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "edge-inference-operator"
README = CHART_DIR / "README.md"
# Where the release workflow pushes the chart (helm push ... oci://ghcr.io/edge-inference/charts).
CHART_REPOSITORY = "oci://ghcr.io/edge-inference/charts"
KEY_LINE = re.compile(r"^( *)([A-Za-z][A-Za-z0-9_]*):")


@dataclass(frozen=True)
class ValueDoc:
    """One documented key of values.yaml."""

    key: str
    type: str
    default: object
    description: str


def _lookup(values: dict, dotted: str) -> object:
    node: object = values
    for part in dotted.split("."):
        node = node[part]  # type: ignore[index]
    return node


def type_name(value: object) -> str:
    """The helm-docs type of a value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def documented_values(text: str) -> list[ValueDoc]:
    """Every key of values.yaml that a `# --` comment block documents, in file order."""
    values = yaml.safe_load(text)
    docs: list[ValueDoc] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.removeprefix("#").strip())
            continue
        match = KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        stack = [(depth, key) for depth, key in stack if depth < indent] + [(indent, match.group(2))]
        if pending is not None:
            key = ".".join(k for _, k in stack)
            value = _lookup(values, key)
            docs.append(ValueDoc(key, type_name(value), value, " ".join(pending)))
            pending = None
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_readme() -> str:
    """The chart README: what the chart is, how to install it, and the table of values."""
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    rows = [
        f"| `{d.key}` | {d.type} | `{_cell(json.dumps(d.default))}` | {_cell(d.description)} |"
        for d in documented_values((CHART_DIR / "values.yaml").read_text())
    ]
    lines = [
        f"# {chart['name']}",
        "",
        f"Version: {chart['version']} · AppVersion: {chart['appVersion']} · Kubernetes: `{chart['kubeVersion']}`",
        "",
        chart["description"],
        "",
        "```bash",
        f"helm install {chart['name']} {CHART_REPOSITORY}/{chart['name']} --version {chart['version']} \\",
        "  --namespace edge-inference-system --create-namespace",
        "```",
        "",
        "The project's README has the quickstart, the security model and the troubleshooting table.",
        "This file is generated from `values.yaml` by `python scripts/gen_chart_readme.py`; edit the comments there.",
        "",
        "## Values",
        "",
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Write the README, or with --check report whether the committed one is current."""
    rendered = render_readme()
    if argv[1:] == ["--check"]:
        if README.exists() and README.read_text() == rendered:
            return 0
        print(f"{README} is out of date: run python scripts/gen_chart_readme.py", file=sys.stderr)
        return 1
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
