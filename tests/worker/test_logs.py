"""JSON logs: one object per line, with the structured fields."""

import json
import logging

from edge_inference_worker.logs import JsonFormatter


def test_log_lines_are_json_objects_with_fields():
    record = logging.LogRecord("edge_inference_worker.x", logging.WARNING, __file__, 1, "file %s", ("corrupt",), None)
    record.fields = {"file": "a.mp4"}
    record.event_key = "k/1"  # a plain `extra=` key, as other modules pass them
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "file corrupt" and line["level"] == "warning" and line["ts"].endswith("Z")
    assert (line["file"], line["event_key"], line["logger"]) == ("a.mp4", "k/1", "edge_inference_worker.x")
