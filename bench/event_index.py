"""The event index against listing: objects read to answer "one night at one site", and the same answer.

A synthetic fleet (default 100,000 events on 200 nodes: 20 sites of 10 nodes, over 7 days) is uploaded to a
real S3 server on loopback: each event's JSON document (the worker's own `event_document`) and the index
objects the workers write (one per job, node and UTC hour). Then one query, one night (18:00-06:00 UTC) at one
site, is answered three ways, each through its own counting store:

- the index: one listing per hour of the night under the site, one index object per node that saw something;
- a full listing: every key under the prefix listed, every event document read (keys carry no time);
- a site listing: the keys under `<prefix>/<namespace>/<job>/` listed and every document there read (the best
  one can do without the index, since keys do carry the site).

It prints the objects each read (keys listed + objects fetched), the ratios, and whether the three answers are
identical. Snapshots are not uploaded: a full listing would list one JPEG per document as well, so the ratios
printed are the lower bound.

    .venv/bin/python bench/event_index.py                 # 100,000 events, 200 nodes
    .venv/bin/python bench/event_index.py --events 10000  # a quicker look
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from common import machine, s3_server
from edge_inference_worker.review.query import EventQuery, find_events, scanned_events
from edge_inference_worker.review.store import BucketStore
from edge_inference_worker.sinks import MinioSink
from support.event_fleet import NAMESPACE, fleet_events, index_objects, site_name, utc

PREFIX = "events"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--nodes-per-site", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--upload-threads", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="keep the S3 server's data here")
    return parser.parse_args()


def upload(s3, objects: dict[str, bytes], threads: int) -> None:
    client = s3.client()

    def put(item: tuple[str, bytes]) -> None:
        key, body = item
        client.put_object(s3.bucket, key, io.BytesIO(body), len(body), content_type="application/json")

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, objects.items(), chunksize=256):
            pass


def counting_store(s3) -> BucketStore:
    sink = MinioSink(s3.endpoint, s3.bucket, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    return BucketStore(sink, PREFIX)


def answer(name: str, s3, run) -> tuple[list, BucketStore, float]:
    store = counting_store(s3)
    started = time.perf_counter()
    events = run(store)
    seconds = time.perf_counter() - started
    counter = store.counter
    print(
        f"{name:13s} {len(events):5d} events  {counter.list_requests:6d} listings  {counter.keys_listed:7d} keys listed"
        f"  {counter.objects_fetched:7d} fetched  = {counter.objects_read:7d} objects read  {seconds:7.1f} s",
        flush=True,
    )
    return events, store, seconds


def main() -> int:
    args = parse_args()
    print(machine(), flush=True)
    start = utc("2026-11-20T00:00")
    events = list(fleet_events(args.events, args.sites, args.nodes_per_site, start, args.days, prefix=PREFIX))
    documents = {f"{event.key}.json": event.document for event in events}
    index = index_objects(PREFIX, events)
    nodes = len({event.summary.node for event in events})
    print(f"fleet: {len(events)} events on {nodes} nodes ({args.sites} sites), {args.days:g} days; "
          f"{len(documents)} documents + {len(index)} index objects", flush=True)
    night = EventQuery(namespace=NAMESPACE, job=site_name(1), since=utc("2026-11-23T18:00"),
                       until=utc("2026-11-24T06:00"))
    with tempfile.TemporaryDirectory() as tmp, s3_server(args.keep or Path(tmp)) as s3:
        started = time.perf_counter()
        upload(s3, {**documents, **index}, args.upload_threads)
        print(f"uploaded in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"query: one night ({night.since:%Y-%m-%d %H:%M} to {night.until:%H:%M} UTC) at {NAMESPACE}/{night.job}")
        by_index, indexed, _ = answer("index", s3, lambda store: find_events(store, night, use_index=True))
        by_site, site, _ = answer("site listing", s3, lambda store: find_events(store, night, use_index=False))
        everywhere = replace(night, namespace=None, job=None)
        by_full, full, _ = answer(
            "full listing", s3,
            lambda store: sorted(
                (event for event in scanned_events(store, everywhere) if night.matches(event)),
                key=lambda event: (event.start or "", event.node, event.id),
            ),
        )
    same = by_index == by_site == by_full
    truth = sorted(event.summary.id for event in events if night.matches(event.summary))
    correct = sorted(event.id for event in by_index) == truth
    full_ratio = full.counter.objects_read / indexed.counter.objects_read
    site_ratio = site.counter.objects_read / indexed.counter.objects_read
    verdict = "met" if full_ratio >= 100 else "NOT met"
    print(f"objects read, full listing / index: {full_ratio:.0f}x  (goal >= 100x: {verdict})")
    print(f"objects read, site listing / index: {site_ratio:.0f}x")
    print(f"same answer three ways: {same}; matches the generator's truth ({len(truth)} events): {correct}")
    return 0 if same and correct and full_ratio >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
