"""Decoding real H.264: samples on the k / fps grid, identical after a seek, luma without conversion."""

from __future__ import annotations

import cv2
import numpy as np
from edge_inference_worker.decode import VideoReader


class Count:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


def test_samples_sit_on_the_grid(short_clip):
    decoded = Count()
    with VideoReader(short_clip.path) as reader:
        samples = [(s.index, s.frame_time) for s in reader.samples(2.0, decoded=decoded)]
        info = reader.info
        assert (info.codec, info.width, info.height, info.duration) == ("h264", 640, 360, 24.0)
    assert [k for k, _ in samples] == list(range(48))
    assert all(k / 2 <= t < k / 2 + 0.5 for k, t in samples)
    assert decoded.value < 240  # sampling 2 of 10 fps: B frames are skipped, not decoded


def test_every_frame_when_sampling_at_the_video_rate(short_clip):
    decoded = Count()
    with VideoReader(short_clip.path) as reader:
        samples = [s.frame_time for s in reader.samples(10.0, decoded=decoded)]
    assert decoded.value == len(samples) == 240
    assert samples == [i / 10 for i in range(240)]


def test_a_resumed_decode_yields_exactly_the_same_samples(short_clip):
    with VideoReader(short_clip.path) as reader:
        full = [(s.index, s.frame_time, s.image) for s in reader.samples(2.0)]
    for start in (7, 20, 33):  # not on keyframes: the seek lands before and decodes forward
        with VideoReader(short_clip.path) as reader:
            resumed = [(s.index, s.frame_time, s.image) for s in reader.samples(2.0, start_index=start)]
        assert [(k, t) for k, t, _ in resumed] == [(k, t) for k, t, _ in full[start:]]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(resumed, full[start:], strict=True))


def test_luma_is_the_decoders_brightness_plane(short_clip):
    with VideoReader(short_clip.path) as reader:
        sample = next(iter(reader.samples(2.0, start_index=4)))
        luma = sample.luma.copy()
        grey = cv2.cvtColor(sample.image, cv2.COLOR_BGR2GRAY)
    assert luma.shape == (360, 640)
    assert np.abs(luma.astype(int) - grey.astype(int)).mean() < 6
