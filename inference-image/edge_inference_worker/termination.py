"""The pod's termination message: Kubernetes shows the file's text as the container's last state."""

from __future__ import annotations

from pathlib import Path

# Kubernetes' default terminationMessagePath; outside a pod it does not exist and nothing is written.
TERMINATION_LOG = Path("/dev/termination-log")
# The kubelet keeps at most 4096 bytes of it.
MAX_BYTES = 4096


def write_termination_message(message: str, path: Path = TERMINATION_LOG) -> bool:
    """Write `message` where the kubelet reads it, if this runs in a pod; whether it was written."""
    if not path.exists():
        return False
    try:
        path.write_bytes(message.encode("utf-8", "replace")[:MAX_BYTES])
    except OSError:  # a read-only or odd mount: the log line on stderr still says it
        return False
    return True
