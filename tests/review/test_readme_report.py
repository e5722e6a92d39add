"""The README's two commands, run as written, give last night's report of one site."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_inference_worker.review.timerange import last_night
from support.event_fleet import one_event
from support.s3server import SeaweedS3Server

from .conftest import upload_events

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    section = README.read_text().split("## What was seen last night at one site", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_two_commands_from_the_readme_write_last_nights_report(tmp_path):
    commands = readme_commands()
    assert len(commands) == 2
    start, end = last_night(datetime.now(UTC))
    with SeaweedS3Server(tmp_path / "s3", bucket="edge-events") as s3:
        night = [
            one_event("events", "lobby-cameras", "edge-1", (start + timedelta(hours=h)).astimezone(UTC), cls, 0.8,
                      serial=h, namespace="default")
            for h, cls in ((1, "person"), (5, "car"), (11, "person"))
        ]
        other_site = one_event("events", "garage", "edge-2", (start + timedelta(hours=2)).astimezone(UTC), "car", 0.8,
                               serial=20, namespace="default")
        day_before = one_event("events", "lobby-cameras", "edge-1", (start - timedelta(hours=3)).astimezone(UTC),
                               "person", 0.8, serial=21, namespace="default")
        upload_events(s3, [*night, other_site, day_before])
        export = (commands[0].replace("http://localhost:9000", s3.url)
                  .replace("EDGE_INFERENCE_S3_ACCESS_KEY=...", f"EDGE_INFERENCE_S3_ACCESS_KEY={s3.access_key}")
                  .replace("EDGE_INFERENCE_S3_SECRET_KEY=...", f"EDGE_INFERENCE_S3_SECRET_KEY={s3.secret_key}"))
        assert "..." not in export
        # The console script of the environment running the tests (installed by `make setup`).
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        result = subprocess.run(["bash", "-c", f"{export}\n{commands[1]}"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "last-night.html").read_text()
    shown = set(re.findall(r'class="card event event-ref" data-id="(\w+)"', page))
    assert shown == {event.summary.id for event in night}
