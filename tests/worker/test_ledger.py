"""The progress ledger survives restarts and never holds a half-written entry."""

import os

import pytest
from edge_inference_worker.ledger import FINISHED, PARTIAL, Ledger


def test_entries_survive_a_restart(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.checkpoint("f1", "a.mp4", 10, resume_index=40, fps=2.0)
    ledger.finish("f2", "b.mp4", 20, "corrupt")
    again = Ledger(tmp_path)
    assert again.get("f1").state == PARTIAL and again.get("f1").start_index(2.0) == 40
    assert again.get("f2").state == FINISHED and again.get("f2").outcome == "corrupt"
    assert again.get("f3") is None


def test_resume_index_follows_a_changed_analysis_rate(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.checkpoint("f1", "a.mp4", 10, resume_index=40, fps=2.0)
    assert ledger.get("f1").start_index(4.0) == 80
    assert ledger.get("f1").start_index(1.0) == 20


def test_a_garbage_entry_is_ignored_not_fatal(tmp_path):
    (tmp_path / "f1.json").write_text("{half an entr")
    (tmp_path / "f2.json.tmp").write_text("{}")  # an interrupted write is never read
    assert Ledger(tmp_path).get("f1") is None


def test_a_full_disk_raises_and_keeps_the_previous_entry(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.checkpoint("f1", "a.mp4", 10, resume_index=20, fps=2.0)
    # The temp file is where the next write goes; pointing it at /dev/full gives a real ENOSPC.
    (tmp_path / "f1.json.tmp").symlink_to("/dev/full")
    with pytest.raises(OSError) as failure:
        ledger.checkpoint("f1", "a.mp4", 10, resume_index=60, fps=2.0)
    assert failure.value.errno == 28
    assert Ledger(tmp_path).get("f1").resume_index == 20
    os.unlink(tmp_path / "f1.json.tmp")
    ledger.checkpoint("f1", "a.mp4", 10, resume_index=60, fps=2.0)
    assert Ledger(tmp_path).get("f1").resume_index == 60
