"""The tree passes ruff (the rules in pyproject.toml); the api, operator and worker packages keep their
layers (import-linter), types (mypy) and short, shallow functions."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The packages held to the limits below, by the folder they live in.
CHECKED_PACKAGES = {
    "edge_inference_api": ROOT / "api",
    "edge_inference_operator": ROOT / "operator",
    "edge_inference_worker": ROOT / "inference-image",
}
MAX_FUNCTION_LINES = 50
MAX_NESTING = 3
# A comment with this on the line of a `def` (or just above it) says why the function may be longer or deeper.
WAIVER = "# size:"


def _env() -> dict[str, str]:
    """This checkout's packages first, whatever the virtualenv's editable install points at."""
    paths = [str(ROOT / "api"), str(ROOT / "operator"), str(ROOT / "inference-image")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "MYPYPATH": os.pathsep.join(paths)}


def _run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600)


def test_ruff_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_are_kept() -> None:
    """The operator's and the worker's layers, and the API importing neither of them (pyproject.toml)."""
    result = _run(str(BIN / "lint-imports"), str(ROOT / "pyproject.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_mypy_is_clean(tmp_path: Path) -> None:
    """By package name, from outside the tree: the operator/ folder must never shadow the stdlib's `operator`."""
    packages = [arg for name in CHECKED_PACKAGES for arg in ("-p", name)]
    config = str(ROOT / "pyproject.toml")
    cache = str(tmp_path / "mypy-cache")
    result = _run(sys.executable, "-m", "mypy", "--config-file", config, "--cache-dir", cache, *packages, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _depth(statements: list[ast.stmt]) -> int:
    """How deep blocks nest in `statements` (an `elif` is as deep as its `if`; nested functions count apart)."""
    deepest = 0
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        bodies = [getattr(statement, field, []) for field in ("body", "orelse", "finalbody")]
        bodies += [handler.body for handler in getattr(statement, "handlers", [])]
        bodies += [case.body for case in getattr(statement, "cases", [])]
        if isinstance(statement, ast.If) and len(statement.orelse) == 1 and isinstance(statement.orelse[0], ast.If):
            deepest = max(deepest, _depth(statement.orelse))  # elif
            bodies = [statement.body]
        inner = max((_depth(body) for body in bodies if body), default=-1)
        deepest = max(deepest, inner + 1)
    return deepest


def _functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[str]]]:
    for package, folder in CHECKED_PACKAGES.items():
        for path in sorted((folder / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node, lines


def _waived(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return any(WAIVER in line for line in lines[max(first - 2, 0) : node.lineno])


def test_product_functions_are_short_and_shallow() -> None:
    too_big = []
    for where, node, lines in _functions():
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        depth = _depth(node.body)
        if (length > MAX_FUNCTION_LINES or depth > MAX_NESTING) and not _waived(node, lines):
            too_big.append(f"{where}: {length} lines, nesting {depth}")
    advice = f"split them, or say why on the def with '{WAIVER} <why>'"
    assert not too_big, f"over {MAX_FUNCTION_LINES} lines or nested deeper than {MAX_NESTING} ({advice}): {too_big}"


@pytest.mark.parametrize(
    ("source", "depth"),
    [
        ("x = 1", 0),
        ("if a:\n    x = 1", 1),
        ("if a:\n    x = 1\nelif b:\n    if c:\n        x = 2", 2),
        (
            "for a in b:\n    with c:\n        try:\n            x = 1\n"
            "        except E:\n            if d:\n                y",
            4,
        ),
        ("def f():\n    if a:\n        if b:\n            x = 1", 0),
    ],
)
def test_nesting_is_measured_by_blocks(source: str, depth: int) -> None:
    assert _depth(ast.parse(source).body) == depth
