"""scripts/pin-base-images.py: base images become <tag>@<digest> from the recorded digests only, stages and
ARG references are left alone, and the committed Dockerfiles are either not yet pinned or pinned exactly as
recorded. (Resolving needs a registry: the release workflow does it; here the lookup is a table.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.release import REPO_ROOT, load_script

pin = load_script("pin-base-images.py")
# Made-up digests for the table lookup of these tests; the repository's record holds only registry answers.
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${PYTHON_IMAGE} AS build
RUN echo build
FROM --platform=linux/amd64 busybox:1.37 AS tools
FROM build AS test
FROM ${CUDA_IMAGE}
COPY --from=tools /bin/busybox /bin/
"""
RECORD = {
    "python:3.11.14-slim-bookworm": DIGEST_A,
    "nvidia/cuda:12.8.1-runtime-ubuntu24.04": DIGEST_B,
    "busybox:1.37": DIGEST_A,
}


def test_base_tags_are_args_and_froms_but_not_stages() -> None:
    assert pin.base_tags(DOCKERFILE) == [
        "python:3.11.14-slim-bookworm",
        "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
        "busybox:1.37",
    ]


def test_pinning_writes_tag_at_digest_and_is_idempotent() -> None:
    pinned = pin.pin_text(DOCKERFILE, RECORD)
    assert f"ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@{DIGEST_A}\n" in pinned
    assert f"ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04@{DIGEST_B}\n" in pinned
    assert f"FROM --platform=linux/amd64 busybox:1.37@{DIGEST_A} AS tools\n" in pinned
    assert "FROM build AS test\n" in pinned and "FROM ${PYTHON_IMAGE} AS build\n" in pinned
    assert pin.pin_text(pinned, RECORD) == pinned
    assert pin.base_tags(pinned) == pin.base_tags(DOCKERFILE)


def test_a_new_digest_replaces_the_old_one() -> None:
    pinned = pin.pin_text(DOCKERFILE, RECORD)
    moved = pin.pin_text(pinned, {**RECORD, "python:3.11.14-slim-bookworm": DIGEST_B})
    assert f"python:3.11.14-slim-bookworm@{DIGEST_B}" in moved and DIGEST_A in moved  # busybox keeps its own


def test_an_unrecorded_base_is_refused_not_guessed() -> None:
    with pytest.raises(pin.PinError, match="no digest recorded for busybox:1.37"):
        pin.pin_text(DOCKERFILE, {k: v for k, v in RECORD.items() if k != "busybox:1.37"})


def test_record_round_trips_and_refuses_malformed_lines(tmp_path: Path) -> None:
    record = tmp_path / "base-images.lock"
    pin.write_record(RECORD, record)
    assert pin.read_record(record) == RECORD
    record.write_text("python:3.11 sha256:short\n")
    with pytest.raises(pin.PinError, match="base-images.lock:1"):
        pin.read_record(record)


def test_resolve_asks_the_lookup_once_per_tag(tmp_path: Path) -> None:
    files = [tmp_path / "Dockerfile", tmp_path / "Dockerfile.cuda"]
    for path in files:
        path.write_text(DOCKERFILE)
    asked: list[str] = []

    def lookup(tag: str) -> str:
        asked.append(tag)
        return RECORD[tag]

    assert pin.resolve(files, lookup) == RECORD
    assert sorted(asked) == sorted(RECORD)


def test_resolving_without_docker_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pin.PinError, match="needs docker with buildx"):
        pin.registry_digest("python:3.11.14-slim-bookworm")


def test_committed_dockerfiles_are_unpinned_or_pinned_as_recorded() -> None:
    files = pin.dockerfiles(REPO_ROOT)
    assert {p.name for p in files} >= {"Dockerfile", "Dockerfile.cuda"}
    record = pin.read_record()
    for path in files:
        text = path.read_text()
        tags = pin.base_tags(text)
        assert tags, f"{path} names no base image"
        if "@sha256:" in text:
            assert pin.pin_text(text, record) == text, f"{path} is pinned to digests not in base-images.lock"
