"""The hashed lock files agree with what they lock: every requirements/<name>.txt is the compilation of its
.in (every top-level requirement pinned within its specifier, every other pin pulled in by one of them,
every pin with hashes), and pins agree with pyproject.toml's. Checked offline; scripts/lock-requirements.sh
recompiles them against the index."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.release import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements"
INPUTS = sorted(REQUIREMENTS.glob("*.in"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass
class Pin:
    """One locked package: its version, hashes, and what pulled it in (pip-compile's `# via` lines)."""

    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def parse_lock(text: str) -> dict[str, Pin]:
    """name -> Pin, from pip-compile's output (requirement line, `--hash` lines, `# via` lines)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in text.splitlines():
        stripped = line.strip()
        match = PIN.match(line)
        if match:
            current = pins.setdefault(canonicalize_name(match.group(1)), Pin(match.group(2)))
            current.hashes += HASH.findall(line)
            in_via = False
        elif current is not None and stripped.startswith("--hash="):
            current.hashes += HASH.findall(stripped)
        elif current is not None and stripped.startswith("# via"):
            in_via = True
            rest = stripped.removeprefix("# via").strip()
            current.via += [rest] if rest else []
        elif current is not None and in_via and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#").strip())
        elif stripped and not stripped.startswith("#"):
            assert stripped.startswith("--"), f"not a pinned requirement: {line!r}"
    return pins


def top_level(path: Path) -> list[Requirement]:
    """The requirements an .in file names (options and comments skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def wanted_by(path: Path) -> list[Requirement]:
    """The requirements an .in file names, with those of the files it includes (`-r other.in`)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    included = [path.parent / line.split()[1] for line in lines if line.startswith("-r ")]
    return top_level(path) + [r for other in included for r in wanted_by(other)]


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in listed]


def test_there_are_locks_for_the_images() -> None:
    assert {p.name for p in INPUTS} >= {"operator.in", "build.in"}


@pytest.mark.parametrize("source", INPUTS, ids=_ids(INPUTS))
def test_every_in_file_has_its_lock(source: Path) -> None:
    assert source.with_suffix(".txt").is_file(), f"run scripts/lock-requirements.sh for {source.name}"


@pytest.mark.parametrize("source", INPUTS, ids=_ids(INPUTS))
def test_every_pin_is_exact_and_hashed(source: Path) -> None:
    pins = parse_lock(source.with_suffix(".txt").read_text())
    assert pins
    unhashed = sorted(name for name, pin in pins.items() if not pin.hashes)
    assert unhashed == [], "pip install --require-hashes would refuse these"


@pytest.mark.parametrize("source", INPUTS, ids=_ids(INPUTS))
def test_top_level_requirements_are_pinned_within_their_specifiers(source: Path) -> None:
    pins = parse_lock(source.with_suffix(".txt").read_text())
    for requirement in top_level(source):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} of {source.name} is not in the lock"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (requirement, pins[name])
        assert any(f"-r requirements/{source.name}" in v or v == f"-r {source.name}" for v in pins[name].via), name


@pytest.mark.parametrize("source", INPUTS, ids=_ids(INPUTS))
def test_every_pin_is_needed_by_the_in_file(source: Path) -> None:
    """Each locked package is a top-level requirement or is pulled in by another locked package."""
    pins = parse_lock(source.with_suffix(".txt").read_text())
    wanted = {canonicalize_name(r.name) for r in wanted_by(source)}
    strays = []
    for name, pin in pins.items():
        parents = {canonicalize_name(v.split()[0]) for v in pin.via if not v.startswith("-r")}
        if name not in wanted and not parents & set(pins):
            strays.append(name)
    assert strays == []


@pytest.mark.parametrize("source", INPUTS, ids=_ids(INPUTS))
def test_locked_versions_satisfy_pyproject(source: Path) -> None:
    pins = parse_lock(source.with_suffix(".txt").read_text())
    for requirement in _pyproject_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is not None:
            assert requirement.specifier.contains(pin.version, prereleases=True), (source.name, requirement, pin)


def test_operator_lock_covers_the_operator_extra_and_the_base() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    needed |= {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["operator"]}
    assert {canonicalize_name(r.name) for r in top_level(REQUIREMENTS / "operator.in")} == needed


def test_build_lock_holds_the_build_backend_pyproject_asks_for() -> None:
    build = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = parse_lock((REQUIREMENTS / "build.txt").read_text())
    for requirement in map(Requirement, build):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)].version)


def test_the_parser_catches_a_missing_hash_and_a_stray_pin() -> None:
    lock = (
        "kopf==1.45.2 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r requirements/x.in\n"
        "leftpad==1.0\n    # via\n    #   nothing-locked\n"
    )
    pins = parse_lock(lock)
    assert pins["kopf"].hashes and pins["kopf"].via == ["-r requirements/x.in"]
    assert pins["leftpad"].hashes == [] and pins["leftpad"].via == ["nothing-locked"]
