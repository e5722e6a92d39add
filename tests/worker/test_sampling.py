"""Sampling on the absolute k / fps grid, and batches aligned to it (pure)."""

import numpy as np
import pytest
from edge_inference_worker.decode import FrameSampler, SampledFrame
from edge_inference_worker.streams import aligned_batches


def sample(frame_times, fps, start_index=0):
    sampler = FrameSampler(fps, start_index)
    return [(t, k) for t in frame_times if (k := sampler.take(t)) is not None]


@pytest.mark.parametrize(
    ("video_fps", "fps", "seconds", "expected_indices"),
    [
        (10, 2.0, 3, [0, 1, 2, 3, 4, 5]),
        (25, 2.0, 2, [0, 1, 2, 3]),
        (30, 3.0, 1, [0, 1, 2]),
        (1, 2.0, 3, [0, 2, 4]),  # slower video: a frame stands for the latest grid point before it
        (10, 10.0, 1, list(range(10))),
    ],
)
def test_one_frame_per_grid_point(video_fps, fps, seconds, expected_indices):
    times = [i / video_fps for i in range(video_fps * seconds)]
    taken = sample(times, fps)
    assert [k for _, k in taken] == expected_indices
    for t, k in taken:
        assert t >= k / fps - 1e-6  # never before its grid point
        assert t < k / fps + 1 / video_fps + 1e-6  # and the first frame at or after it


def test_resuming_takes_exactly_the_frames_of_an_uninterrupted_run():
    times = [i / 25 for i in range(25 * 20)]
    full = sample(times, 2.0)
    # A resume seeks to a keyframe before the checkpoint, so decoding restarts early.
    resumed = sample([t for t in times if t >= 4.0], 2.0, start_index=14)
    assert resumed == [pair for pair in full if pair[1] >= 14]


def test_float_times_just_below_a_grid_point_are_taken():
    # 1/3 s frames: 0.333... * 3 is 0.9999999 in floating point, which is grid point 1.
    taken = sample([i * (1 / 3) for i in range(9)], 3.0)
    assert [k for _, k in taken] == list(range(9))


def frames(indices):
    return [SampledFrame(k, k / 2, k / 2, image=np.zeros((1, 1, 3), np.uint8)) for k in indices]


def test_batches_are_aligned_to_absolute_indices():
    batches = [[f.index for f in b] for b in aligned_batches(frames(range(3, 13)), 4)]
    assert batches == [[3], [4, 5, 6, 7], [8, 9, 10, 11], [12]]


def test_batch_of_one_is_every_frame():
    assert [[f.index for f in b] for b in aligned_batches(frames([0, 1, 2]), 1)] == [[0], [1], [2]]
