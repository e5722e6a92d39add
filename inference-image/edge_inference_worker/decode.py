"""Decoding with PyAV and sampling at the analysis rate, aligned to absolute video time.

Sample k stands for video time k / fps: the first decoded frame at or after that time is taken.
Because the grid is absolute (not "every n-th frame from where we started"), resuming a file from
a checkpoint at sample k yields exactly the frames an uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import av.logging
import numpy as np

from .cpus import available_cpus
from .events import EPSILON
from .outcomes import CORRUPT, NON_VIDEO, TRUNCATED

# On 2 CPUs one decoder thread beats two or four, slice or frame threading (docs/events.md,
# "Decoding", for the numbers): extra threads only contend with each other and with the detector.
# With more CPUs than that, two frame threads (not measured: no such machine) let decoding use a
# core the detector leaves.
DECODER_THREAD_TYPE = "FRAME"


def decoder_threads(cpus: int) -> int:
    """Decoder threads for a process allowed `cpus` CPUs."""
    return 1 if cpus <= 2 else 2

_EIGHT_BIT_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})
# Sampling at a quarter of the video's frame rate or less, frames no other frame refers to (B
# frames) are not even decoded: the sample is then the next reference frame, still at or after
# its grid point, and the choice depends only on the file, so it is the same after a resume.
# It roughly halves the decode work on H.264 with B frames (docs/events.md, "Decoding").
SKIP_NONREF_BELOW = 0.25

# Decoding that stops this much before the duration in the header means the file was cut off.
# The duration is the longer of what the container says in seconds and its frame count at the
# frame rate: an AVI cut in half (its index gone) reports the shorter duration it still holds,
# but its header keeps the frame count of the whole recording.
TRUNCATION_SLACK_SECONDS = 1.0

# Container signatures: a file that fails to open and has none of these is "not a video" rather
# than a corrupt video (different outcome, different remedy).
_SIGNATURES = (
    (4, b"ftyp"),  # mp4 / mov
    (0, b"\x1a\x45\xdf\xa3"),  # matroska / webm
    (0, b"RIFF"),  # avi
    (0, b"\x00\x00\x01\xba"),  # mpeg-ps
    (0, b"\x00\x00\x00\x01"),  # raw h264/h265 annex-b
    (0, b"\x47"),  # mpeg-ts
)

# FFmpeg's own log lines are not JSON and say nothing our errors do not already say.
av.logging.set_level(av.logging.PANIC)


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class DecodeError(Exception):
    """The file cannot be decoded; `outcome` is the files-counter label, `frames` what was decoded before."""

    def __init__(self, outcome: str, message: str, frames: int = 0) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.frames = frames


class SampledFrame:
    """One sample: sample index k (video time k / fps) and the decoded picture.

    The picture is converted to BGR only when asked (`image`), which is for the frames the
    detector sees; the motion gate reads the luma plane as it came out of the decoder (`luma`),
    so a frame skipped for lack of motion never pays for a colour conversion.
    """

    __slots__ = ("index", "time", "frame_time", "_frame", "_image")

    def __init__(
        self, index: int, time: float, frame_time: float, frame: av.VideoFrame | None = None,
        image: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.time = time
        self.frame_time = frame_time  # the decoded frame's own presentation time
        self._frame = frame
        self._image = image

    @property
    def image(self) -> np.ndarray:
        """BGR, full resolution (converted once, then the decoder's frame is let go)."""
        if self._image is None:
            assert self._frame is not None  # let go only once the image is converted
            self._image = self._frame.to_ndarray(format="bgr24")
            self._frame = None
        return self._image

    @property
    def nbytes(self) -> int:
        """Bytes this sample holds: the decoder's planes as they are (format, padding) and/or the BGR image."""
        held = self._image.nbytes if self._image is not None else 0
        if self._frame is not None:
            held += sum(plane.buffer_size for plane in self._frame.planes)
        return held

    @property
    def luma(self) -> np.ndarray:
        """The brightness plane (2-D): the decoder's Y plane for 8-bit YUV, else from the BGR image."""
        frame = self._frame
        if frame is not None and frame.format.name in _EIGHT_BIT_YUV:
            plane = frame.planes[0]
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
            return rows[:, : plane.width]
        return self.image


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    duration: float | None  # seconds, when the container says


class FrameSampler:
    """Pure: which decoded frames to keep for an analysis rate of `fps`, starting at sample `start_index`."""

    def __init__(self, fps: float, start_index: int = 0) -> None:
        self.fps = fps
        self.next_index = start_index

    def take(self, frame_time: float) -> int | None:
        """The sample index this frame stands for, or None if it is not sampled."""
        if frame_time + EPSILON < self.next_index / self.fps:
            return None
        # A frame may cover several grid points (video slower than the analysis rate): it stands for
        # the latest one not after it, and the grid moves on from there.
        index = max(self.next_index, math.floor(frame_time * self.fps + EPSILON))
        self.next_index = index + 1
        return index


def looks_like_video(path: Path) -> bool:
    """Whether the first bytes carry a known container signature."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def riff_shortfall(path: Path) -> str | None:
    """Why an AVI is incomplete by its RIFF header, or None: the size it declares is more than the file has.

    A writer patches the size when it closes the file (until then it is 0xFFFFFFFF), so a file cut
    off, or still being written by a camera that paused, declares more than it holds. (Files over
    1 GB chain further RIFF chunks; the first one's size then covers only the first chunk.)
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        size = os.fstat(handle.fileno()).st_size
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    declared = int.from_bytes(head[4:8], "little") + 8
    if declared <= size:
        return None
    if declared == 0xFFFFFFFF + 8:
        return "AVI header not finished (still being written, or the writer stopped)"
    return f"AVI header says {declared} bytes, the file has {size}"


class VideoReader:
    """One open video file; use as a context manager."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self._path = path
        try:
            self._container = av.open(str(path), mode="r")
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise  # PyAV's versions of these are FFmpegErrors too; the caller gives each its own outcome
        except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
            outcome = CORRUPT if looks_like_video(path) else NON_VIDEO
            raise DecodeError(outcome, f"cannot open: {exc}") from None
        if not self._container.streams.video:
            self._container.close()
            raise DecodeError(NON_VIDEO, "no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = threads or decoder_threads(available_cpus())
        if self._stream.codec_context.thread_count > 1:
            self._stream.thread_type = DECODER_THREAD_TYPE
        self._time_base = self._stream.time_base
        self._start_pts = self._stream.start_time or 0
        ctx = self._stream.codec_context
        duration = None
        if self._stream.duration and self._time_base:
            duration = float(self._stream.duration * self._time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        self.info = VideoInfo(codec=ctx.name, width=ctx.width, height=ctx.height, duration=duration)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self._frame_step = 1.0 / float(rate) if rate else 0.04
        self._declared_duration = max(duration or 0.0, (self._stream.frames or 0) * self._frame_step) or None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def samples(self, fps: float, start_index: int = 0, decoded: Counter | None = None) -> Iterator[SampledFrame]:
        """Decode from sample `start_index` on, yielding the frames on the k / fps grid."""
        sampler = FrameSampler(fps, start_index)
        time_base = self._time_base
        assert time_base is not None  # every stream PyAV opens for decoding has one
        if self._frame_step and fps * self._frame_step <= SKIP_NONREF_BELOW:
            self._stream.codec_context.skip_frame = "NONREF"
        start_time = start_index / fps
        if start_index > 0:
            target = self._start_pts + int(start_time / time_base)
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        frames = 0
        last_time = -self._frame_step
        try:
            for frame in self._container.decode(self._stream):
                frames += 1
                if decoded is not None:
                    decoded.inc()
                if frame.pts is not None:
                    frame_time = float((frame.pts - self._start_pts) * time_base)
                else:
                    frame_time = last_time + self._frame_step
                last_time = frame_time
                index = sampler.take(frame_time)
                if index is not None:
                    yield SampledFrame(index, index / fps, frame_time, frame)
        except av.FFmpegError as exc:
            raise DecodeError(TRUNCATED if frames else CORRUPT, f"decoding failed: {exc}", frames) from None
        if frames == 0 and start_index == 0:
            raise DecodeError(CORRUPT, "no frame could be decoded")
        # A cut-off file often just ends (no decoder error); its header still knows how long it was.
        problem = self._shortfall(last_time)
        if frames and problem:
            raise DecodeError(TRUNCATED, problem, frames)

    def _shortfall(self, last_time: float) -> str | None:
        """Why the file holds less than its container says, or None."""
        if self._container.format.name == "avi":
            problem = riff_shortfall(self._path)
            if problem:
                return problem
        duration = self._declared_duration
        if duration and last_time < duration - max(TRUNCATION_SLACK_SECONDS, 2 * self._frame_step):
            return f"stream ends at {last_time:.2f} s of {duration:.2f} s"
        return None
