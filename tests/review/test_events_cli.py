"""`edge-inference events` against a real S3 server holding a synthetic fleet's events and index."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from edge_inference_worker.cli import build_parser, main
from edge_inference_worker.review.commands import watch_events
from edge_inference_worker.review.query import EventQuery, find_events, has_index
from edge_inference_worker.review.store import BucketStore
from edge_inference_worker.review.timerange import night_of
from edge_inference_worker.sinks import MinioSink
from support.event_fleet import fleet_events, index_objects, one_event, utc
from support.waiting import wait_until

from .conftest import FLEET_START, PREFIX, upload_events

NIGHT = (utc("2026-11-26T18:00"), utc("2026-11-27T06:00"))
NIGHT_FLAGS = ["--since", "2026-11-26T18:00Z", "--until", "2026-11-27T06:00Z"]


def store(fleet, prefix: str = PREFIX) -> BucketStore:
    sink = MinioSink(fleet.s3.endpoint, fleet.s3.bucket, access_key=fleet.s3.access_key,
                     secret_key=fleet.s3.secret_key, secure=False)
    return BucketStore(sink, prefix)


def expected(fleet, query: EventQuery) -> list[str]:
    """The ids a query must return, from the generator's own records."""
    return sorted(event.summary.id for event in fleet.events if query.matches(event.summary))


def run(monkeypatch, capsys, fleet, *argv: str) -> tuple[int, str, str]:
    for name, value in fleet.env().items():
        monkeypatch.setenv(name, value)
    code = main(["events", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "query",
    [
        EventQuery(namespace="fleet", job="site-001", since=NIGHT[0], until=NIGHT[1]),
        EventQuery(since=NIGHT[0], until=NIGHT[1], classes=frozenset({"person"})),
        EventQuery(namespace="fleet", job="site-002", node="site-002-node-01", since=FLEET_START,
                   until=FLEET_START + timedelta(days=3), min_confidence=0.6),
        EventQuery(namespace="fleet", since=utc("2026-11-25T10:20"), until=utc("2026-11-25T10:40")),
    ],
)
def test_the_index_and_a_full_listing_give_the_same_answer(fleet, query):
    indexed, scanned = store(fleet), store(fleet)
    by_index = find_events(indexed, query, use_index=True)
    by_scan = find_events(scanned, query, use_index=False)
    assert by_index == by_scan
    assert sorted(event.id for event in by_index) == expected(fleet, query)
    assert indexed.counter.objects_read < scanned.counter.objects_read


def test_one_night_at_one_site_reads_one_object_per_node_and_hour(fleet):
    indexed = store(fleet)
    query = EventQuery(namespace="fleet", job="site-001", since=NIGHT[0], until=NIGHT[1])
    find_events(indexed, query)  # auto: the bucket has an index
    # 12 hours, 2 nodes: at most 24 index objects listed and read, one listing per hour.
    assert indexed.counter.list_requests == 1 + 12  # 1: is there an index at all
    assert indexed.counter.objects_fetched <= 24


def test_list_prints_a_table_json_lines_and_csv(monkeypatch, capsys, fleet):
    place = ["--namespace", "fleet", "--job", "site-001", *NIGHT_FLAGS, "--class", "person"]
    ids = expected(fleet, EventQuery(namespace="fleet", job="site-001", since=NIGHT[0], until=NIGHT[1],
                                      classes=frozenset({"person"})))
    assert ids
    code, out, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, *place, "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(row["id"] for row in rows) == ids
    assert all(row["class"] == "person" and row["site"] == "fleet/site-001" for row in rows)
    code, out, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, *place, "--format", "csv")
    assert code == 0 and sorted(row["id"] for row in csv.DictReader(io.StringIO(out))) == ids
    code, out, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, *place)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["start", "site", "node", "class", "peak", "frames", "id", "source"]
    assert sorted(line.split()[6] for line in lines[1:]) == ids


def test_min_confidence_and_scan_flags(monkeypatch, capsys, fleet):
    flags = ["--namespace", "fleet", *NIGHT_FLAGS, "--min-confidence", "0.9", "--format", "jsonl"]
    _, by_index, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, *flags)
    _, by_scan, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, *flags, "--scan")
    assert by_index == by_scan and by_index
    assert all(json.loads(line)["peak"] >= 0.9 for line in by_index.splitlines())


def test_night_flag_is_the_night_from_18_to_6_local_time(monkeypatch, capsys, fleet):
    since, until = night_of(utc("2026-11-26T00:00").date())
    ids = expected(fleet, EventQuery(since=since.astimezone(UTC), until=until.astimezone(UTC)))
    code, out, _ = run(monkeypatch, capsys, fleet, "list", fleet.source, "--night", "2026-11-26", "--format", "jsonl")
    assert code == 0 and sorted(json.loads(line)["id"] for line in out.splitlines()) == ids


def test_show_prints_the_document_and_saves_the_snapshot(monkeypatch, capsys, fleet, tmp_path):
    event = fleet.events[7]
    target = tmp_path / "snap.jpg"
    code, out, err = run(monkeypatch, capsys, fleet, "show", fleet.source, event.summary.id, "--snapshot", str(target))
    assert code == 0, err
    assert json.loads(out) == json.loads(event.document)
    assert target.read_bytes() == fleet.snapshots[event.summary.id]


