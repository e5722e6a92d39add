"""Stationary objects: a parked car must not keep the detector busy, nor make an event that never ends.

Pure, over video time. An object of interest whose box stays where it was first seen (overlap at
least `STILL_OVERLAP`) for `still_seconds` becomes stationary: from then on its detections are
held back from event grouping (its event closes, flagged `stationary`), its box is masked out of
the motion gate, and it is re-checked `recheck_seconds` after it was last seen (the pipeline analyses a frame then).
An analysed frame that is not a re-check and misses it (a passer-by in front) keeps it; a re-check
that misses it lets it go. A stationary object that went away and comes back to the same place
within `quiet_seconds` (a detection that flickered, a car that left for a minute) is stationary
again at once: while it stays, it makes at most one event per `quiet_seconds`.

As Frigate does, with the same defaults: 30 s to become stationary, a re-check every 10 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .events import EPSILON, Box, Detection

# Boxes of one still object overlap at least this much (intersection over union) from frame to frame;
# a person walking slowly across moves further than that between samples.
STILL_OVERLAP = 0.6
QUIET_SECONDS = 3600.0


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class StillObject:
    """An object seen at the same place since `since`; `stationary` once that lasted long enough."""

    cls: str
    box: Box  # where it was first seen: a slow walker drifts away from it, a parked car does not
    since: float
    stationary: bool = False
    next_check: float = 0.0
    left: float = 0.0  # for a stationary object no longer seen: when it went


class StationaryTracker:
    """Decides, per analysed frame, which detections belong to stationary objects (see the module docstring)."""

    def __init__(self, still_seconds: float, recheck_seconds: float, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.still_seconds = still_seconds
        self.recheck_seconds = recheck_seconds
        self.quiet_seconds = quiet_seconds
        self._objects: list[StillObject] = []
        self._gone: list[StillObject] = []  # stationary objects that went, remembered for `quiet_seconds`

    @property
    def idle(self) -> bool:
        """Nothing tracked or remembered: the state equals a fresh tracker (a safe checkpoint)."""
        return not self._objects and not self._gone

    def boxes(self) -> list[Box]:
        """Boxes of the stationary objects (masked out of the motion gate)."""
        return [o.box for o in self._objects if o.stationary]

    def recheck_due(self, time: float) -> bool:
        """Whether a stationary object is due for its re-check at this video time."""
        return any(o.stationary and time + EPSILON >= o.next_check for o in self._objects)

    def split(self, time: float, detections: Sequence[Detection]) -> tuple[list[Detection], list[str]]:
        """For an analysed frame: (detections of objects that are not stationary, classes that just became so)."""
        recheck = self.recheck_due(time)
        self._gone = [o for o in self._gone if time - o.left < self.quiet_seconds]
        unmatched = list(self._objects)
        kept: list[StillObject] = []
        moving: list[Detection] = []
        settled: list[str] = []
        for detection in sorted(detections, key=lambda d: -d.confidence):
            still = self._match(detection, unmatched)
            if still is not None:
                unmatched.remove(still)
            else:
                still = self._returned(detection, time) or StillObject(detection.cls, detection.box, time)
            kept.append(still)
            if not still.stationary and time - still.since >= self.still_seconds - EPSILON:
                still.stationary = True
                settled.append(still.cls)
            if still.stationary:
                still.next_check = time + self.recheck_seconds  # any frame that sees it is a check
            else:
                moving.append(detection)
        for still in unmatched:
            if not still.stationary:
                continue  # it moved or left: a new still object if it stops again
            if recheck and time + EPSILON >= still.next_check:
                still.left = time
                self._gone.append(still)
            else:
                kept.append(still)  # hidden behind a passer-by, or the frame was analysed for motion elsewhere
        self._objects = kept
        return moving, settled

    def _match(self, detection: Detection, candidates: list[StillObject]) -> StillObject | None:
        best, best_overlap = None, STILL_OVERLAP
        for still in candidates:
            if still.cls == detection.cls:
                value = overlap(still.box, detection.box)
                if value >= best_overlap:
                    best, best_overlap = still, value
        return best

    def _returned(self, detection: Detection, time: float) -> StillObject | None:
        """A stationary object seen again where it stood, within the quiet time: stationary at once."""
        still = self._match(detection, self._gone)
        if still is None:
            return None
        self._gone.remove(still)
        still.next_check = time + self.recheck_seconds
        return still
