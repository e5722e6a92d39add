"""The synthetic video generator: decodable output in every codec/container, truth that matches the pixels."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from support.synthetic import (
    CLASS_NAMES,
    SUPPORTED_FORMATS,
    VISIBLE_FRACTION,
    GroundTruth,
    Scenario,
    crossing,
    frame_runs,
    make_video,
    parked_car_scenario,
    render_frames,
    scenario_truth,
    scene_background,
    short_scenario,
    static_heavy_scenario,
    training_samples,
    truth_path,
)

# Two objects crossing a small frame in 3 s: enough to exercise every code path cheaply.
SHORT = Scenario(
    "short", 320, 180, 10, 3.0,
    (
        crossing("person", enter_s=0.2, crossing_s=2.0, frame_width=320, y_bottom=120, width=24, height=66),
        crossing("car", enter_s=0.5, crossing_s=2.0, frame_width=320, y_bottom=175, width=96, height=40,
                 leftwards=True),
    ),
)


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, stream.codec_context.name, float(container.duration or 0) / av.time_base


@pytest.mark.parametrize(("codec", "container"), SUPPORTED_FORMATS)
def test_every_codec_and_container_decodes_to_the_scenario(tmp_path, codec, container):
    path = tmp_path / f"clip.{container}"
    truth = make_video(path, SHORT, seed=3, codec=codec)

    frames, decoded_codec, duration_s = _decode(path)

    assert decoded_codec == codec
    assert len(frames) == SHORT.frame_count == truth.frame_count == 30
    assert frames[0].shape == (180, 320, 3)
    assert duration_s == pytest.approx(SHORT.duration_s, abs=0.15)
    assert (truth.codec, truth.container) == (codec, container)


def test_truth_is_saved_beside_the_video_and_round_trips(tmp_path):
    path = tmp_path / "clip.mp4"
    truth = make_video(path, SHORT, seed=3)

    saved = json.loads(truth_path(path).read_text())

    assert truth_path(path).name == "clip.mp4.truth.json"
    assert saved["classes"] == {"0": "person", "1": "car"}
    assert GroundTruth.load(path) == truth


def test_same_seed_same_frames_other_seed_other_scene():
    first = [frame for frame, _ in render_frames(SHORT, seed=5)]
    again = [frame for frame, _ in render_frames(SHORT, seed=5)]
    other = next(render_frames(SHORT, seed=6))[0]

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.abs(first[0].astype(int) - other.astype(int)).mean() > 10


def test_truth_boxes_are_exactly_where_the_pixels_changed(tmp_path):
    """Away from the boxes a frame is the backdrop plus sensor noise; each box is tight around drawn pixels."""
    truth = make_video(tmp_path / "clip.mp4", SHORT, seed=3)
    backdrop = scene_background(SHORT, seed=3)
    empty = set(truth.empty_frames())
    assert 0 < len(empty) < SHORT.frame_count
    for index, (frame, placed) in enumerate(render_frames(SHORT, seed=3)):
        changed = np.abs(frame.astype(np.float32) - backdrop).max(axis=2) > 12  # 6 sigma of sensor noise
        if index in empty:
            assert not changed.any(), f"frame {index} is empty in the truth but has drawn pixels"
            continue
        outside = changed.copy()
        for p in placed:  # every drawn object, slivers at the edge included
            x0, y0, x1, y1 = p.box
            inside = changed[y0:y1, x0:x1]
            # Drawn pixels touch all four sides of the box (unless a side is the frame edge).
            assert inside[0].any() or y0 == 0
            assert inside[-1].any() or y1 == SHORT.height
            assert inside[:, 0].any() or x0 == 0
            assert inside[:, -1].any() or x1 == SHORT.width
            outside[y0:y1, x0:x1] = False
        assert not outside.any(), f"frame {index}: drawn pixels outside every object's box"
        recorded = {obj.id: box for obj, box in truth.boxes_at(index)}
        expected = {p.object_index: p.box for p in placed if p.visible_fraction >= VISIBLE_FRACTION}
        assert recorded == expected


@pytest.mark.parametrize("scenario", [short_scenario(), static_heavy_scenario(600, seed=2)], ids=lambda s: s.name)
def test_truth_intervals_agree_with_the_boxes(scenario):
    truth = scenario_truth(scenario, seed=0)

    assert {o.class_name for o in truth.objects} == {"person", "car"}
    for obj in truth.objects:
        frames = sorted(obj.boxes)
        # A crossing is one unbroken visit: boxes on every frame from start to end.
        assert frames == list(range(obj.start_frame, obj.end_frame + 1))
        assert obj.start_s == obj.start_frame / scenario.fps and obj.end_s == obj.end_frame / scenario.fps
        assert obj.onscreen_start_s <= obj.start_s <= obj.end_s <= obj.onscreen_end_s
        for x0, y0, x1, y1 in obj.boxes.values():
            assert 0 <= x0 < x1 <= scenario.width and 0 <= y0 < y1 <= scenario.height
    for index in truth.empty_frames():
        assert truth.boxes_at(index) == []


def test_short_scenario_has_both_classes_and_a_stretch_with_nothing():
    truth = scenario_truth(short_scenario(), seed=0)
    empty = truth.empty_frames()
    runs = frame_runs(empty)

    assert 2 <= len(truth.objects) <= 4
    assert max(end - start + 1 for start, end in runs) >= 3 * truth.fps  # >= 3 s of nothing


def test_static_heavy_footage_is_mostly_static():
    scenario = static_heavy_scenario(1200, fps=10, seed=4)
    truth = scenario_truth(scenario, seed=4)
    busy_fraction = 1 - len(truth.empty_frames()) / truth.frame_count

    assert 0.05 <= busy_fraction <= 0.15
    assert len(truth.objects) >= 10


def test_training_samples_have_valid_yolo_labels():
    samples = list(training_samples(24, seed=11))
    labels = [label for sample in samples for label in sample.labels]

    assert {c for c, *_ in labels} == set(CLASS_NAMES)
    assert any(not sample.labels for sample in samples)  # some pure-background frames
    # Full frames and close-ups (half the size, objects as large in pixels as in a full frame).
    assert {sample.image.shape for sample in samples} == {(360, 640, 3), (180, 320, 3)}
    for sample in samples:
        assert sample.image.dtype == np.uint8
        lines = sample.yolo_text().splitlines()
        assert len(lines) == len(sample.labels)
    for _, cx, cy, w, h in labels:
        assert 0 < w <= 1 and 0 < h <= 1
        assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 <= 1 + 1e-6
        assert 0 <= cy - h / 2 + 1e-6 and cy + h / 2 <= 1 + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codec": "vp9"}, "unsupported codec 'vp9'"),
        ({"container": "mov"}, "unsupported container 'mov'"),
        ({"codec": "hevc", "container": "avi"}, "unsupported pairing: hevc in avi"),
    ],
)
def test_unsupported_codec_or_container_is_a_clear_error(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_video(tmp_path / "clip.mp4", SHORT, **kwargs)
    assert not (tmp_path / "clip.mp4").exists()


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown class 'dog'"):
        crossing("dog", enter_s=0, crossing_s=1, frame_width=100, y_bottom=50, width=10, height=10)


def test_a_paused_object_stands_still_and_stays_in_the_truth():
    loiter = crossing("person", enter_s=0.0, crossing_s=2.0, frame_width=320, y_bottom=150, width=24, height=66,
                      pause=(0.5, 1.5))
    scenario = Scenario("loiter", 320, 180, 10, 4.0, (loiter,))
    truth = scenario_truth(scenario, seed=1)
    (person,) = truth.objects
    paused = [person.boxes[i] for i in range(11, 25)]  # 1.1 s .. 2.4 s: inside the 1.0-2.5 s pause

    assert len(set(paused)) == 1
    assert not loiter.is_moving_at(1.7) and loiter.is_moving_at(0.5) and loiter.is_moving_at(3.0)
    assert person.end_s - person.start_s > 2.0  # the pause adds to the time on screen


def test_the_parked_car_stays_for_the_whole_file_while_a_hundred_objects_cross_clear_of_it():
    scenario = parked_car_scenario(700.0, crossings=100, fps=2, seed=3)
    truth = scenario_truth(scenario, seed=3)
    parked, crossers = truth.objects[0], truth.objects[1:]
    assert parked.class_name == "car"
    assert (parked.start_s, parked.end_s) == (0.0, (scenario.frame_count - 1) / scenario.fps)
    assert len(set(parked.boxes.values())) == 1  # it never moves
    (px1, py1, px2, py2) = next(iter(parked.boxes.values()))
    assert len(crossers) == 100 and {o.class_name for o in crossers} == {"person", "car"}
    assert min(o.onscreen_start_s for o in crossers) >= 45.0
    for obj in crossers:
        for x1, y1, x2, _ in obj.boxes.values():
            assert y1 >= py2 or x1 >= px2 or x2 <= px1, "a crossing hides the parked car"
    spans = sorted((o.onscreen_start_s, o.onscreen_end_s) for o in crossers)
    assert all(b[0] > a[1] for a, b in zip(spans, spans[1:], strict=False))  # one at a time
