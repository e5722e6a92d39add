"""What the release tests share: the bake file resolved as buildx resolves it, the project version, and the
release scripts (files under scripts/, which are not a package) loaded as modules.

    from support.release import bake_targets, build_script_images, load_script, project_version
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
BAKE_FILE = REPO_ROOT / "docker-bake.hcl"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class BakeTarget:
    """One image target of docker-bake.hcl, with inherited attributes merged and variables substituted."""

    name: str
    dockerfile: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    attest: tuple[str, ...]
    args: dict[str, str]


def project_version() -> str:
    """The version in pyproject.toml: the one definition."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def load_script(name: str) -> ModuleType:
    """scripts/<name> imported as a module (dash-named files included)."""
    path = REPO_ROOT / "scripts" / name
    module_name = path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"x"') and expressions bare ('VERSION')."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(parsed: dict, kind: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for block in parsed.get(kind, []):
        for label, body in block.items():
            found[_unquote(label)] = {k: v for k, v in body.items() if k != "__is_block__"}
    return found


def bake_variables(path: Path = BAKE_FILE) -> dict[str, str]:
    """Variable name -> default value."""
    parsed = hcl2.loads(path.read_text())
    return {name: _unquote(body.get("default", '""')) for name, body in _blocks(parsed, "variable").items()}


def bake_groups(path: Path = BAKE_FILE) -> dict[str, list[str]]:
    """Group name -> its targets."""
    parsed = hcl2.loads(path.read_text())
    return {name: [_unquote(t) for t in body["targets"]] for name, body in _blocks(parsed, "group").items()}


def _substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _substitute(v, variables) for k, v in value.items()}
    if isinstance(value, str) and not value.startswith('"'):
        return variables[value]  # a bare expression: bake files here only name variables
    return _INTERPOLATION.sub(lambda m: variables[m.group(1)], _unquote(value))


def bake_targets(path: Path = BAKE_FILE) -> dict[str, BakeTarget]:
    """Every target of the default group, resolved (inherits merged, later wins, as bake does)."""
    parsed = hcl2.loads(path.read_text())
    raw = _blocks(parsed, "target")
    variables = bake_variables(path)

    def merged(name: str) -> dict[str, Any]:
        body = raw[name]
        result: dict[str, Any] = {}
        for parent in body.get("inherits", []):
            result.update(merged(_unquote(parent)))
        result.update({k: v for k, v in body.items() if k != "inherits"})
        return result

    targets = {}
    for name in bake_groups(path)["default"]:
        body = _substitute(merged(name), variables)
        targets[name] = BakeTarget(
            name=name,
            dockerfile=body["dockerfile"],
            platforms=tuple(body["platforms"]),
            tags=tuple(body["tags"]),
            attest=tuple(body.get("attest", ())),
            args=dict(body.get("args", {})),
        )
    return targets


def build_script_images(images: str | None = None) -> dict[str, str]:
    """image tag -> Dockerfile, as `scripts/build-images.sh --dry-run` would build them (its default
    images, or the `IMAGES` given)."""
    env = {**os.environ, "IMAGES": images} if images is not None else None
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-images.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=env,
    )
    return dict(line.split() for line in result.stdout.splitlines())