def test_show_of_an_unknown_event_is_one_clear_line(monkeypatch, capsys, fleet):
    code, out, err = run(monkeypatch, capsys, fleet, "show", fleet.source, "0" * 20, "--namespace", "fleet")
    assert code == 1 and out == ""
    assert err.strip() == f"edge-inference events: no event {'0' * 20} under events/fleet/"


def test_the_report_is_one_self_contained_file(monkeypatch, capsys, fleet, tmp_path):
    target = tmp_path / "night.html"
    query = EventQuery(namespace="fleet", job="site-001", since=NIGHT[0], until=NIGHT[1])
    ids = expected(fleet, query)
    code, _, err = run(monkeypatch, capsys, fleet, "report", fleet.source, "--namespace", "fleet", "--job",
                       "site-001", *NIGHT_FLAGS, "-o", str(target))
    page = target.read_text()
    assert code == 0 and err.strip() == f"{len(ids)} events written to {target}"
    assert sorted(re.findall(r'class="card event event-ref" data-id="(\w+)"', page)) == ids
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s == "#" or s.startswith("data:image/jpeg;base64,") for s in sources)
    assert not re.search(r"https?://", page.replace(fleet.source, ""))  # no network, no server
    data = json.loads(re.search(r'id="events-data">(.*?)</script>', page, re.S).group(1))
    assert sorted(data) == ids and all(item["document"]["id"] == key for key, item in data.items())
    totals = re.search(r"<tfoot><tr><th>total</th>(.*?)</tr>", page).group(1)
    assert sum(int(n) for n in re.findall(r"<td>(\d+)</td>", totals)) == len(ids)
    assert len(re.findall(r'class="timeline-row"', page)) == 2  # one per node of the site


def test_reindex_backfills_an_index_identical_to_the_workers(monkeypatch, capsys, fleet):
    prefix = "backfill"
    events = list(fleet_events(40, 2, 2, FLEET_START, 1, prefix=prefix, seed=11))
    upload_events(fleet.s3, events, with_index=False)
    bare = store(fleet, prefix)
    assert not has_index(bare)
    source = f"s3://{fleet.s3.bucket}/{prefix}"
    code, out, _ = run(monkeypatch, capsys, fleet, "reindex", source)
    wanted = index_objects(prefix, events)
    assert code == 0 and out.strip() == f"{len(wanted)} index objects written"
    assert {key: fleet.s3.get(key) for key in fleet.s3.list_keys(f"{prefix}/_index/")} == wanted


def test_watch_prints_each_new_event_once(fleet):
    now = datetime.now(UTC)
    args = build_parser().parse_args(
        ["events", "watch", fleet.source, "--namespace", "fleet", "--class", "dog", "--interval", "0.1",
         "--since", (now - timedelta(minutes=1)).isoformat()]
    )
    out, stop, watched = io.StringIO(), threading.Event(), store(fleet)
    watcher = threading.Thread(target=watch_events, args=(watched, args, out, stop, lambda: datetime.now(UTC)))
    watcher.start()
    try:
        new = [one_event(PREFIX, "site-000", "site-000-node-00", now + timedelta(seconds=i), cls, 0.7, serial=900 + i)
               for i, cls in enumerate(["dog", "car", "dog"])]
        upload_events(fleet.s3, new)
        dogs = {event.summary.id for event in new if event.summary.cls == "dog"}
        wait_until(lambda: len(out.getvalue().splitlines()) >= 2, 20, "the watch to print the two dogs")
        looked = watched.counter.list_requests
        # Two more looks at the bucket, which must not print them again.
        wait_until(lambda: watched.counter.list_requests >= looked + 2 * 3, 20, "two more polls")
    finally:
        stop.set()
        watcher.join(10)
    printed = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
    assert sorted(printed) == sorted(dogs)  # not the dogs of the nights before, not the car, each once


@pytest.mark.parametrize(
    "argv, message",
    [
        (["list", "SOURCE", "--since", "yesterday"], "cannot read time 'yesterday'"),
        (["list", "SOURCE", "--since", "2026-11-27T00:00Z", "--until", "2026-11-26T00:00Z"], "the time range is empty"),
        (["list", "s3://Bad_Bucket/x"], "is not a valid bucket name"),
        (["list", "/nonexistent/events"], "events folder /nonexistent/events does not exist"),
        (["reindex", "SOURCE", "--node", "x"], None),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(monkeypatch, capsys, fleet, argv, message):
    argv = [fleet.source if part == "SOURCE" else part for part in argv]
    code, out, err = run(monkeypatch, capsys, fleet, *argv)
    if message is None:  # reindex of a node without its site: allowed, writes nothing for an unknown node
        assert code == 0 and out.strip() == "0 index objects written"
        return
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_a_missing_bucket_is_one_clear_line(monkeypatch, capsys, fleet):
    code, out, err = run(monkeypatch, capsys, fleet, "list", "s3://no-such-bucket/events")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "no-such-bucket" in err
