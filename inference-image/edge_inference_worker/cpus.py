"""How many CPUs this process may really use (affinity and the container's CPU quota)."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """CPUs in our affinity mask, capped by a cgroup v2 quota (a pod's CPU limit), at least 1.

    Thread pools sized by the host's core count oversubscribe a pod limited to a few CPUs.
    """
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)
