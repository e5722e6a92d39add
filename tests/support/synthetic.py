"""Synthetic CCTV-like video with exact ground truth, for tests, benchmarks and training the bundled detector.

A scene is a fixed textured background (chosen by the seed) with a little per-frame sensor noise, long
static stretches, and two kinds of moving shapes that enter and leave the frame at known times:

* ``person``: a tall upright figure (head, torso, two legs that alternate while walking);
* ``car``: a wide body with a cabin, windows and two wheels.

``make_video`` renders a :class:`Scenario` to H.264, H.265 or MJPEG in mp4/mkv/avi with PyAV and returns
the :class:`GroundTruth`, also saved as JSON beside the video (``<video>.truth.json``); ``scenario_truth``
gives the same truth without rendering. Ready-made scenarios: ``short_scenario`` (24 s, both classes, a
stretch with nothing), ``static_heavy_scenario`` (objects on screen ~10% of the time, for motion gating)
and ``parked_car_scenario`` (a car parked for the whole file while many people and cars cross).
``training_samples`` yields random frames with YOLO-format labels for ``scripts/train_detector.py`` (with
close-ups and hard negatives that the videos do not have).

Everything is numpy: sprites are drawn once per object and pasted with a mask, so rendering costs little
more than the per-frame noise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CLASS_NAMES: dict[int, str] = {0: "person", 1: "car"}
CLASS_IDS: dict[str, int] = {name: class_id for class_id, name in CLASS_NAMES.items()}

# An object counts as present (in the truth intervals and boxes) once this fraction of it is inside the
# frame: a sliver at the edge is neither something a detector must find nor a phantom if it does.
VISIBLE_FRACTION = 0.5

TRUTH_SCHEMA = "edge-inference-synthetic-truth/v1"
TRUTH_SUFFIX = ".truth.json"

# Sensor noise (standard deviation, grey levels) added to every frame: like a real camera, a static
# scene is never bit-identical from one frame to the next.
SENSOR_NOISE_SIGMA = 2.0

# codec name -> (PyAV encoder, pixel format, encoder options)
_ENCODERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "23"}),
    "hevc": ("libx265", "yuv420p", {"preset": "ultrafast", "crf": "28", "x265-params": "log-level=error"}),
    "mjpeg": ("mjpeg", "yuvj420p", {"q:v": "4"}),
}
CODECS = tuple(_ENCODERS)
CONTAINERS = ("mp4", "mkv", "avi")
# FFmpeg's AVI muxer has no HEVC mapping; every other pairing is written and read back in the tests.
SUPPORTED_FORMATS = tuple((codec, container) for codec in CODECS for container in CONTAINERS
                          if (codec, container) != ("hevc", "avi"))
_CONTAINER_FORMATS = {"mp4": "mp4", "mkv": "matroska", "avi": "avi"}


# ---------------------------------------------------------------------------------------------------------
# Scenario description (pure data)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectSpec:
    """One moving object: its class, its size in pixels and a piecewise-linear path.

    ``path`` is a list of keyframes ``(time_s, x_left, y_bottom)`` for the sprite's top-left x and bottom y;
    between keyframes the object moves in a straight line, before the first and after the last it is absent.
    """

    class_name: str
    width: int
    height: int
    path: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        if self.class_name not in CLASS_IDS:
            raise ValueError(f"unknown class {self.class_name!r}; known: {sorted(CLASS_IDS)}")
        if len(self.path) < 2 or any(b[0] <= a[0] for a, b in zip(self.path, self.path[1:], strict=False)):
            raise ValueError("path needs at least two keyframes with increasing times")

    def position_at(self, t: float) -> tuple[float, float] | None:
        """Top-left x and bottom y at time ``t``, or None outside the path's time span."""
        times = [k[0] for k in self.path]
        if t < times[0] or t > times[-1]:
            return None
        x = float(np.interp(t, times, [k[1] for k in self.path]))
        y = float(np.interp(t, times, [k[2] for k in self.path]))
        return x, y

    def is_moving_at(self, t: float) -> bool:
        """Whether the object changes position around ``t`` (drives the walking animation)."""
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:], strict=False):
            if t0 <= t <= t1:
                return (x0, y0) != (x1, y1)
        return False


@dataclass(frozen=True)
class Scenario:
    """What a video shows: geometry, frame rate, duration and the objects that pass through."""

    name: str
    width: int
    height: int
    fps: int
    duration_s: float
    objects: tuple[ObjectSpec, ...] = ()

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * self.fps))


