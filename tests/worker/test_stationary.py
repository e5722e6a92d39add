"""Stationary objects: a parked car closes its event, leaves the motion gate and is only re-checked.

Pure rules first (the tracker, the grouper's flag, the gate's mask), then the worker on a clip with a
car parked for the whole file while people and cars cross.
"""

from __future__ import annotations

import numpy as np
import pytest
from edge_inference_worker.events import Detection, EventGrouper
from edge_inference_worker.motion import MotionGate
from edge_inference_worker.stationary import StationaryTracker
from support.synthetic import make_video, parked_car_scenario
from support.worker_harness import detect_flags, event_documents, run_in_process

PARKED = Detection("car", 0.9, (40.0, 40.0, 180.0, 100.0))


def walker(t: float) -> Detection:
    return Detection("person", 0.8, (100.0 + 8 * t, 150.0, 140.0 + 8 * t, 260.0))  # 8 px/s: slow but moving


def test_an_object_still_for_the_set_time_becomes_stationary_once():
    tracker = StationaryTracker(still_seconds=30, recheck_seconds=10)
    settled_at = []
    for step in range(0, 81):
        t = step * 0.5
        moving, settled = tracker.split(t, [PARKED, walker(t)])
        assert walker(t) in moving  # a slow walker drifts away from where it was first seen
        if settled:
            settled_at.append((t, settled))
        assert (PARKED in moving) == (t < 30)
    assert settled_at == [(30.0, ["car"])]
    assert tracker.boxes() == [PARKED.box]
    assert not tracker.idle


def test_a_stationary_object_is_rechecked_and_let_go_when_a_recheck_misses_it():
    tracker = StationaryTracker(still_seconds=30, recheck_seconds=10)
    for t in range(0, 31):
        tracker.split(float(t), [PARKED])
    assert not tracker.recheck_due(35.0) and tracker.recheck_due(40.0)
    tracker.split(36.0, [])  # analysed for motion elsewhere, the car hidden by a passer-by: kept
    assert tracker.boxes() == [PARKED.box]
    tracker.split(40.0, [PARKED])  # the re-check finds it: next one 10 s later
    assert not tracker.recheck_due(49.0) and tracker.recheck_due(50.0)
    tracker.split(50.0, [])  # the re-check misses it: it left
    assert tracker.boxes() == [] and not tracker.recheck_due(60.0)


def test_a_stationary_object_back_within_the_quiet_time_makes_no_new_event():
    tracker = StationaryTracker(still_seconds=30, recheck_seconds=10, quiet_seconds=3600)
    for t in range(0, 41, 10):
        tracker.split(float(t), [PARKED])
    tracker.split(50.0, [])  # a missed detection at a re-check
    moving, settled = tracker.split(52.0, [PARKED])
    assert moving == [] and settled == []  # stationary again at once, no second event
    tracker.split(60.0, [])
    tracker.split(70.0, [])
    moving, _ = tracker.split(3700.0, [PARKED])  # an hour later it counts as a new arrival
    assert moving == [PARKED]


def test_the_grouper_closes_a_stationary_event_with_its_flag():
    grouper = EventGrouper("file", min_frames=1, cooldown_seconds=3)
    grouper.observe(0.0, [PARKED])
    grouper.mark_stationary("car")
    (event,) = grouper.observe(5.0, [])
    assert event.stationary and event.cls == "car"
    grouper.observe(6.0, [PARKED])
    assert grouper.finish()[0].stationary is False  # a new event starts unflagged


def test_motion_inside_a_stationary_box_does_not_wake_the_detector():
    gate = MotionGate(threshold=0.002)
    frame = np.full((360, 640), 80, np.uint8)
    gate.moved(frame)
    gate.ignore([PARKED.box])
    inside = frame.copy()
    inside[45:95, 45:175] = 200  # its lights, its shadow: inside the parked car's box
    assert not gate.moved(inside)
    outside = inside.copy()
    outside[200:300, 300:360] = 200
    assert gate.moved(outside)


@pytest.fixture(scope="module")
def parked_clip(tmp_path_factory):
    """150 s at 5 fps: a car parked throughout, four people and cars crossing after the first 45 s."""
    base = parked_car_scenario(150.0, crossings=4, fps=5, seed=4)
    path = tmp_path_factory.mktemp("parked") / "videos" / "parked.mp4"
    return path, make_video(path, base, seed=4)


def _run(parked_clip, worker_env, tmp_path, *extra):
    path, _ = parked_clip
    return run_in_process(detect_flags(path.parent, str(tmp_path / "events"), tmp_path / "state", *extra), worker_env)


def test_a_parked_car_makes_one_event_and_gating_works_around_it(parked_clip, worker_env, tmp_path_factory):
    _, truth = parked_clip
    plain = _run(parked_clip, worker_env, tmp_path_factory.mktemp("plain"), "--stationary-seconds", "0")
    base = tmp_path_factory.mktemp("stationary")
    run = _run(parked_clip, worker_env, base)
    assert plain.code == run.code == 0
    analysed = run.metric("edge_inference_frames_analysed_total")
    sampled = analysed + run.metric("edge_inference_frames_skipped_motion_total")
    # Without the rule the parked car keeps its event open: every sample goes through the detector.
    assert plain.metric("edge_inference_frames_skipped_motion_total") == 0
    assert analysed < 0.5 * sampled

    documents = list(event_documents(base / "events").values())
    parked = [d for d in documents if d["class"] == "car" and d["videoTime"]["start"] < 5]
    assert len(parked) == 1 and parked[0]["stationary"] is True
    assert 29 <= parked[0]["videoTime"]["end"] <= 31
    for obj in truth.objects[1:]:
        hits = [d for d in documents if d["class"] == obj.class_name and not d["stationary"]
                and d["videoTime"]["start"] <= obj.onscreen_end_s and d["videoTime"]["end"] >= obj.onscreen_start_s]
        assert len(hits) == 1, (obj.class_name, obj.onscreen_start_s, [d["videoTime"] for d in documents])
    assert len(documents) == 1 + len(truth.objects) - 1



def test_a_frame_analysed_for_motion_elsewhere_that_sees_it_counts_as_its_check():
    tracker = StationaryTracker(still_seconds=30, recheck_seconds=10)
    for t in range(0, 31, 5):
        tracker.split(float(t), [PARKED])
    assert tracker.recheck_due(40.0)
    tracker.split(37.0, [PARKED, walker(37.0)])  # a passer-by woke the detector; the car was seen
    assert not tracker.recheck_due(46.0) and tracker.recheck_due(47.0)
