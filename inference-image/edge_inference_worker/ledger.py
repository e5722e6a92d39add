"""The progress ledger in the state folder: which files are done and where to resume the others.

One small JSON file per file id, written atomically (temp file, fsync, rename, fsync of the
folder), so a crash leaves either the old or the new entry, never half of one. A resume point is
only written where no event is open and after every event before it is durably in the outbox:
resuming there can repeat work but can neither lose nor duplicate an event.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .durable import fsync_directory

log = logging.getLogger(__name__)

PARTIAL = "partial"
FINISHED = "finished"


@dataclass(frozen=True)
class FileProgress:
    file_id: str
    rel: str
    size: int
    state: str  # partial or finished
    outcome: str | None = None  # for finished files: done, corrupt, ...
    resume_index: int = 0  # partial: next sample index at `fps`
    fps: float = 0.0

    def start_index(self, fps: float) -> int:
        """Where to resume at the current analysis rate (the rate may have changed since)."""
        if self.state != PARTIAL or self.resume_index == 0:
            return 0
        if self.fps == fps:
            return self.resume_index
        return math.floor(self.resume_index / self.fps * fps)


class Ledger:
    """Loads every entry at start; writes one entry per checkpoint or finished file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, FileProgress] = {}
        for path in directory.glob("*.json"):
            try:
                entry = FileProgress(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                # Unreadable entry: the file is processed again from the start (ids make that safe).
                log.warning("ledger entry ignored", extra={"fields": {"path": str(path), "error": str(exc)}})
                continue
            self._entries[entry.file_id] = entry

    def get(self, file_id: str) -> FileProgress | None:
        return self._entries.get(file_id)

    def checkpoint(self, file_id: str, rel: str, size: int, resume_index: int, fps: float) -> None:
        """Record that every event before sample `resume_index` is safe; raises OSError on a write failure."""
        self._write(FileProgress(file_id, rel, size, PARTIAL, None, resume_index, fps))

    def finish(self, file_id: str, rel: str, size: int, outcome: str) -> None:
        """Record a file as finished with this outcome; raises OSError on a write failure."""
        self._write(FileProgress(file_id, rel, size, FINISHED, outcome))

    def _write(self, entry: FileProgress) -> None:
        final = self.directory / f"{entry.file_id}.json"
        temporary = self.directory / f"{entry.file_id}.json.tmp"
        with open(temporary, "w") as handle:
            json.dump(asdict(entry), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        fsync_directory(self.directory)
        self._entries[entry.file_id] = entry
