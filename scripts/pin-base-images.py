"""Pin the Dockerfiles' base images by digest, from digests the release workflow resolved and recorded.

    python scripts/pin-base-images.py resolve   # ask the registry (docker buildx imagetools) for each base
                                                # tag's digest and record it in base-images.lock
    python scripts/pin-base-images.py apply     # write <tag>@<digest> into every Dockerfile, from the record
    python scripts/pin-base-images.py check     # exit 1 unless every base is <tag>@<digest> as recorded

A base image is the default of an `ARG <NAME>_IMAGE=<ref>` or a `FROM <ref>` that names no stage or ARG. The
tag stays in the reference next to the digest (the runtime pulls by digest; people read the tag). Digests are
only ever written from the record, and the record only from a registry's answer: nothing here invents one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "base-images.lock"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# `ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm[@sha256:...]` or `FROM python:3.11[@sha256:...] [AS name]`.
ARG_BASE = re.compile(r"^(ARG [A-Z0-9_]*IMAGE=)([^\s@]+)(@sha256:[0-9a-f]{64})?(\s*)$", re.M)
FROM_BASE = re.compile(r"^(FROM (?:--platform=\S+ )?)([^\s@$]+)(@sha256:[0-9a-f]{64})?((?: [Aa][Ss] \S+)?\s*)$", re.M)


class PinError(Exception):
    """A base image that cannot be pinned (no digest recorded, a malformed record, no registry access)."""


def dockerfiles(root: Path = ROOT) -> list[Path]:
    """Every Dockerfile of the project's images."""
    return sorted(p for p in root.glob("*/Dockerfile*") if not p.name.endswith(".dockerignore"))


def _stage_names(text: str) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"^FROM \S+ [Aa][Ss] (\S+)", text, re.M)}


def base_tags(text: str) -> list[str]:
    """The base image tags a Dockerfile's text names (stages and ARG references are not images)."""
    stages = _stage_names(text)
    tags = [m.group(2) for m in ARG_BASE.finditer(text)]
    tags += [m.group(2) for m in FROM_BASE.finditer(text) if m.group(2).lower() not in stages]
    return list(dict.fromkeys(tags))


def read_record(path: Path = RECORD) -> dict[str, str]:
    """tag -> digest from the record (lines `<tag> <digest>`; # comments)."""
    record: dict[str, str] = {}
    if not path.exists():
        return record
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not DIGEST.match(parts[1]):
            raise PinError(f"{path.name}:{number}: expected '<tag> sha256:<64 hex>', got {line!r}")
        record[parts[0]] = parts[1]
    return record


def write_record(record: dict[str, str], path: Path = RECORD) -> None:
    """Write the record, sorted, with a header saying where it comes from."""
    lines = ["# Base image tag -> digest, resolved from the registry by scripts/pin-base-images.py resolve."]
    lines += [f"{tag} {digest}" for tag, digest in sorted(record.items())]
    path.write_text("\n".join(lines) + "\n")


def pin_text(text: str, record: dict[str, str]) -> str:
    """The Dockerfile text with every base image as <tag>@<digest> from the record."""
    stages = _stage_names(text)

    def pinned(match: re.Match[str]) -> str:
        tag = match.group(2)
        if tag.lower() in stages:
            return match.group(0)
        if tag not in record:
            raise PinError(f"no digest recorded for {tag}: run `scripts/pin-base-images.py resolve` first")
        return f"{match.group(1)}{tag}@{record[tag]}{match.group(4)}"

    return FROM_BASE.sub(pinned, ARG_BASE.sub(pinned, text))


def registry_digest(tag: str) -> str:
    """The digest the registry serves for `tag` (its multi-platform index), through docker buildx imagetools."""
    try:
        result = subprocess.run(
            ["docker", "buildx", "imagetools", "inspect", tag, "--format", "{{.Manifest.Digest}}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except FileNotFoundError as missing:
        raise PinError("resolving digests needs docker with buildx; none is on PATH") from missing
    digest = result.stdout.strip()
    if result.returncode != 0 or not DIGEST.match(digest):
        raise PinError(f"the registry gave no digest for {tag}: {result.stderr.strip() or digest!r}")
    return digest


def resolve(files: Iterable[Path], lookup: Callable[[str], str] = registry_digest) -> dict[str, str]:
    """tag -> digest for every base tag of `files`, as the registry answers now."""
    tags = dict.fromkeys(tag for path in files for tag in base_tags(path.read_text()))
    return {tag: lookup(tag) for tag in tags}


def unpinned(files: Iterable[Path], record: dict[str, str]) -> list[str]:
    """'path: tag' for every base reference not pinned to its recorded digest."""
    problems = []
    for path in files:
        text = path.read_text()
        if pin_text(text, record) != text:
            problems += [f"{path.name}: {tag}" for tag in base_tags(text)]
    return problems


def main(argv: list[str]) -> int:
    """resolve, apply or check (see the module docstring)."""
    command = argv[1] if len(argv) == 2 else ""
    files = dockerfiles()
    try:
        if command == "resolve":
            write_record(resolve(files))
        elif command == "apply":
            record = read_record()
            for path in files:
                path.write_text(pin_text(path.read_text(), record))
        elif command == "check":
            problems = unpinned(files, read_record())
            for problem in problems:
                print(f"pin-base-images: not pinned as recorded: {problem}", file=sys.stderr)
            return 1 if problems else 0
        else:
            print("usage: pin-base-images.py resolve|apply|check", file=sys.stderr)
            return 2
    except PinError as error:
        print(f"pin-base-images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
