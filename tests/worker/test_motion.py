"""Motion gating on a small grey frame (pure, synthetic arrays)."""

import numpy as np
from edge_inference_worker.motion import MotionGate, changed_fraction, small_grey

THRESHOLD = 0.002


def textured(seed=0, shape=(360, 640)):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(shape[0] // 8, shape[1] // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))


def noisy(frame, seed, sigma=2.0):
    rng = np.random.default_rng(seed)
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def test_first_frame_counts_as_motion():
    assert MotionGate(THRESHOLD).moved(textured())


def test_sensor_noise_on_a_static_scene_is_not_motion():
    gate = MotionGate(THRESHOLD)
    scene = textured()
    gate.moved(noisy(scene, 1))
    assert not any(gate.moved(noisy(scene, seed)) for seed in range(2, 12))


def test_a_small_object_entering_is_motion():
    gate = MotionGate(THRESHOLD)
    scene = textured()
    gate.moved(scene)
    with_object = scene.copy()
    with_object[150:210, 300:330] = (20, 20, 230)  # a 30x60 px figure: under 1% of the frame
    assert gate.moved(with_object)
    assert not gate.moved(with_object)  # it stopped: nothing moved since the previous frame


def test_threshold_is_a_fraction_of_the_small_frame():
    a = np.full((90, 160), 100, np.uint8)
    b = a.copy()
    b[:10, :16] = 200  # 160 of 160*90 pixels moved a lot
    b[50:60, :] = 110  # 1600 moved by less than PIXEL_DELTA (noise, compression): not counted
    assert changed_fraction(a, b) == 160 / a.size
    assert small_grey(textured()).shape == (90, 160)
    assert MotionGate(0.02).threshold == 0.02


def test_a_change_of_resolution_counts_as_motion():
    gate = MotionGate(THRESHOLD)
    gate.moved(textured(shape=(360, 640)))
    assert gate.moved(textured(shape=(720, 640)))


def test_a_grey_car_on_a_grey_road_is_motion():
    # Seen on the parked-car benchmark: a car 18 grey levels lighter than the road it crosses (a 171x72 px
    # body at 640x360, windows and wheels aside) changed under 0.2% of the small frame by more than 25 levels.
    gate = MotionGate(THRESHOLD)
    road = np.full((360, 640), 70, np.uint8)
    gate.moved(noisy(road, 1, sigma=3.0))
    car = road.copy()
    car[277:349, 300:471] = 88
    assert gate.moved(noisy(car, 2, sigma=3.0))
    assert not gate.moved(noisy(car, 3, sigma=3.0))  # camera noise on it is not motion
