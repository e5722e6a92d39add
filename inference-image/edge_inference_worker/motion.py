"""Motion gating: a cheap difference on a small grey frame decides whether the detector runs.

Most CCTV footage is static; comparing a 160-pixel-wide blurred grey copy of each sampled frame
with the previous sampled frame costs well under a millisecond, a detector forward pass tens.
"""

from __future__ import annotations

import cv2
import numpy as np

SMALL_WIDTH = 160
# A grey level change smaller than this is sensor noise or compression, not motion. After the area
# downscale and the blur, a static scene's noise changes no pixel by even 8 levels (bench footage);
# 25 missed grey cars on a grey road, too few pixels changing for the default threshold, which 15
# catches (docs/benchmarks.md, "Real cameras", for the measurements).
PIXEL_DELTA = 15


def small_grey(frame: np.ndarray, width: int = SMALL_WIDTH) -> np.ndarray:
    """Downscale, make grey (a 2-D frame already is) and blur (removes noise and single-pixel flicker)."""
    height, full_width = frame.shape[:2]
    size = (width, max(1, round(height * width / full_width)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (5, 5), 0)


# A stationary object's box is masked with this margin on each side (of its width and height): the
# blur spreads its edges, and a detector's box is not pixel-exact.
MASK_MARGIN = 0.1


def changed_fraction(previous: np.ndarray, current: np.ndarray, ignored: np.ndarray | None = None) -> float:
    """Fraction of pixels whose grey level moved by more than `PIXEL_DELTA` (outside `ignored`, when given)."""
    changed = cv2.absdiff(previous, current) > PIXEL_DELTA
    if ignored is not None:
        changed &= ~ignored
    return float(np.count_nonzero(changed)) / changed.size


def ignored_area(shape: tuple[int, int], full_shape: tuple[int, int], boxes: list) -> np.ndarray | None:
    """Pixels of a small frame of `shape` covered by `boxes` (in pixels of a frame of `full_shape`), or None."""
    if not boxes:
        return None
    mask = np.zeros(shape, bool)
    scale_y, scale_x = shape[0] / full_shape[0], shape[1] / full_shape[1]
    for x1, y1, x2, y2 in boxes:
        dx, dy = (x2 - x1) * MASK_MARGIN, (y2 - y1) * MASK_MARGIN
        top, bottom = int(max(0, (y1 - dy) * scale_y)), int(np.ceil((y2 + dy) * scale_y))
        left, right = int(max(0, (x1 - dx) * scale_x)), int(np.ceil((x2 + dx) * scale_x))
        mask[top:bottom, left:right] = True
    return mask


class MotionGate:
    """Says, per sampled frame, whether something moved since the previous sampled frame."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None
        self._ignored_boxes: list = []
        self._ignored: np.ndarray | None = None  # built for the frame size on first use

    def ignore(self, boxes: list) -> None:
        """Leave these regions (stationary objects, in pixels of the full frame) out of the comparison."""
        if boxes != self._ignored_boxes:
            self._ignored_boxes = list(boxes)
            self._ignored = None

    def moved(self, frame: np.ndarray) -> bool:
        """Compare with the previous frame given (luma or BGR); the first frame counts as motion."""
        current = small_grey(frame)
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return True
        if self._ignored is None and self._ignored_boxes:
            self._ignored = ignored_area(current.shape, frame.shape[:2], self._ignored_boxes)
        return changed_fraction(previous, current, self._ignored) > self.threshold
