"""The pod's termination message: why the worker exited, where Kubernetes shows it.

Kubernetes reads the file at the container's `terminationMessagePath` (`/dev/termination-log` by
default) when the container exits and puts it in the pod's status, where the operator and
`kubectl describe` show it. Outside a pod there is no such file and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

ENV_TERMINATION_LOG = "EDGE_INFERENCE_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# The kubelet keeps at most this many bytes of the message.
TERMINATION_MESSAGE_BYTES = 4096


def write_termination_message(environ: Mapping[str, str], message: str) -> None:
    """Write `message` where the kubelet reads it: the configured path, or the default where it exists.

    Never creates the default path (on a laptop, as root, that would litter /dev); a failure to
    write is ignored, as the same reason is in the log.
    """
    configured = environ.get(ENV_TERMINATION_LOG)
    path = Path(configured or DEFAULT_TERMINATION_LOG)
    if not configured and not path.exists():
        return
    try:
        path.write_bytes(message.encode("utf-8", "backslashreplace")[:TERMINATION_MESSAGE_BYTES])
    except OSError:
        pass
