"""glibc malloc tuning: frame-sized buffers freed and allocated again stop faulting memory in."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from edge_inference_worker.malloc_tuning import tune_malloc

# A frame's worth of buffers (MB), allocated, touched and freed 50 times, in a fresh interpreter.
PATTERN = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from edge_inference_worker.malloc_tuning import tune_malloc
    tuned = tune_malloc({}) if sys.argv[1] == "tuned" else False
    sizes = [int(mb * 1e6) for mb in (0.7, 1.2, 4.9, 6.5, 3.3, 1.6, 0.8, 13.0, 0.3)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(50):
        buffers = [np.ones(size, np.uint8) for size in sizes]
        if i % 2:
            buffers.reverse()
        del buffers
    print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
    """
)


def _faults_per_round(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, check=True).stdout
    tuned, faults = out.split()
    return tuned, float(faults)


def test_tuned_malloc_keeps_freed_frame_buffers():
    plain_tuned, plain = _faults_per_round("plain")
    tuned, faults = _faults_per_round("tuned")
    assert (plain_tuned, tuned) == ("False", "True")
    # 50 MB of buffers a round: faulted in again every round by default, kept when tuned.
    assert plain > 2000
    assert faults < plain / 10


def test_settings_from_the_environment_win():
    assert tune_malloc({"MALLOC_TRIM_THRESHOLD_": "1000000"}) is False
    assert tune_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}) is False
