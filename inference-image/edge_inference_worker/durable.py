"""Crash-safe writes to the node's disk: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself is data)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(target: Path, data: bytes, temporary: Path) -> None:
    """Write `data` to `temporary`, fsync it, rename it over `target`, fsync `target`'s folder.

    `temporary` must be on the same filesystem as `target`; it is removed if the write fails.
    Raises OSError (e.g. ENOSPC) with nothing left behind.
    """
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
