"""The read-ahead thread between the decoder and the detector: order, errors, stopping early, and a
bound in bytes of the frames as they really are (4:4:4, 10-bit and BGR frames are larger than 4:2:0)."""

from __future__ import annotations

import threading
from contextlib import closing
from fractions import Fraction

import av
import numpy as np
import pytest
from edge_inference_worker.decode import VideoReader
from edge_inference_worker.pipeline import (
    FRAMES_HELD_ELSEWHERE,
    READ_AHEAD_BYTES,
    READ_AHEAD_GATED_FRAMES,
    read_ahead_limit,
    with_images,
)
from edge_inference_worker.streams import ReadAhead, ReadAheadLimit
from support.waiting import wait_until


def read_ahead(items, depth):
    return ReadAhead(items, ReadAheadLimit(READ_AHEAD_BYTES, depth, depth))


def test_items_arrive_in_order_from_another_thread():
    threads: set[str] = set()

    def source():
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(source(), depth=3)) == list(range(50))
    assert threads == {"decode-ahead"}


def test_an_error_of_the_producer_comes_after_the_items_before_it():
    class Broken(Exception):
        pass

    def source():
        yield from range(5)
        raise Broken("frame 5 is damaged")

    seen = []
    with pytest.raises(Broken, match="frame 5 is damaged"):
        for item in read_ahead(source(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_closing_early_stops_a_producer_waiting_on_a_full_buffer():
    produced = []
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    with closing(read_ahead(endless(), depth=2)) as items:
        assert next(items) == 0
        assert next(items) == 1
    # close() returned: the producer has stopped and its source was closed, with at most the
    # buffer's worth read ahead of what was taken.
    assert closed.is_set()
    assert len(produced) <= 2 + 2 + 1
    assert not any(t.name == "decode-ahead" for t in threading.enumerate())


def test_items_are_held_up_to_the_byte_budget_within_the_frame_bounds():
    sizes = {i: 10 for i in range(100)}
    ahead = ReadAhead(iter(range(100)), ReadAheadLimit(budget_bytes=55, min_items=2, max_items=8), sizes.get)
    with closing(ahead):
        wait_until(lambda: ahead.held_items == 5, 10, "the producer to fill the budget")
        assert ahead.held_bytes == 50  # a sixth item of 10 bytes would pass 55
        assert next(ahead) == 0
        wait_until(lambda: ahead.held_items == 5, 10, "the producer to refill")
    big = ReadAhead(iter(range(100)), ReadAheadLimit(budget_bytes=55, min_items=2, max_items=8), lambda _: 100)
    with closing(big):
        wait_until(lambda: big.held_items == 2, 10, "the floor of two items, over budget")
    small = ReadAhead(iter(range(100)), ReadAheadLimit(budget_bytes=10**9, min_items=2, max_items=8), lambda _: 1)
    with closing(small):
        wait_until(lambda: small.held_items == 8, 10, "the ceiling")
    reserved = ReadAhead(iter(range(100)), ReadAheadLimit(100, 2, 50, reserve_items=4), sizes.get)
    with closing(reserved):
        wait_until(lambda: reserved.held_items == 6, 10, "the budget less four items held elsewhere")


def _clip(path, pix_fmt: str, width: int = 640, height: int = 360, frames: int = 300) -> None:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast"}
        picture = rng.integers(0, 255, (height, width, 3), np.uint8)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(picture, index, axis=1), format="rgb24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


@pytest.mark.parametrize(("pix_fmt", "bytes_per_pixel"), [("yuv420p", 1.5), ("yuv444p", 3), ("yuv420p10le", 3)])
def test_the_gated_read_ahead_counts_frames_as_the_decoder_gives_them(tmp_path, pix_fmt, bytes_per_pixel):
    path = tmp_path / f"{pix_fmt}.mkv"
    _clip(path, pix_fmt)
    with VideoReader(path) as reader:
        first = next(reader.samples(25.0))
        assert first.nbytes == 640 * 360 * bytes_per_pixel
        limit = read_ahead_limit(batch_size=1, gated=True)
        with closing(ReadAhead(reader.samples(25.0), limit, lambda frame: frame.nbytes)) as ahead:
            wait_until(lambda: ahead.held_items >= READ_AHEAD_GATED_FRAMES[0], 30, "frames decoded ahead")
            budget = READ_AHEAD_BYTES - FRAMES_HELD_ELSEWHERE * first.nbytes
            wait_until(lambda: ahead.held_bytes + first.nbytes > budget
                     or ahead.held_items == READ_AHEAD_GATED_FRAMES[1], 30, "the buffer to fill")
            assert ahead.held_bytes <= budget


def test_frames_converted_for_the_detector_count_their_bgr_image(tmp_path):
    path = tmp_path / "clip.mkv"
    _clip(path, "yuv420p", frames=20)
    with VideoReader(path) as reader:
        frame = next(with_images(reader.samples(25.0)))
        assert frame.nbytes == 640 * 360 * 3  # the decoder's picture is let go once converted


@pytest.mark.parametrize("batch_size", [1, 8, 64])
def test_every_limit_holds_at_least_one_batch(batch_size):
    for gated in (False, True):
        limit = read_ahead_limit(batch_size, gated)
        assert limit.min_items >= batch_size and limit.max_items >= limit.min_items
        assert limit.budget_bytes == READ_AHEAD_BYTES and limit.reserve_items == FRAMES_HELD_ELSEWHERE
