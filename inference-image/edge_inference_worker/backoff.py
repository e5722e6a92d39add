"""The one back-off of the worker's retry loops (the outbox's uploads, writes to the node's disk)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of min(cap, base * 2**attempt).

    The jitter keeps workers that failed together (an S3 outage, a shared disk) from retrying in step.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 62)))
    return ceiling * rng.uniform(0.5, 1.0)
