"""Detections become events: pure grouping over sampled video time, no I/O.

Rule (per class): a class seen in at least `min_frames` analysed frames, with no gap of
`cooldown` video seconds between sightings, opens an event; the event closes at the first sampled
frame where the class has been absent for `cooldown` seconds, or at the end of the file. Several
objects of one class on screen together make one event (the snapshot shows them all).

Everything is a function of the frames given, in order, so a file analysed again (after a crash,
from the last checkpoint) yields the same events with the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Sampled times are k / fps: a float tolerance keeps "3 seconds later" from being 2.9999999.
EPSILON = 1e-6

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One box from the detector, in pixels of the original frame (x1, y1, x2, y2)."""

    cls: str
    confidence: float
    box: Box


@dataclass(frozen=True)
class Interest:
    """What makes a detection count: one of the classes of interest, at or above the confidence threshold."""

    classes: frozenset[str]
    confidence: float

    def wants(self, cls: str, confidence: float) -> bool:
        """Whether a detection of `cls` at `confidence` counts (the one place this rule is written)."""
        return cls in self.classes and confidence >= self.confidence

    def keep(self, detections: Sequence[Detection]) -> list[Detection]:
        """The detections that count, in order."""
        return [d for d in detections if self.wants(d.cls, d.confidence)]


@dataclass(frozen=True)
class Event:
    """A closed event, ready to be written."""

    event_id: str
    file_id: str
    cls: str
    start: float  # video seconds of the first sighting
    end: float  # video seconds of the last sighting
    frames: int  # analysed frames in which the class was seen
    peak_confidence: float
    mean_confidence: float
    best_time: float
    best_box: Box
    best_frame: Any  # what the caller passed with the best frame (image and all its detections)
    stationary: bool = False  # closed because its object stopped moving (see stationary.py)


def event_id(file_id: str, cls: str, start: float) -> str:
    """Deterministic id: same file, class and start time give the same id (and object key)."""
    return hashlib.sha256(f"{file_id}\0{cls}\0{round(start * 1000)}".encode()).hexdigest()[:20]


@dataclass
class _Track:
    start: float
    last: float
    frames: int = 0
    confidence_sum: float = 0.0
    peak: float = -1.0
    best_time: float = 0.0
    best_box: Box = (0.0, 0.0, 0.0, 0.0)
    best_frame: Any = field(default=None, repr=False)
    stationary: bool = False

    def add(self, time: float, detection: Detection, frame: Any) -> None:
        self.last = time
        self.frames += 1
        self.confidence_sum += detection.confidence
        if detection.confidence > self.peak:  # strict: the first of equal peaks wins, deterministically
            self.peak = detection.confidence
            self.best_time = time
            self.best_box = detection.box
            self.best_frame = frame


class EventGrouper:
    """Groups per-frame detections of one file into events (see the module docstring)."""

    def __init__(self, file_id: str, min_frames: int, cooldown_seconds: float) -> None:
        self.file_id = file_id
        self.min_frames = min_frames
        self.cooldown = cooldown_seconds
        self._tracks: dict[str, _Track] = {}

    @property
    def idle(self) -> bool:
        """Nothing open and nothing pending: the state equals a fresh grouper (a safe checkpoint)."""
        return not self._tracks

    def observe(self, time: float, detections: Sequence[Detection] | None, frame: Any = None) -> list[Event]:
        """Feed one sampled frame (`detections` None: not analysed); return the events it closes."""
        best: dict[str, Detection] = {}
        for detection in detections or ():
            current = best.get(detection.cls)
            if current is None or detection.confidence > current.confidence:
                best[detection.cls] = detection
        closed = []
        for cls in sorted(self._tracks):
            track = self._tracks[cls]
            if cls not in best and time - track.last >= self.cooldown - EPSILON:
                del self._tracks[cls]
                if track.frames >= self.min_frames:
                    closed.append(self._event(cls, track))
        for cls in sorted(best):
            track = self._tracks.setdefault(cls, _Track(start=time, last=time))
            track.add(time, best[cls], frame)
        return closed

    def mark_stationary(self, cls: str) -> None:
        """The open event of `cls` ends because its object stopped moving: it closes flagged `stationary`."""
        track = self._tracks.get(cls)
        if track is not None:
            track.stationary = True

    def finish(self) -> list[Event]:
        """End of the file: close every open event, drop candidates that never reached `min_frames`."""
        closed = [self._event(cls, t) for cls, t in sorted(self._tracks.items()) if t.frames >= self.min_frames]
        self._tracks.clear()
        return closed

    def _event(self, cls: str, track: _Track) -> Event:
        return Event(
            event_id=event_id(self.file_id, cls, track.start),
            file_id=self.file_id,
            cls=cls,
            start=track.start,
            end=track.last,
            frames=track.frames,
            peak_confidence=track.peak,
            mean_confidence=track.confidence_sum / track.frames,
            best_time=track.best_time,
            best_box=track.best_box,
            best_frame=track.best_frame,
            stationary=track.stationary,
        )
