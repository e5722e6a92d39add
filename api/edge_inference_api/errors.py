"""How a pydantic ValidationError reads to a user: one line that names each field and its problem."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

Location = tuple[int | str, ...]


def dotted(root: str) -> Callable[[Location], str]:
    """Field names as `root.a.b` (`root` alone for the object itself)."""

    def name(loc: Location) -> str:
        return ".".join([root, *map(str, loc)])

    return name


def one_line(error: ValidationError, name: Callable[[Location], str], limit: int | None = None) -> str:
    """Every problem as `field: problem`, joined by '; ' (at most `limit` of them).

    `name` says how a field's location reads where the user wrote it (a path in the spec, an
    environment variable).
    """
    problems = error.errors()[:limit]
    return "; ".join(f"{name(problem['loc'])}: {problem['msg']}" for problem in problems)
