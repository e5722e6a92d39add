"""Finding files: globs, confinement to the input folder, completeness (real files, no video)."""

import os

import pytest
from edge_inference_worker.files import SettleTracker, SkippedFile, VideoFile, file_id, glob_regex, scan

INCLUDE = ["**/*.mp4", "**/*.mkv"]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.mp4", "a.mp4", True),
        ("**/*.mp4", "cam1/2026/a.mp4", True),
        ("**/*.mp4", "a.mp4.truth.json", False),
        ("*.mp4", "cam1/a.mp4", False),
        ("cam?/*.mkv", "cam1/x.mkv", True),
        ("cam?/*.mkv", "cam12/x.mkv", False),
        ("cam[12]/*", "cam2/x", True),
        ("cam[!12]/*", "cam2/x", False),
        ("**", "any/thing", True),
        ("a.b", "axb", False),
    ],
)
def test_glob(pattern, path, matches):
    assert bool(glob_regex(pattern).match(path)) is matches


def test_scan_finds_matching_regular_files_sorted(tmp_path):
    for rel in ["b/2.mp4", "a.mkv", "b/1.mp4", "notes.txt", "b/1.mp4.truth.json"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * 3)
    found = list(scan(tmp_path, INCLUDE))
    assert [f.rel for f in found] == ["a.mkv", "b/1.mp4", "b/2.mp4"]
    assert all(isinstance(f, VideoFile) and f.size == 3 for f in found)


def test_symlink_escapes_are_refused_and_inside_links_allowed(tmp_path):
    root, outside = tmp_path / "videos", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"x")
    (root / "real.mp4").write_bytes(b"x")
    (root / "escape.mp4").symlink_to(outside / "x.mp4")
    (root / "passwd.mp4").symlink_to("/etc/passwd")
    (root / "inside.mp4").symlink_to(root / "real.mp4")
    (root / "linked-dir").symlink_to(outside)  # never descended into
    results = {r.rel: r for r in scan(root, INCLUDE)}
    assert set(results) == {"escape.mp4", "inside.mp4", "passwd.mp4", "real.mp4"}
    for rel in ("escape.mp4", "passwd.mp4"):
        assert isinstance(results[rel], SkippedFile) and results[rel].outcome == "symlink_escape"
    assert isinstance(results["inside.mp4"], VideoFile)


def test_things_that_are_not_regular_files_are_refused(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    results = {r.rel: r for r in scan(tmp_path, INCLUDE)}
    assert {rel: (r.outcome, r.reason) for rel, r in results.items()} == {
        "folder.mp4": ("unreadable", "not a regular file (directory)"),
        "pipe.mp4": ("unreadable", "not a regular file (fifo)"),
        "dangling.mp4": ("unreadable", "dangling symlink or file vanished"),
    }


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path):
    # Root reads every folder, so the unlistable folder here is the input folder gone missing
    # (an unmounted camera share in Continuous mode).
    assert list(scan(tmp_path / "unmounted", INCLUDE)) == [
        SkippedFile("./", "unreadable", "cannot list folder: No such file or directory")
    ]


def test_file_id_depends_on_path_and_size():
    assert file_id("a.mp4") == file_id("a.mp4")  # the size is not part of it: a grown file keeps its keys
    assert len({file_id("a.mp4"), file_id("b.mp4"), file_id("cam/a.mp4")}) == 3


def test_a_file_is_ready_only_once_it_stopped_changing():
    tracker = SettleTracker(settle_seconds=5.0)
    growing = [VideoFile(None, "a.mp4", size, size, ) for size in (100, 200, 300)]
    assert not tracker.ready(growing[0], now=0.0)
    assert not tracker.ready(growing[1], now=4.0)  # grew: the clock restarts
    assert not tracker.ready(growing[2], now=8.0)
    assert not tracker.ready(growing[2], now=12.9)
    assert tracker.ready(growing[2], now=13.0)
    touched = VideoFile(None, "a.mp4", 300, 999)
    assert not tracker.ready(touched, now=14.0)  # same size, new mtime: still being written


def test_files_that_went_away_are_forgotten():
    tracker = SettleTracker(settle_seconds=5.0)
    tracker.ready(VideoFile(None, "a.mp4", 1, 1), now=0.0)
    tracker.ready(VideoFile(None, "b.mp4", 1, 1), now=0.0)
    tracker.retain({"b.mp4"})
    assert not tracker.ready(VideoFile(None, "a.mp4", 1, 1), now=10.0)  # seen anew: the clock restarts
    assert tracker.ready(VideoFile(None, "b.mp4", 1, 1), now=10.0)


def test_zero_settle_time_means_ready_at_once():
    assert SettleTracker(0).ready(VideoFile(None, "a.mp4", 1, 1), now=0.0)