def crossing(
    class_name: str,
    *,
    enter_s: float,
    crossing_s: float,
    frame_width: int,
    y_bottom: float,
    width: int,
    height: int,
    leftwards: bool = False,
    pause: tuple[float, float] | None = None,
) -> ObjectSpec:
    """An object that walks/drives across the whole frame, entering at ``enter_s``.

    It starts fully outside one edge and ends fully outside the other ``crossing_s`` seconds later (plus the
    pause). ``pause = (at_fraction, seconds)`` stops it that far across the frame for that long.
    """
    start_x, end_x = (frame_width, -width) if leftwards else (-width, frame_width)
    keyframes = [(enter_s, start_x, y_bottom)]
    if pause is not None:
        fraction, seconds = pause
        stop_x = start_x + (end_x - start_x) * fraction
        stop_t = enter_s + crossing_s * fraction
        keyframes += [(stop_t, stop_x, y_bottom), (stop_t + seconds, stop_x, y_bottom)]
        crossing_s += seconds
    keyframes.append((enter_s + crossing_s, end_x, y_bottom))
    return ObjectSpec(class_name, width, height, tuple((float(t), float(x), float(y)) for t, x, y in keyframes))


def _person_size(height_px: float) -> tuple[int, int]:
    return max(6, int(round(height_px * 0.36))), max(16, int(round(height_px)))


def _car_size(width_px: float) -> tuple[int, int]:
    return max(20, int(round(width_px))), max(10, int(round(width_px * 0.42)))


def short_scenario(width: int = 640, height: int = 360, fps: int = 10) -> Scenario:
    """A 24 s clip: a person, then a car, 4 s of nothing, then a person and a car at the same time.

    Objects are always in different lanes, so boxes never overlap much.
    """
    pw, ph = _person_size(0.36 * height)
    cw, ch = _car_size(0.30 * width)
    pw2, ph2 = _person_size(0.30 * height)
    cw2, ch2 = _car_size(0.26 * width)
    objects = (
        crossing("person", enter_s=1.0, crossing_s=6.5, frame_width=width, y_bottom=0.62 * height,
                 width=pw, height=ph),
        crossing("car", enter_s=8.5, crossing_s=4.0, frame_width=width, y_bottom=0.95 * height,
                 width=cw, height=ch, leftwards=True),
        crossing("person", enter_s=17.0, crossing_s=6.0, frame_width=width, y_bottom=0.60 * height,
                 width=pw2, height=ph2, leftwards=True),
        crossing("car", enter_s=18.0, crossing_s=4.5, frame_width=width, y_bottom=0.96 * height,
                 width=cw2, height=ch2),
    )
    return Scenario("short", width, height, fps, 24.0, objects)


