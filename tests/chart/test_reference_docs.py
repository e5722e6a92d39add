"""docs/reference.md is generated from the CRD (scripts/gen_reference.py) and must be up to date."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from edge_inference_api.crd import build_crd

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "gen_reference.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_up_to_date() -> None:
    committed = (REPO_ROOT / "docs" / "reference.md").read_text()
    assert committed == _generator().render_reference(), "run `python scripts/gen_reference.py`"


def test_check_mode_agrees() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_field_of_the_schema_is_documented_with_its_description() -> None:
    generator = _generator()
    reference = generator.render_reference()
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for part in ("spec", "status"):
        documented = 0
        for path, schema, _ in list(generator.fields(root[part], part, True))[1:]:
            row = next(line for line in reference.splitlines() if line.startswith(f"| `{path}` |"))
            assert generator._cell(schema["description"]) in row
            documented += 1
        assert documented > 10


def test_constraints_are_spelled_out() -> None:
    generator = _generator()
    assert generator.constraints_of({"minimum": 0.0, "exclusiveMinimum": True, "maximum": 120.0}) == [
        "> 0.0",
        "<= 120.0",
    ]
    assert generator.constraints_of({"enum": ["Continuous", "Batch"]}) == ["one of `Continuous`, `Batch`"]
    assert generator.constraints_of({"pattern": "^(a|b)$"}) == ["matches `^(a\\|b)$`"]
    assert (
        generator.type_of({"type": "object", "additionalProperties": {"type": "string"}}) == "map of string to string"
    )
    assert generator.type_of({"type": "array", "items": {"type": "integer"}}) == "list of integer"


def test_readme_troubleshooting_covers_every_condition_reason() -> None:
    from edge_inference_api import conditions

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Troubleshooting by condition reason", 1)[1].split("\n## ", 1)[0]
    reasons = {
        value
        for name, value in vars(conditions).items()
        if name.isupper() and isinstance(value, str) and value not in {"Ready", "Progressing", "Degraded"}
    }
    assert reasons and {r for r in reasons if f"| `{r}` |" not in section} == set()


def test_readme_starts_with_the_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    before_sections = readme.split("\n## ", 1)[0]
    assert "make demo" in before_sections and "make test" in before_sections
    assert before_sections.index("make demo") < before_sections.index("make test")
