"""Snapshots: redaction happens on the node, before anything is encoded; boxes drawn with OpenCV."""

import cv2
import numpy as np
from edge_inference_api.models import SnapshotStyle
from edge_inference_worker.events import Detection
from edge_inference_worker.snapshot import redact, render_snapshot


def scene():
    rng = np.random.default_rng(3)
    return rng.integers(0, 255, size=(360, 640, 3), dtype=np.uint8)


def high_frequency(region):
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_redaction_destroys_detail_inside_the_box_only():
    image = scene()
    original = image.copy()
    assert redact(image, [(100.0, 50.0, 160.0, 250.0), (700.0, 0.0, 800.0, 10.0)]) == 1  # 2nd is off-frame
    assert high_frequency(image[50:250, 100:160]) < high_frequency(original[50:250, 100:160]) / 20
    outside = np.ones(image.shape[:2], bool)
    outside[50:250, 100:160] = False
    assert np.array_equal(image[outside], original[outside])


def test_render_blurs_then_draws_and_records_the_redaction():
    image = scene()
    person = Detection("person", 0.9, (100.0, 50.0, 160.0, 250.0))
    car = Detection("car", 0.8, (300.0, 200.0, 500.0, 300.0))
    jpeg, redaction = render_snapshot(image, [car], [person], ["person"], SnapshotStyle.ANNOTATED, 90)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    assert (redaction.classes, redaction.regions) == (("person",), 1)
    assert high_frequency(decoded[60:240, 110:150]) < high_frequency(image[60:240, 110:150]) / 10
    assert np.array_equal(image, scene())  # the caller's frame is untouched


def test_raw_style_draws_nothing():
    image = np.full((100, 100, 3), 128, np.uint8)
    box = Detection("car", 0.8, (10.0, 10.0, 90.0, 90.0))
    raw, _ = render_snapshot(image, [box], [], [], SnapshotStyle.RAW, 95)
    drawn, _ = render_snapshot(image, [box], [], [], SnapshotStyle.ANNOTATED, 95)
    raw_pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR).astype(int)
    drawn_pixels = cv2.imdecode(np.frombuffer(drawn, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert np.abs(raw_pixels - 128).max() <= 2
    assert np.abs(drawn_pixels - 128).max() > 50
