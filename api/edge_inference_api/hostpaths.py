"""The host-path allow-list: a job may only mount folders under an admin-approved prefix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from edge_inference_api.models import host_path_problem


def normalise_prefixes(prefixes: Sequence[str]) -> list[str]:
    """Allowed prefixes without trailing slashes; each must itself be a clean absolute path."""
    cleaned = []
    for prefix in prefixes:
        # "" must not become "/" (which would allow every path); only "/" itself may mean the root.
        stripped = prefix.rstrip("/") or ("/" if prefix else "")
        problem = host_path_problem(stripped)
        if problem:
            raise ValueError(f"allowed host path prefix {prefix!r} is invalid: {problem}")
        cleaned.append(stripped)
    return cleaned


def host_path_refusal(path: str, allowed_prefixes: Sequence[str]) -> str | None:
    """Why `path` may not be mounted, or None when it is under an allowed prefix.

    Matching is by whole path segments, so `/video_dir2` is not under `/video_dir`,
    and paths with `.`/`..`/empty segments are refused outright rather than resolved.
    """
    problem = host_path_problem(path)
    if problem:
        return problem
    candidate = PurePosixPath(path.rstrip("/") or "/")
    prefixes = normalise_prefixes(allowed_prefixes)
    if any(candidate.is_relative_to(prefix) for prefix in prefixes):
        return None
    allowed = ", ".join(prefixes) if prefixes else "(none: the admin has allowed no host paths)"
    return f"hostPath {path!r} is not under an allowed prefix; allowed prefixes: {allowed}"