def static_heavy_scenario(
    duration_s: float,
    fps: int = 10,
    width: int = 640,
    height: int = 360,
    moving_fraction: float = 0.10,
    seed: int = 0,
) -> Scenario:
    """Mostly-static footage: objects are on screen only about ``moving_fraction`` of the time.

    Crossings of 4-8 s are spread evenly with random jitter, alternating classes, so the rest of the
    video is the background and sensor noise alone (what motion gating should skip).
    """
    if not 0.0 < moving_fraction < 1.0:
        raise ValueError("moving_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    mean_crossing = 6.0
    count = max(1, int(round(duration_s * moving_fraction / mean_crossing)))
    slot = duration_s / count
    objects = []
    for i in range(count):
        crossing_s = float(rng.uniform(4.0, 8.0)) * min(1.0, slot / 10.0)
        enter_s = i * slot + float(rng.uniform(0.0, max(0.0, slot - crossing_s - 0.5)))
        leftwards = bool(rng.integers(2))
        if i % 2 == 0:
            w, h = _person_size(float(rng.uniform(0.28, 0.42)) * height)
            y = float(rng.uniform(0.55, 0.70)) * height
            objects.append(crossing("person", enter_s=enter_s, crossing_s=crossing_s, frame_width=width,
                                    y_bottom=y, width=w, height=h, leftwards=leftwards))
        else:
            w, h = _car_size(float(rng.uniform(0.22, 0.34)) * width)
            y = float(rng.uniform(0.90, 0.97)) * height
            objects.append(crossing("car", enter_s=enter_s, crossing_s=crossing_s * 0.7, frame_width=width,
                                    y_bottom=y, width=w, height=h, leftwards=leftwards))
    return Scenario(f"static-heavy-{duration_s:g}s", width, height, fps, float(duration_s), tuple(objects))


def parked_car_scenario(
    duration_s: float,
    crossings: int = 100,
    fps: int = 5,
    width: int = 640,
    height: int = 360,
    first_crossing_s: float = 45.0,
    seed: int = 0,
) -> Scenario:
    """A car parked in view for the whole file while ``crossings`` people and cars cross, one at a time.

    The parked car stands in the top-left of the frame; people walk in a middle lane and cars drive in
    the bottom lane, so no crossing hides it. Crossings (3-5 s for people, 2-4 s for cars, alternating,
    random direction) start after ``first_crossing_s`` (time for the parked car to become stationary)
    and are spread evenly with random jitter over the rest of the file. Object 0 is the parked car.
    """
    slot = (duration_s - first_crossing_s) / crossings
    if crossings < 1 or slot < 6.0:
        raise ValueError(f"{crossings} crossings need at least {6 * crossings + first_crossing_s:g} s")
    rng = np.random.default_rng(seed)
    parked_w, parked_h = _car_size(0.22 * width)
    parked = ObjectSpec("car", parked_w, parked_h,
                        ((0.0, 0.05 * width, 0.25 * height), (float(duration_s), 0.05 * width, 0.25 * height)))
    objects = [parked]
    for i in range(crossings):
        person = i % 2 == 0
        crossing_s = float(rng.uniform(3.0, 5.0) if person else rng.uniform(2.0, 4.0))
        enter_s = first_crossing_s + i * slot + float(rng.uniform(0.0, slot - crossing_s - 1.0))
        if person:
            w, h = _person_size(float(rng.uniform(0.25, 0.35)) * height)
            y = float(rng.uniform(0.62, 0.72)) * height
        else:
            w, h = _car_size(float(rng.uniform(0.22, 0.30)) * width)
            y = float(rng.uniform(0.92, 0.97)) * height
        objects.append(crossing("person" if person else "car", enter_s=enter_s, crossing_s=crossing_s,
                                frame_width=width, y_bottom=y, width=w, height=h, leftwards=bool(rng.integers(2))))
    return Scenario(f"parked-car-{duration_s:g}s", width, height, fps, float(duration_s), tuple(objects))


# ---------------------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------------------

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive


@dataclass(frozen=True)
class TruthObject:
    """One object's truth: when it is present (>= VISIBLE_FRACTION inside the frame) and its boxes then."""

    id: int
    class_name: str
    start_s: float  # time of the first frame where it is present
    end_s: float  # time of the last frame where it is present
    onscreen_start_s: float  # first frame with any part of it inside the frame
    onscreen_end_s: float
    boxes: dict[int, Box]  # frame index -> clipped box, for every frame where it is present

    @property
    def class_id(self) -> int:
        return CLASS_IDS[self.class_name]

    @property
    def start_frame(self) -> int:
        return min(self.boxes)

    @property
    def end_frame(self) -> int:
        return max(self.boxes)


@dataclass(frozen=True)
class GroundTruth:
    """Everything a test needs to judge a detector or the event pipeline on one generated video."""

    video: str
    scenario: str
    seed: int
    codec: str
    container: str
    width: int
    height: int
    fps: int
    frame_count: int
    objects: tuple[TruthObject, ...]
    busy_frames: frozenset[int] = field(default_factory=frozenset)  # frames where any part of an object shows

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def boxes_at(self, frame_index: int) -> list[tuple[TruthObject, Box]]:
        """The present objects on one frame with their boxes."""
        return [(obj, obj.boxes[frame_index]) for obj in self.objects if frame_index in obj.boxes]

    def empty_frames(self) -> list[int]:
        """Frames with no object on screen at all (not even a sliver): any detection there is a phantom."""
        return [i for i in range(self.frame_count) if i not in self.busy_frames]

    def to_json(self) -> dict:
        """The JSON document saved beside the video (boxes as ``[frame, x1, y1, x2, y2]`` rows)."""
        return {
            "schema": TRUTH_SCHEMA,
            "video": self.video,
            "scenario": self.scenario,
            "seed": self.seed,
            "codec": self.codec,
            "container": self.container,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frameCount": self.frame_count,
            "durationS": self.duration_s,
            "visibleFraction": VISIBLE_FRACTION,
            "classes": {str(k): v for k, v in CLASS_NAMES.items()},
            "busyFrames": frame_runs(sorted(self.busy_frames)),
            "objects": [
                {
                    "id": obj.id,
                    "class": obj.class_name,
                    "classId": obj.class_id,
                    "startS": obj.start_s,
                    "endS": obj.end_s,
                    "startFrame": obj.start_frame,
                    "endFrame": obj.end_frame,
                    "onscreenStartS": obj.onscreen_start_s,
                    "onscreenEndS": obj.onscreen_end_s,
                    "boxes": [[i, *box] for i, box in sorted(obj.boxes.items())],
                }
                for obj in self.objects
            ],
        }

    @classmethod
    def from_json(cls, doc: dict) -> GroundTruth:
        """Inverse of :meth:`to_json`."""
        if doc.get("schema") != TRUTH_SCHEMA:
            raise ValueError(f"not a synthetic truth document (schema {doc.get('schema')!r})")
        objects = tuple(
            TruthObject(
                id=o["id"],
                class_name=o["class"],
                start_s=o["startS"],
                end_s=o["endS"],
                onscreen_start_s=o["onscreenStartS"],
                onscreen_end_s=o["onscreenEndS"],
                boxes={row[0]: tuple(row[1:5]) for row in o["boxes"]},
            )
            for o in doc["objects"]
        )
        busy = frozenset(i for start, end in doc["busyFrames"] for i in range(start, end + 1))
        return cls(doc["video"], doc["scenario"], doc["seed"], doc["codec"], doc["container"], doc["width"],
                   doc["height"], doc["fps"], doc["frameCount"], objects, busy)

    @classmethod
    def load(cls, video_path: str | Path) -> GroundTruth:
        """Read the truth saved beside ``video_path``."""
        return cls.from_json(json.loads(truth_path(video_path).read_text()))


def truth_path(video_path: str | Path) -> Path:
    """Where the truth JSON of a video lives: ``<video>.truth.json``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.name + TRUTH_SUFFIX)


def frame_runs(indices: list[int]) -> list[list[int]]:
    """Compress sorted integers into inclusive ``[start, end]`` runs."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


# ---------------------------------------------------------------------------------------------------------
# Drawing (pure numpy)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sprite:
    """An RGB image with a boolean mask; ``box`` is the mask's tight box within the sprite."""

    rgb: np.ndarray  # (h, w, 3) float32
    mask: np.ndarray  # (h, w) bool
    box: Box


def _tight_box(mask: np.ndarray) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _rect(yy: np.ndarray, xx: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def _random_colour(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> np.ndarray:
    return rng.uniform(lo, hi, size=3).astype(np.float32)


_SKIN_TONES = np.array([[241, 194, 167], [224, 172, 105], [198, 134, 66], [141, 85, 36], [92, 58, 38]],
                       dtype=np.float32)
_CAR_PAINTS = np.array([[200, 200, 205], [30, 30, 35], [240, 240, 240], [170, 20, 25], [20, 50, 150],
                        [90, 100, 110], [20, 90, 40], [230, 190, 30]], dtype=np.float32)


def _paint(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray, yy: np.ndarray, shade: float = 0.25) -> None:
    """Fill ``mask`` with ``colour``, darker towards the bottom (a cheap hint of 3D lighting)."""
    h = max(1, rgb.shape[0] - 1)
    gradient = (1.0 + shade / 2) - shade * (yy / h)
    rgb[mask] = np.clip(colour[None, :] * gradient[mask][:, None], 0, 255)


def person_sprites(width: int, height: int, rng: np.random.Generator) -> tuple[Sprite, Sprite]:
    """Two walking poses (legs apart, legs together) of one randomly dressed person."""
    shirt = _random_colour(rng)
    trousers = _random_colour(rng, 10, 140)
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.1)
    hair = _random_colour(rng, 5, 90)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    w, h = float(width), float(height)
    head_r = 0.085 * h
    head_cx = w / 2
    head = _ellipse(yy, xx, head_r + 0.5, head_cx, head_r, min(head_r * 0.85, w * 0.32))
    hair_cap = head & (yy < head_r * 0.9)
    torso = _ellipse(yy, xx, 0.36 * h, w / 2, 0.2 * h, 0.5 * w) & (yy >= 0.17 * h) | _rect(
        yy, xx, 0.2 * h, 0.56 * h, 0.12 * w, 0.88 * w)
    sprites = []
    for spread in (0.3, 0.08):
        leg_w = 0.3 * w
        left = _rect(yy, xx, 0.54 * h, h, w / 2 - spread * w - leg_w / 2 - 0.05 * w, w / 2 - spread * w + leg_w / 2)
        right = _rect(yy, xx, 0.54 * h, h, w / 2 + spread * w - leg_w / 2, w / 2 + spread * w + leg_w / 2 + 0.05 * w)
        rgb = np.zeros((height, width, 3), np.float32)
        _paint(rgb, left | right, trousers, yy)
        _paint(rgb, torso, shirt, yy)
        _paint(rgb, head, skin, yy, shade=0.1)
        _paint(rgb, hair_cap, hair, yy, shade=0.0)
        mask = left | right | torso | head
        sprites.append(Sprite(rgb, mask, _tight_box(mask)))
    return sprites[0], sprites[1]


def car_sprite(width: int, height: int, rng: np.random.Generator, facing_left: bool) -> Sprite:
    """A car seen from the side: body, cabin with windows, two wheels with hubcaps."""
    paint = _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))] * rng.uniform(0.85, 1.1)
    glass = np.array([60, 75, 95], np.float32) * rng.uniform(0.7, 1.2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    w, h = float(width), float(height)
    body = _rect(yy, xx, 0.38 * h, 0.84 * h, 0.0, w) & ~(
        (xx < 0.04 * w) & (yy < 0.48 * h)) & ~((xx > 0.96 * w) & (yy < 0.48 * h))
    # Cabin: a trapezoid narrowing towards the roof.
    roof_lo, roof_hi = 0.2 * w + 0.08 * w * (1 - yy / (0.4 * h)), 0.78 * w - 0.1 * w * (1 - yy / (0.4 * h))
    cabin = (yy >= 0.0) & (yy < 0.4 * h) & (xx >= roof_lo) & (xx < roof_hi)
    windows = cabin & (yy > 0.07 * h) & (yy < 0.36 * h) & (xx > roof_lo + 0.03 * w) & (xx < roof_hi - 0.03 * w) & (
        np.abs(xx - 0.5 * w) > 0.015 * w)
    wheel_r = 0.17 * h
    wheels = _ellipse(yy, xx, 0.82 * h, 0.22 * w, wheel_r, wheel_r) | _ellipse(yy, xx, 0.82 * h, 0.78 * w, wheel_r,
                                                                              wheel_r)
    hubs = _ellipse(yy, xx, 0.82 * h, 0.22 * w, wheel_r * 0.45, wheel_r * 0.45) | _ellipse(
        yy, xx, 0.82 * h, 0.78 * w, wheel_r * 0.45, wheel_r * 0.45)
    light = _rect(yy, xx, 0.45 * h, 0.55 * h, 0.94 * w, w)
    rgb = np.zeros((height, width, 3), np.float32)
    _paint(rgb, body | cabin, paint, yy, shade=0.35)
    _paint(rgb, windows, glass, yy, shade=0.2)
    _paint(rgb, light, np.array([250, 240, 200], np.float32), yy, shade=0.0)
    _paint(rgb, wheels, np.array([22, 22, 24], np.float32), yy, shade=0.0)
    _paint(rgb, hubs, np.array([150, 150, 155], np.float32), yy, shade=0.0)
    mask = body | cabin | wheels
    if facing_left:
        rgb, mask = rgb[:, ::-1], mask[:, ::-1]
    return Sprite(np.ascontiguousarray(rgb), np.ascontiguousarray(mask), _tight_box(mask))


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a small (gh, gw, c) grid to (height, width, c)."""
    gh, gw = grid.shape[:2]
    ys = np.linspace(0, gh - 1, height, dtype=np.float32)
    xs = np.linspace(0, gw - 1, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed CCTV-like backdrop: wall/sky, pavement and road, a few flat blocks, blotches and grain."""
    base = np.empty((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.25, 0.45))
    road_top = int(height * rng.uniform(0.68, 0.78))
    base[:horizon] = rng.uniform(90, 200, 3)
    base[horizon:road_top] = rng.uniform(100, 180, 3)
    base[road_top:] = rng.uniform(50, 100) + rng.uniform(-8, 8, 3)
    # Buildings / windows / signs: flat-coloured blocks, mostly above the horizon.
    for _ in range(int(rng.integers(3, 9))):
        bw, bh = int(rng.uniform(0.05, 0.3) * width), int(rng.uniform(0.05, 0.3) * height)
        x, y = int(rng.uniform(0, width - bw)), int(rng.uniform(0, max(1, horizon - bh // 2)))
        base[y:y + bh, x:x + bw] = rng.uniform(40, 220, 3)
    # Lane markings on the road.
    lane_y = int((road_top + height) / 2)
    for x in range(int(rng.uniform(0, 60)), width, 120):
        base[lane_y:lane_y + max(2, height // 120), x:x + 50] = 220
    blotches = _upsample(rng.normal(0, 14, (7, 12, 3)).astype(np.float32), height, width)
    grain = rng.normal(0, 5, (height, width, 1)).astype(np.float32)
    return np.clip(base + blotches + grain, 0, 255)


def _clipped_box(sprite: Sprite, x: int, y_bottom: int, width: int, height: int) -> Box | None:
    """The tight box of the sprite's pixels that land inside the frame when drawn at (x, y_bottom), or None."""
    h, w = sprite.mask.shape
    y = y_bottom - h
    bx0, by0, bx1, by1 = sprite.box
    box = max(x + bx0, 0), max(y + by0, 0), min(x + bx1, width), min(y + by1, height)
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    if box == (x + bx0, y + by0, x + bx1, y + by1):
        return box
    # Cut by the frame edge: the visible part of the shape may not reach the full box's other sides.
    visible = sprite.mask[box[1] - y:box[3] - y, box[0] - x:box[2] - x]
    if not visible.any():
        return None
    vx0, vy0, vx1, vy1 = _tight_box(visible)
    return box[0] + vx0, box[1] + vy0, box[0] + vx1, box[1] + vy1


def _paste(frame: np.ndarray, sprite: Sprite, x: int, y_bottom: int) -> None:
    """Draw a sprite with its top-left at x and its bottom at y_bottom (clipped to the frame)."""
    h, w = sprite.mask.shape
    y = y_bottom - h
    fx0, fy0 = max(x, 0), max(y, 0)
    fx1, fy1 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x, fy0 - y
    region = frame[fy0:fy1, fx0:fx1]
    mask = sprite.mask[sy0:sy0 + (fy1 - fy0), sx0:sx0 + (fx1 - fx0)]
    region[mask] = sprite.rgb[sy0:sy0 + (fy1 - fy0), sx0:sx0 + (fx1 - fx0)][mask]


def _visible_fraction(sprite: Sprite, clipped: Box) -> float:
    """Share of the full box's area still inside the frame (the truth's presence rule)."""
    bx0, by0, bx1, by1 = sprite.box
    full = (bx1 - bx0) * (by1 - by0)
    return (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / full


# ---------------------------------------------------------------------------------------------------------
# Rendering a scenario
# ---------------------------------------------------------------------------------------------------------


def _sprites_for(spec: ObjectSpec, rng: np.random.Generator) -> tuple[Sprite, ...]:
    if spec.class_name == "person":
        return person_sprites(spec.width, spec.height, rng)
    facing_left = spec.path[-1][1] < spec.path[0][1]
    return (car_sprite(spec.width, spec.height, rng, facing_left),)


@dataclass(frozen=True)
class Placement:
    """Where one object is drawn on one frame."""

    object_index: int
    sprite: Sprite
    x: int
    y_bottom: int
    box: Box  # clipped to the frame
    visible_fraction: float


class _Scene:
    """A scenario made concrete by a seed: backdrop and sprites, and where each object is on each frame."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.scenario = scenario
        self.backdrop = background(scenario.width, scenario.height, rng)
        self.sprites = [_sprites_for(spec, rng) for spec in scenario.objects]
        # Painter's order: objects lower in the frame are nearer the camera, drawn last.
        self.order = sorted(range(len(scenario.objects)), key=lambda i: scenario.objects[i].path[0][2])

    def placements(self, index: int) -> list[Placement]:
        scenario = self.scenario
        t = index / scenario.fps
        placed = []
        for i in self.order:
            spec = scenario.objects[i]
            position = spec.position_at(t)
            if position is None:
                continue
            poses = self.sprites[i]
            # Alternate the walking pose every 0.3 s, only while the object moves.
            pose = poses[int(t / 0.3) % len(poses)] if spec.is_moving_at(t) else poses[-1]
            x, y_bottom = int(round(position[0])), int(round(position[1]))
            box = _clipped_box(pose, x, y_bottom, scenario.width, scenario.height)
            if box is not None:
                placed.append(Placement(i, pose, x, y_bottom, box, _visible_fraction(pose, box)))
        return placed


def scene_background(scenario: Scenario, seed: int) -> np.ndarray:
    """The noise-free backdrop (float32 RGB) that ``render_frames`` draws every frame of this scene on."""
    return _Scene(scenario, seed).backdrop


def render_frames(scenario: Scenario, seed: int) -> Iterator[tuple[np.ndarray, list[Placement]]]:
    """Yield ``(rgb_uint8_frame, placements)`` for every frame of the scenario."""
    scene = _Scene(scenario, seed)
    noise_rng = np.random.default_rng(seed + 1)
    shape = (scenario.height, scenario.width, 3)
    for index in range(scenario.frame_count):
        frame = scene.backdrop + noise_rng.standard_normal(shape, dtype=np.float32) * SENSOR_NOISE_SIGMA
        placed = scene.placements(index)
        for p in placed:
            _paste(frame, p.sprite, p.x, p.y_bottom)
        yield np.clip(frame, 0, 255).astype(np.uint8), placed


def _truth_from(
    scenario: Scenario, seed: int, frames: Iterator[list[Placement]], video: str, codec: str, container: str
) -> GroundTruth:
    boxes: list[dict[int, Box]] = [{} for _ in scenario.objects]
    onscreen: list[list[int]] = [[] for _ in scenario.objects]
    busy: set[int] = set()
    for index, placed in enumerate(frames):
        for p in placed:
            onscreen[p.object_index].append(index)
            busy.add(index)
            if p.visible_fraction >= VISIBLE_FRACTION:
                boxes[p.object_index][index] = p.box
    objects = tuple(
        TruthObject(
            id=i,
            class_name=spec.class_name,
            start_s=min(boxes[i]) / scenario.fps,
            end_s=max(boxes[i]) / scenario.fps,
            onscreen_start_s=onscreen[i][0] / scenario.fps,
            onscreen_end_s=onscreen[i][-1] / scenario.fps,
            boxes=boxes[i],
        )
        for i, spec in enumerate(scenario.objects)
        if boxes[i]
    )
    return GroundTruth(video, scenario.name, seed, codec, container, scenario.width, scenario.height,
                       scenario.fps, scenario.frame_count, objects, frozenset(busy))


def scenario_truth(scenario: Scenario, seed: int = 0) -> GroundTruth:
    """The ground truth ``make_video`` would record, without drawing or encoding anything (fast)."""
    scene = _Scene(scenario, seed)
    frames = (scene.placements(i) for i in range(scenario.frame_count))
    return _truth_from(scenario, seed, frames, video="", codec="", container="")


def _container_of(path: Path, container: str | None) -> str:
    container = container or path.suffix.lstrip(".").lower()
    if container not in CONTAINERS:
        raise ValueError(f"unsupported container {container!r}; choose one of {CONTAINERS}")
    return container


def make_video(
    path: str | Path,
    scenario: Scenario,
    seed: int = 0,
    *,
    codec: str = "h264",
    container: str | None = None,
) -> GroundTruth:
    """Render ``scenario`` to ``path`` and save its ground truth as ``<path>.truth.json``.

    ``codec`` is one of ``h264``, ``hevc``, ``mjpeg``; ``container`` (mp4, mkv, avi) defaults to the file
    extension. The same scenario and seed always give the same frames.
    """
    path = Path(path)
    container = _container_of(path, container)
    if codec not in _ENCODERS:
        raise ValueError(f"unsupported codec {codec!r}; choose one of {CODECS}")
    if (codec, container) not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported pairing: {codec} in {container}; supported: {SUPPORTED_FORMATS}")
    encoder, pix_fmt, options = _ENCODERS[codec]
    path.parent.mkdir(parents=True, exist_ok=True)
    placements: list[list[Placement]] = []
    with av.open(str(path), mode="w", format=_CONTAINER_FORMATS[container]) as output:
        stream = output.add_stream(encoder, rate=Fraction(scenario.fps))
        stream.width, stream.height, stream.pix_fmt = scenario.width, scenario.height, pix_fmt
        stream.options = dict(options)
        # Keyframe every 2 s like a typical camera; keeps seeking cheap for the worker.
        stream.codec_context.gop_size = 2 * scenario.fps
        for index, (rgb, placed) in enumerate(render_frames(scenario, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, scenario.fps)
            output.mux(stream.encode(frame))
            placements.append(placed)
        output.mux(stream.encode(None))
    truth = _truth_from(scenario, seed, iter(placements), path.name, codec, container)
    truth_path(path).write_text(json.dumps(truth.to_json(), separators=(",", ":")))
    return truth


# ---------------------------------------------------------------------------------------------------------
# Training frames
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSample:
    """One random frame and its labels as YOLO rows ``(class_id, cx, cy, w, h)``, normalised to 0..1."""

    image: np.ndarray  # (h, w, 3) uint8 RGB
    labels: tuple[tuple[int, float, float, float, float], ...]

    def yolo_text(self) -> str:
        """The label file content in YOLO format (one ``class cx cy w h`` line per box)."""
        return "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in self.labels)


# A share of the training frames are close-ups: half the frame's size in pixels, with objects at full-frame
# pixel sizes. A detector trained at half resolution (imgsz 320) then also sees objects, and parts of them, at
# the pixel scale of full-resolution inference (imgsz 640). Without them, at 640 the bundled model read a car's
# slanted window pillar as a person and a person's hair and face as a small car.
CLOSE_UP_SHARE = 1 / 3
# Share of training backdrops that get hard negatives (see `clutter`).
CLUTTER_SHARE = 0.5


def clutter(frame: np.ndarray, rng: np.random.Generator) -> None:
    """Paint 1-4 hard negatives on a training backdrop: shapes a little like the classes that are neither.

    Posts with a round top (a head on a stick, no body or legs), glazed facades (dark panes between light
    bars, like a car's windows and pillars without the car) and dark round blobs over a block of colour
    (like hair over a face). They are never labelled, so the detector learns what does not make an object.
    """
    height, width = frame.shape[:2]
    yy, xx = np.ogrid[0:height, 0:width]
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(3))
        colour = _random_colour(rng)
        if kind == 0:  # post or bollard with a round top
            ph = int(rng.uniform(0.1, 0.5) * height)
            pw = max(2, int(ph * rng.uniform(0.05, 0.2)))
            x, y = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
            frame[y:y + ph, x:x + pw] = colour
            r = max(2, int(pw * rng.uniform(0.8, 1.6)))
            frame[_ellipse(yy, xx, y, x + pw / 2, r, r)] = _random_colour(rng)
        elif kind == 1:  # glazed facade: dark panes separated by light, sometimes slanted, bars
            fw, fh = int(rng.uniform(0.08, 0.35) * width), int(rng.uniform(0.06, 0.2) * height)
            x, y = int(rng.integers(0, width - fw)), int(rng.integers(0, height - fh))
            frame[y:y + fh, x:x + fw] = colour
            glass = np.array([60, 75, 95], np.float32) * rng.uniform(0.6, 1.3)
            panes = int(rng.integers(2, 5))
            bar = max(1, int(fw * rng.uniform(0.01, 0.06)))
            slant = rng.uniform(-0.6, 0.6)
            py, px = np.mgrid[0:fh, 0:fw].astype(np.float32)
            inset = max(1, fh // 8)
            shifted = px + slant * (py - fh / 2)
            pane = (py >= inset) & (py < fh - inset) & (shifted >= bar) & (shifted < fw - bar)
            pane &= (shifted % (fw / panes)) >= bar
            frame[y:y + fh, x:x + fw][pane] = glass
        else:  # a dark round cap over a smaller block of another colour
            r = max(3, int(rng.uniform(0.015, 0.06) * height))
            cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - 3 * r))
            frame[cy:cy + 2 * r, cx - r:cx + r] = colour
            frame[_ellipse(yy, xx, cy, cx, r, r) & (yy <= cy)] = _random_colour(rng, 5, 90)


def training_sample(
    rng: np.random.Generator, width: int = 640, height: int = 360, close_up: bool = False
) -> TrainingSample:
    """A random scene frame with 0-4 people and cars, some cut by the frame edge, and its YOLO labels.

    About one frame in six is empty, so the detector learns that textured background is not an object; half
    the backdrops carry hard negatives (`clutter`). A close-up frame is width/2 x height/2 pixels with objects
    as large in pixels as in a full frame (see CLOSE_UP_SHARE). Objects cut by the edge are labelled (clipped
    box) only when at least VISIBLE_FRACTION is inside, the same rule as the videos' ground truth; thinner
    slivers stay unlabelled.
    """
    frame_w, frame_h = (width // 2, height // 2) if close_up else (width, height)
    frame = background(frame_w, frame_h, rng)
    if rng.random() < CLUTTER_SHARE:
        clutter(frame, rng)
    count = 0 if rng.random() < 1 / 6 else int(rng.integers(1, 5))
    placed: list[tuple[int, Box, float]] = []
    for _ in range(count):
        if rng.random() < 0.5:
            pw, ph = _person_size(float(rng.uniform(0.15, 0.5 if close_up else 0.6)) * height)
            pose = person_sprites(pw, ph, rng)[int(rng.integers(2))]
            class_id = CLASS_IDS["person"]
        else:
            cw, ch = _car_size(float(rng.uniform(0.12, 0.4 if close_up else 0.45)) * width)
            pose = car_sprite(cw, ch, rng, facing_left=bool(rng.integers(2)))
            class_id = CLASS_IDS["car"]
        h, w = pose.mask.shape
        edge = rng.random() < 0.2
        x_lo, x_hi = (-w // 2, frame_w - w // 2) if edge else (0, max(1, frame_w - w))
        x = int(rng.integers(x_lo, x_hi))
        y_bottom = int(rng.integers(min(h, frame_h), frame_h + 1))
        box = _clipped_box(pose, x, y_bottom, frame_w, frame_h)
        # Keep objects mostly unoccluded so every label shows what it names.
        if box is None or any(_overlap(box, other) > 0.25 for _, other, _ in placed):
            continue
        _paste(frame, pose, x, y_bottom)
        placed.append((class_id, box, _visible_fraction(pose, box)))
    frame = frame * rng.uniform(0.75, 1.2) + rng.uniform(-20, 20)  # exposure / lighting changes
    frame += rng.standard_normal(frame.shape, dtype=np.float32) * rng.uniform(0.5, 4.0)
    labels = []
    for class_id, (x0, y0, x1, y1), fraction in placed:
        if fraction < VISIBLE_FRACTION:
            continue
        labels.append((class_id, (x0 + x1) / 2 / frame_w, (y0 + y1) / 2 / frame_h, (x1 - x0) / frame_w,
                       (y1 - y0) / frame_h))
    return TrainingSample(np.clip(frame, 0, 255).astype(np.uint8), tuple(labels))


def _overlap(a: Box, b: Box) -> float:
    """Intersection area over the smaller box's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1)


def training_samples(count: int, seed: int, width: int = 640, height: int = 360) -> Iterator[TrainingSample]:
    """``count`` reproducible random training frames."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield training_sample(rng, width, height, close_up=bool(rng.random() < CLOSE_UP_SHARE))

