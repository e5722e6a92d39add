"""Where the operator's memory goes at fleet size: its watch cache filled with a fleet's objects.

Each store of `edge_inference_operator.cache` is filled as its watch fills it (one JSON decode per
object, so no strings are shared between objects) from real objects of a 1,000-node run of
bench/operator_scale.py (bench/data/cluster_objects/, read back with kubectl), renamed per copy.
Printed per kind: the count, the bytes tracemalloc attributes to the store (what the cache keeps),
and the bytes per object; and the same for the whole decoded object (what keeping it whole would cost).
The InferenceJob sample is a fleet-wide job (50 nodes listed in nodeProgress); every copy lists them.
Then the status the reconciler remembers per job (the one it last wrote): parsed, and as JSON.

    python bench/operator_memory.py --nodes 5000 --pods 15000 --daemonsets 2006 --jobs 1002
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_inference_api.models import InferenceJobStatus
from edge_inference_operator import cache

SAMPLES = Path(__file__).resolve().parent / "data" / "cluster_objects"


def copies(sample: str, count: int) -> list[str]:
    """`count` JSON texts of the sample object, each with a name and uid of its own."""
    text = (SAMPLES / f"{sample}.json").read_text()
    body = json.loads(text)
    name, uid = body["metadata"]["name"], body["metadata"]["uid"]
    return [text.replace(name, f"{name}-{i:05d}").replace(uid, f"{uid[:-6]}{i:06d}") for i in range(count)]


def measured(fill: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after `fill()` (what it returns keeps alive), and what it returned."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before, kept


def fill_store(resource: cache.Resource, texts: list[str]) -> cache.Store:
    store = cache.Store(resource)
    for text in texts:
        store.put(json.loads(text))
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=15000)
    parser.add_argument("--daemonsets", type=int, default=2006)
    parser.add_argument("--jobs", type=int, default=1002)
    args = parser.parse_args()
    kinds = [
        ("node", cache.NODES, args.nodes),
        ("pod", cache.PODS, args.pods),
        ("daemonset", cache.DAEMONSETS, args.daemonsets),
        ("inferencejob", cache.INFERENCE_JOBS, args.jobs),
    ]
    tracemalloc.start()
    results, total_kept = {}, 0
    for sample, resource, count in kinds:
        texts = copies(sample, count)
        kept_bytes, store = measured(lambda: fill_store(resource, texts))  # noqa: B023 - called at once
        whole_bytes, _ = measured(lambda: [json.loads(t) for t in texts])  # noqa: B023
        total_kept += kept_bytes
        results[sample] = {
            "count": count,
            "kept_mb": round(kept_bytes / 2**20, 1),
            "kept_bytes_each": kept_bytes // count,
            "whole_bytes_each": whole_bytes // count,
        }
        del store
    results["cache_total_mb"] = round(total_kept / 2**20, 1)
    status = json.dumps(json.loads((SAMPLES / "inferencejob.json").read_text())["status"])
    parsed, _ = measured(lambda: [InferenceJobStatus.model_validate_json(status) for _ in range(args.jobs)])
    as_json, _ = measured(
        lambda: [InferenceJobStatus.model_validate_json(status).model_dump_json(by_alias=True).encode()
                 for _ in range(args.jobs)]  # fmt: skip
    )
    results["written_status_bytes_each"] = {"parsed": parsed // args.jobs, "json": as_json // args.jobs}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
