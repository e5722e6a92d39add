"""JSON logs: one object per line on stderr, with the structured fields passed as `extra={"fields": ...}`.

The one logging style of the worker: a message in words, the values in fields (never %-arguments).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed as `extra=` and becomes a field too.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "fields"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", **fields}`; an exception becomes an `error` field.

    Fields come from `extra={"fields": {...}}` (our modules) or any other `extra=` key.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_json_logging(level: int = logging.INFO) -> None:
    """Route every logger through one JSON handler on stderr (ultralytics' too, once it is imported)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def route_ultralytics_logs() -> None:
    """ultralytics installs its own plain-text handler when imported: make it speak JSON like everything else.

    Called by the code that imports ultralytics (the torch detector, the export), so that the
    torch-free worker never imports it.
    """
    import ultralytics  # noqa: F401  (installs the handler replaced below)

    logger = logging.getLogger("ultralytics")
    logger.handlers[:] = []
    logger.propagate = True
    logger.setLevel(logging.WARNING)
