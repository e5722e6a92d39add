"""The read-ahead thread between the decoder and the detector: order, errors, and stopping early."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest
from edge_inference_worker.pipeline import (
    READ_AHEAD_GATED_BYTES,
    READ_AHEAD_GATED_FRAMES,
    gated_read_ahead,
    read_ahead,
)


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


@pytest.mark.parametrize(("width", "height", "frames"), [
    (640, 360, 194),  # 64 MiB of 4:2:0 pictures
    (1280, 720, 48),
    (1920, 1080, 21),
    (3840, 2160, 8),  # the floor: decoding still runs through an event's forward passes
    (160, 90, 256),  # the ceiling
    (0, 0, 256),  # a stream that does not say its size
])
def test_the_gated_read_ahead_holds_a_bounded_amount_of_decoded_pictures(width, height, frames):
    assert gated_read_ahead(width, height) == frames
    lowest, highest = READ_AHEAD_GATED_FRAMES
    if lowest < frames < highest:
        assert frames * width * height * 3 // 2 <= READ_AHEAD_GATED_BYTES
