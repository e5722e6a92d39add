"""One version from one place: pyproject.toml. scripts/set-version.py writes it everywhere else and
`--check` (run here and by the release workflow) fails on drift."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.release import REPO_ROOT, load_script, project_version

SCRIPT = REPO_ROOT / "scripts" / "set-version.py"


def _copy_of_the_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(
        REPO_ROOT,
        root,
        ignore=shutil.ignore_patterns(".git", ".work", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"),
    )
    return root


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        return ""  # model weights and other binaries


def test_every_place_agrees_with_pyproject() -> None:
    assert load_script("set-version.py").disagreements(REPO_ROOT) == []
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_places_are_the_ones_users_see() -> None:
    version = project_version()
    chart = yaml.safe_load((REPO_ROOT / "charts" / "edge-inference-operator" / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    app = yaml.safe_load((REPO_ROOT / "examples" / "argocd" / "application-operator.yaml").read_text())
    assert app["spec"]["source"]["targetRevision"] == version
    assert f'default = "{version}"' in (REPO_ROOT / "docker-bake.hcl").read_text()


def test_drift_is_reported_by_file(tmp_path: Path) -> None:
    root = _copy_of_the_repository(tmp_path)
    chart = root / "charts" / "edge-inference-operator" / "Chart.yaml"
    chart.write_text(re.sub(r'appVersion: "[^"]+"', 'appVersion: "9.9.9"', chart.read_text()))
    problems = load_script("set-version.py").disagreements(root)
    assert problems == [f"charts/edge-inference-operator/Chart.yaml: 9.9.9 (pyproject.toml: {project_version()})"]


def test_set_version_moves_everything_together(tmp_path: Path) -> None:
    root = _copy_of_the_repository(tmp_path)
    old = project_version()
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "set-version.py"), "9.8.7-rc.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    module = load_script("set-version.py")
    assert module.pyproject_version(root) == "9.8.7-rc.1"
    assert module.disagreements(root) == []
    old_ref = re.compile(rf"ghcr\.io/edge-inference/[a-z0-9-]+:{re.escape(old)}\b")
    leftovers = [str(path.relative_to(root)) for path in module._image_ref_files(root) if old_ref.search(_text(path))]
    assert leftovers == []
    chart_readme = (root / "charts" / "edge-inference-operator" / "README.md").read_text()
    assert "Version: 9.8.7-rc.1 · AppVersion: 9.8.7-rc.1" in chart_readme
    assert "--version 9.8.7-rc.1" in chart_readme


@pytest.mark.parametrize("bad", ["v1.2.3", "1.2", "01.2.3", "1.2.3 "])
def test_set_version_refuses_what_is_not_a_semantic_version(bad: str, tmp_path: Path) -> None:
    root = _copy_of_the_repository(tmp_path)
    before = (root / "pyproject.toml").read_text()
    script = root / "scripts" / "set-version.py"
    result = subprocess.run([sys.executable, str(script), bad], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not a semantic version" in result.stderr
    assert (root / "pyproject.toml").read_text() == before
