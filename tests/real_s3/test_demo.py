"""`make demo` on a machine without Docker/kind: this machine as one edge node, events in a local S3."""

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_embedded_demo_lists_events_bytes_and_says_no_cluster_was_used(tmp_path):
    run = subprocess.run(
        [sys.executable, str(DEMO), "--embedded", "--cameras", "1", "--seconds", "13", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    output = run.stdout
    assert run.returncode == 0, output + run.stderr
    listed = re.search(r"\[demo\] (\d+) event\(s\) in s3://events/demo/:", output)
    assert listed and int(listed.group(1)) >= 2, output  # the clip has a person, then a car
    event_lines = [line for line in output.splitlines() if line.startswith("  ")]
    assert any(line.split()[0] == "person" for line in event_lines), output
    assert any(line.split()[0] == "car" for line in event_lines), output
    sizes = re.search(r"video scanned: ([\d,]+) bytes; uploaded: ([\d,]+) bytes", output)
    scanned, uploaded = (int(n.replace(",", "")) for n in sizes.groups())
    assert 0 < uploaded < scanned
    notices = [line for line in output.splitlines() if line.startswith("No cluster was used")]
    assert len(notices) == 1 and "Docker" in notices[0] and "kind" in notices[0]
    assert (tmp_path / "worker.log").is_file()
