"""The chart's README is generated from values.yaml (helm-docs style) and must be up to date."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from support.helm import CHART_DIR

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_chart_readme.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_chart_readme", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _schema_leaves(schema: dict, prefix: str = "") -> set[str]:
    """Dotted paths of the schema's settings (objects whose parts are free-form count as one setting)."""
    leaves = set()
    for key, sub in schema.get("properties", {}).items():
        parts = sub.get("properties")
        is_setting = parts is None or all(p.get("type") == "object" and "properties" not in p for p in parts.values())
        leaves |= {f"{prefix}{key}"} if is_setting else _schema_leaves(sub, f"{prefix}{key}.")
    return leaves


def test_committed_chart_readme_is_up_to_date() -> None:
    assert (CHART_DIR / "README.md").read_text() == _generator().render_readme(), (
        "run `python scripts/gen_chart_readme.py`"
    )


def test_check_mode_agrees() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_setting_of_the_schema_has_a_row() -> None:
    docs = _generator().documented_values((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert {d.key for d in docs} == _schema_leaves(schema)
    assert all(d.description for d in docs)


def test_comment_blocks_document_the_key_below_them() -> None:
    text = "a:\n  # -- first line\n  # second line\n  b: 1\n  c: [x]\n# -- top\nd: {}\n"
    docs = _generator().documented_values(text)
    assert [(d.key, d.type, d.default, d.description) for d in docs] == [
        ("a.b", "int", 1, "first line second line"),
        ("d", "object", {}, "top"),
    ]
