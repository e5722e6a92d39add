"""Finding the video files: globs, confinement to the input folder, and "is it complete yet".

Every candidate is resolved and must stay inside the input folder: a symlink whose target is
outside is refused (and counted by the caller), never opened. Symlinked directories are not
descended into, for the same reason. Anything that is not a regular file (a FIFO would block a
reader forever, a directory named like a video cannot be decoded) is refused as unreadable.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .outcomes import SYMLINK_ESCAPE, UNREADABLE


@dataclass(frozen=True)
class VideoFile:
    """A regular file inside the input folder that matched a glob."""

    path: Path
    rel: str  # posix path relative to the input folder, as in events and logs
    size: int
    mtime_ns: int

    @property
    def file_id(self) -> str:
        return file_id(self.rel)


@dataclass(frozen=True)
class Refusal:
    """A matching path that is not processed, and why."""

    rel: str
    outcome: str
    reason: str


def file_id(rel: str) -> str:
    """Deterministic id of a file: its relative path.

    Not its size: a camera that pauses longer than the settle time makes a file that is processed,
    then grows; processing it again must overwrite its events under the same keys, not add copies.
    """
    return hashlib.sha256(rel.encode()).hexdigest()[:16]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob on relative posix paths: `**/` is zero or more folders, `*` stays in a folder."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(rel: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    return any(p.match(rel) for p in patterns)


def scan(root: Path, include: Sequence[str]) -> Iterator[VideoFile | Refusal]:
    """Walk `root` (not following symlinked folders), yielding matching files and refusals, sorted.

    A folder that cannot be listed is a refusal too (its videos would otherwise vanish silently).
    """
    root = root.resolve()
    patterns = [glob_regex(p) for p in include]
    unlistable: list[OSError] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False, onerror=unlistable.append):
        yield from _unlistable(root, unlistable)
        dirnames.sort()
        base = Path(folder)
        # A folder named like a video matches too: it is refused rather than silently ignored.
        for name in sorted(filenames + dirnames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if matches(rel, patterns):
                yield classify(root, path, rel)
    yield from _unlistable(root, unlistable)


def _unlistable(root: Path, errors: list[OSError]) -> Iterator[Refusal]:
    while errors:
        error = errors.pop()
        rel = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
        yield Refusal(f"{rel}/", UNREADABLE, f"cannot list folder: {error.strerror or error}")


def classify(root: Path, path: Path, rel: str) -> VideoFile | Refusal:
    """Decide whether one matching path may be read."""
    try:
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                return Refusal(rel, SYMLINK_ESCAPE, f"symlink points outside the input folder, to {target}")
        info = path.stat()
    except FileNotFoundError:
        return Refusal(rel, UNREADABLE, "dangling symlink or file vanished")
    except OSError as exc:
        return Refusal(rel, UNREADABLE, f"cannot stat: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return Refusal(rel, UNREADABLE, f"not a regular file ({_kind(info.st_mode)})")
    return VideoFile(path=path, rel=rel, size=info.st_size, mtime_ns=info.st_mtime_ns)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "device or other"


class SettleTracker:
    """Continuous mode: a file is ready once its size and mtime have not changed for `settle_seconds`.

    Pure: the caller passes the clock, so the rule is tested without sleeping.
    """

    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._seen: dict[str, tuple[int, int, float]] = {}

    def ready(self, file: VideoFile, now: float) -> bool:
        """Record this observation of `file`; true once it has been stable long enough."""
        signature = (file.size, file.mtime_ns)
        previous = self._seen.get(file.rel)
        if previous is None or previous[:2] != signature:
            self._seen[file.rel] = (*signature, now)
            return self.settle_seconds == 0
        return now - previous[2] >= self.settle_seconds

    def forget(self, rel: str) -> None:
        self._seen.pop(rel, None)

    def retain(self, rels: set[str]) -> None:
        """Drop files no longer there (a long-running watcher must not remember every file ever seen)."""
        for rel in set(self._seen) - rels:
            del self._seen[rel]
