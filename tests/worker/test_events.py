"""EventGrouper: detections per sampled frame become events (pure, no video)."""

import pytest
from edge_inference_worker.events import Detection, EventGrouper, event_id

FPS = 2.0


def person(conf=0.8, box=(0.0, 0.0, 10.0, 20.0)):
    return Detection("person", conf, box)


def car(conf=0.7):
    return Detection("car", conf, (5.0, 5.0, 50.0, 25.0))


def run(frames, min_frames=3, cooldown=3.0):
    """frames: one entry per sampled frame (k / FPS): a list of detections, or None (not analysed)."""
    grouper = EventGrouper("file1", min_frames, cooldown)
    events = []
    for k, detections in enumerate(frames):
        events += grouper.observe(k / FPS, detections, frame=k)
    return events + grouper.finish()


def spans(events):
    return [(e.cls, e.start, e.end, e.frames) for e in events]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        pytest.param([[]] * 10, [], id="nothing"),
        pytest.param([[person()]] * 2 + [[]] * 10, [], id="two frames are below min_frames: no event"),
        pytest.param([[]] + [[person()]] * 3 + [[]] * 10, [("person", 0.5, 1.5, 3)], id="three frames open one"),
        pytest.param(
            [[person()], [], [person()], [], [person()]] + [[]] * 10,
            [("person", 0.0, 2.0, 3)],
            id="sightings with short gaps still count",
        ),
        pytest.param(
            [[person()]] * 3 + [[]] * 6 + [[person()]] * 3 + [[]] * 7,
            [("person", 0.0, 1.0, 3), ("person", 4.5, 5.5, 3)],
            id="absent for the cooldown (3 s) closes; a later sighting is a new event",
        ),
        pytest.param(
            [[person()]] * 3 + [[]] * 5 + [[person()]] * 3,
            [("person", 0.0, 5.0, 6)],
            id="absent for less than the cooldown keeps it open",
        ),
        pytest.param(
            [[person(), car()]] * 3 + [[car()]] * 3 + [[]] * 8,
            [("person", 0.0, 1.0, 3), ("car", 0.0, 2.5, 6)],
            id="classes are grouped separately",
        ),
        pytest.param(
            [[person()]] * 3 + [None] * 2 + [[person()]] + [[]] * 7,
            [("person", 0.0, 2.5, 4)],
            id="frames not analysed only pass time",
        ),
        pytest.param(
            [[person()]] * 4,
            [("person", 0.0, 1.5, 4)],
            id="end of file closes an open event",
        ),
        pytest.param(
            [[person(), person(0.9, (50.0, 0.0, 60.0, 20.0))]] * 3,
            [("person", 0.0, 1.0, 3)],
            id="two boxes of one class in a frame count once",
        ),
    ],
)
def test_grouping_table(frames, expected):
    assert spans(run(frames)) == expected


def test_cooldown_zero_closes_on_the_first_frame_without_the_class():
    events = run([[person()]] * 3 + [[]] + [[person()]] * 3, cooldown=0.0)
    assert spans(events) == [("person", 0.0, 1.0, 3), ("person", 2.0, 3.0, 3)]


def test_min_frames_one_opens_on_a_single_sighting():
    assert spans(run([[]] * 2 + [[car()]] + [[]] * 10, min_frames=1)) == [("car", 1.0, 1.0, 1)]


def test_peak_mean_and_best_frame():
    confs = [0.5, 0.9, 0.7, 0.9]
    frames = [[person(c, (float(i), 0.0, 10.0, 10.0))] for i, c in enumerate(confs)] + [[]] * 8
    (event,) = run(frames)
    assert event.peak_confidence == 0.9
    assert event.mean_confidence == pytest.approx(sum(confs) / 4)
    # The first of two equal peaks wins, so a re-run picks the same snapshot.
    assert (event.best_time, event.best_box, event.best_frame) == (0.5, (1.0, 0.0, 10.0, 10.0), 1)


def test_the_best_confidence_per_class_in_a_frame_is_used():
    frames = [[person(0.3), person(0.8)]] * 3
    (event,) = run(frames)
    assert event.peak_confidence == 0.8 and event.mean_confidence == pytest.approx(0.8)


def test_ids_are_deterministic_and_distinct():
    first = run([[person()]] * 3 + [[]] * 7 + [[person()]] * 3)
    again = run([[person()]] * 3 + [[]] * 7 + [[person()]] * 3)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == 2
    assert first[0].event_id == event_id("file1", "person", 0.0)
    assert event_id("file1", "person", 0.0) != event_id("file2", "person", 0.0)
    assert event_id("file1", "person", 0.0) != event_id("file1", "car", 0.0)


def test_idle_only_when_nothing_is_open_or_pending():
    grouper = EventGrouper("f", 3, 1.0)
    assert grouper.idle
    grouper.observe(0.0, [person()])
    assert not grouper.idle  # a candidate counts: a checkpoint here would forget it
    grouper.observe(0.5, [])
    grouper.observe(1.0, [])
    assert grouper.idle  # dropped: it never reached min_frames
