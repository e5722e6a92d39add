"""Finding the video files: globs, confinement to the input folder, identity, and "is it complete yet".

Names are matched case-insensitively (`CAM1.AVI`, `GOPR0001.MP4`). A name that is not valid UTF-8
(an old DVR's Latin-1) is kept as Python's surrogate-escaped `str` for opening the file, and shown
with backslash escapes (`cam\\xff.mp4`) wherever it leaves the process: logs, events, the ledger.

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

from .outcomes import SKIPPED, SYMLINK_ESCAPE, UNREADABLE

# A name that matches no include pattern but ends like one of these is counted once as `skipped`:
# video nobody asked for is worth a word, a text file is not.
VIDEO_SUFFIXES = frozenset({
    ".3gp", ".asf", ".avi", ".dav", ".flv", ".h264", ".h265", ".hevc", ".m2ts", ".m4v", ".mkv", ".mov",
    ".mp4", ".mpeg", ".mpg", ".mts", ".ts", ".webm", ".wmv",
})
# Bytes read from each end of a file for its content fingerprint (a rename or move keeps it).
FINGERPRINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class VideoFile:
    """A regular file inside the input folder that matched a glob.

    `file_id` is the id of its path unless the ledger knows these bytes under another path (the
    file was renamed or moved): then the worker gives it that id (`dataclasses.replace`).
    """

    path: Path
    rel: str  # posix path relative to the input folder (surrogate-escaped where not UTF-8)
    size: int
    mtime_ns: int
    file_id: str = ""

    def __post_init__(self) -> None:
        if not self.file_id:
            object.__setattr__(self, "file_id", file_id(self.rel))

    @property
    def name(self) -> str:
        """The relative path as shown in logs, events and the ledger (always valid UTF-8)."""
        return shown(self.rel)


@dataclass(frozen=True)
class SkippedFile:
    """A matching path that is not processed, and why."""

    rel: str  # as shown (see `shown`)
    outcome: str
    reason: str


def shown(rel: str) -> str:
    """A path as valid UTF-8: bytes that are not UTF-8 become `\\xNN` escapes."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def file_id(rel: str) -> str:
    """Deterministic id of a file from the path where it was first seen: the bytes of its name.

    Not its size: a camera that pauses longer than the settle time makes a file that is processed,
    then grows; processing it again must overwrite its events under the same keys, not add copies.
    """
    return hashlib.sha256(os.fsencode(rel)).hexdigest()[:16]


def fingerprint(path: Path, size: int) -> str:
    """A content fingerprint that survives a rename or a move: the size and both ends of the file.

    Both ends, because containers write their index at the end (mp4's moov, avi's idx1) and a
    camera's segments often share their first bytes. Read only for files the ledger does not know
    by path, so the common case costs nothing.
    """
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:32]


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
    # Case-insensitive: cameras write CAM1.AVI and GOPR0001.MP4 as often as cam1.avi.
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def matches(rel: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    return any(p.match(rel) for p in patterns)


def scan(root: Path, include: Sequence[str]) -> Iterator[VideoFile | SkippedFile]:
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
            elif name in filenames and path.suffix.lower() in VIDEO_SUFFIXES:
                yield SkippedFile(shown(rel), SKIPPED, "looks like video but matches no include pattern")
    yield from _unlistable(root, unlistable)


def _unlistable(root: Path, errors: list[OSError]) -> Iterator[SkippedFile]:
    while errors:
        error = errors.pop()
        rel = shown(Path(error.filename).relative_to(root).as_posix()) if error.filename else "."
        yield SkippedFile(f"{rel}/", UNREADABLE, f"cannot list folder: {error.strerror or error}")


def classify(root: Path, path: Path, rel: str) -> VideoFile | SkippedFile:
    """Decide whether one matching path may be read."""
    name = shown(rel)
    try:
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                where = shown(str(target))
                return SkippedFile(name, SYMLINK_ESCAPE, f"symlink points outside the input folder, to {where}")
        info = path.stat()
    except FileNotFoundError:
        return SkippedFile(name, UNREADABLE, "dangling symlink or file vanished")
    except OSError as exc:
        return SkippedFile(name, UNREADABLE, f"cannot stat: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return SkippedFile(name, UNREADABLE, f"not a regular file ({_kind(info.st_mode)})")
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
