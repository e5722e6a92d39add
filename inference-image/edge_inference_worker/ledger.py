"""The progress ledger in the state folder: which files are done and where to resume the others.

One small JSON file per file id, written atomically (temp file, fsync, rename, fsync of the
folder), so a crash leaves either the old or the new entry, never half of one. A resume point is
only written where no event is open and after every event before it is durably in the outbox:
resuming there can repeat work but can neither lose nor duplicate an event.

A finished entry also keeps the file's content fingerprint (so a renamed or moved file is known
by its bytes), the digest of the settings it was processed with and when, and for `failed` how
many times in a row it failed: a failure is tried again once the settings change or after a
back-off (`retry_after`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .durable import fsync_directory

log = logging.getLogger(__name__)

PARTIAL = "partial"
FINISHED = "finished"

# A failed file is tried again after this long, doubling per failure in a row up to a day: a
# detector that ran out of memory may work tomorrow; one that always fails costs little.
FAILED_RETRY_SECONDS = (600.0, 86400.0)


@dataclass(frozen=True)
class FileProgress:
    file_id: str
    rel: str  # where it was first seen, relative to the input folder (surrogate-escaped where not UTF-8)
    size: int
    state: str  # partial or finished
    outcome: str | None = None  # for finished files: done, corrupt, ...
    resume_index: int = 0  # partial: next sample index at `fps`
    fps: float = 0.0
    fingerprint: str = ""  # finished: see files.fingerprint
    settings: str = ""  # finished: digest of the settings it was processed with
    finished_at: float = 0.0  # finished: unix time
    failures: int = 0  # finished as failed: failures in a row

    def retry_after(self) -> float:
        """Unix time after which a failed file is tried again with the same settings."""
        first, longest = FAILED_RETRY_SECONDS
        return self.finished_at + min(longest, first * 2 ** max(0, self.failures - 1))

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
        self._by_fingerprint: dict[str, str] = {}
        known = {f.name for f in fields(FileProgress)}
        for path in directory.glob("*.json"):
            try:
                # Fields a newer worker added are ignored, ones an older worker lacked take defaults.
                entry = FileProgress(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                # Unreadable entry: the file is processed again from the start (ids make that safe).
                log.warning("ledger entry ignored", extra={"fields": {"path": str(path), "error": str(exc)}})
                continue
            self._remember(entry)

    def get(self, file_id: str) -> FileProgress | None:
        return self._entries.get(file_id)

    def by_fingerprint(self, fingerprint: str) -> FileProgress | None:
        """The finished entry of a file with these bytes, under whatever path it was first seen."""
        file_id = self._by_fingerprint.get(fingerprint)
        return None if file_id is None else self._entries.get(file_id)

    def checkpoint(self, file_id: str, rel: str, size: int, resume_index: int, fps: float) -> None:
        """Record that every event before sample `resume_index` is safe; raises OSError on a write failure."""
        self._write(FileProgress(file_id, rel, size, PARTIAL, None, resume_index, fps))

    def finish(
        self, file_id: str, rel: str, size: int, outcome: str, *, fingerprint: str = "", settings: str = "",
        finished_at: float = 0.0, failures: int = 0,
    ) -> None:
        """Record a file as finished with this outcome; raises OSError on a write failure."""
        self._write(FileProgress(file_id, rel, size, FINISHED, outcome, fingerprint=fingerprint, settings=settings,
                                 finished_at=finished_at, failures=failures))

    def _write(self, entry: FileProgress) -> None:
        final = self.directory / f"{entry.file_id}.json"
        temporary = self.directory / f"{entry.file_id}.json.tmp"
        with open(temporary, "w") as handle:
            json.dump(asdict(entry), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        fsync_directory(self.directory)
        self._remember(entry)

    def _remember(self, entry: FileProgress) -> None:
        self._entries[entry.file_id] = entry
        if entry.fingerprint:
            self._by_fingerprint[entry.fingerprint] = entry.file_id
