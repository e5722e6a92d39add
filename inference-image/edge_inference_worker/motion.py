"""Motion gating: a cheap difference on a small grey frame decides whether the detector runs.

Most CCTV footage is static; comparing a 160-pixel-wide blurred grey copy of each sampled frame
with the previous sampled frame costs well under a millisecond, a detector forward pass tens.
"""

from __future__ import annotations

import cv2
import numpy as np

SMALL_WIDTH = 160
# A grey level change smaller than this is sensor noise or compression, not motion.
PIXEL_DELTA = 25


def small_grey(frame: np.ndarray, width: int = SMALL_WIDTH) -> np.ndarray:
    """Downscale, make grey (a 2-D frame already is) and blur (removes noise and single-pixel flicker)."""
    height, full_width = frame.shape[:2]
    size = (width, max(1, round(height * width / full_width)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (5, 5), 0)


def changed_fraction(previous: np.ndarray, current: np.ndarray) -> float:
    """Fraction of pixels whose grey level moved by more than `PIXEL_DELTA`."""
    delta = cv2.absdiff(previous, current)
    return float(np.count_nonzero(delta > PIXEL_DELTA)) / delta.size


class MotionGate:
    """Says, per sampled frame, whether something moved since the previous sampled frame."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def moved(self, frame: np.ndarray) -> bool:
        """Compare with the previous frame given (luma or BGR); the first frame counts as motion."""
        current = small_grey(frame)
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return True
        return changed_fraction(previous, current) > self.threshold
