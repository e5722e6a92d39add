"""glibc malloc settings for a frame pipeline: keep freed frame-sized buffers for the next frame.

Every frame allocates and frees a few buffers of 0.5-13 MB (the decoded picture, the letterboxed
tensor, activations). With glibc's defaults such buffers are mmapped or trimmed off the heap when
freed, so the next frame faults the same memory in again, zero-filled, at a cost in frame rate
(docs/benchmarks.md, "Overhead", for the faults and the fps measured). Fixing both thresholds
keeps up to 64 MB of freed memory in the process instead.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's upper limit on 64-bit: anything smaller comes from the heap
TRIM_THRESHOLD_BYTES = 64 << 20  # free memory kept at the top of the heap before it is returned
# A user (or the image) that tunes malloc through the environment keeps those settings.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def tune_malloc(environ: Mapping[str, str]) -> bool:
    """Set the thresholds for this process; False where that does not apply (not glibc, or set by the user)."""
    if any(name in environ for name in USER_SETTINGS) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc's mallopt takes these parameters
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
