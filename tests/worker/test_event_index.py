"""The worker writes the event index through its outbox: the objects a backfill would write, byte for byte."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from edge_inference_worker.review.index import encode_index, group_by_index_key, parse_time, summary_from_document
from edge_inference_worker.review.query import EventQuery, find_events
from edge_inference_worker.review.store import BucketStore, FolderStore
from edge_inference_worker.sinks import MinioSink
from support.worker_harness import detect_args, event_documents, run_worker


def expected_index(prefix: str, documents: dict[str, dict]) -> dict[str, bytes]:
    """What `events reindex` would write for these documents (keys without .json)."""
    summaries = [summary_from_document(doc, f"{key}.json") for key, doc in documents.items()]
    return {
        key: encode_index(hour, group[0].namespace, group[0].job, group[0].node, group)
        for key, (hour, group) in group_by_index_key(prefix, summaries).items()
    }


def whole_span(documents: dict[str, dict]) -> EventQuery:
    starts = [parse_time(doc["wallTime"]["start"]) for doc in documents.values()]
    return EventQuery(since=min(starts), until=max(starts) + timedelta(seconds=1))


def test_a_folder_run_writes_the_index_beside_the_events(directory_run):
    base, _, result = directory_run
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "events"
    documents = event_documents(out)
    assert documents
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "_index").rglob("*.json")}
    assert written == expected_index("", {f"{key}": doc for key, doc in documents.items()})
    records = [json.loads(p.read_text()) for p in (base / "state" / "index").glob("*.json")]
    assert records and not any(record["behind"] for record in records)  # every hour reached the outbox
    store = FolderStore(out)
    assert find_events(store, whole_span(documents), use_index=True) == find_events(
        FolderStore(out), whole_span(documents), use_index=False
    )
    assert len(find_events(store, whole_span(documents), use_index=True)) == len(documents)


def test_an_s3_run_writes_the_index_through_the_outbox(short_clip, worker_env, s3_server_module, tmp_path: Path):
    s3 = s3_server_module
    args = detect_args(short_clip.path.parent.parent, f"s3://{s3.bucket}/indexed", tmp_path / "state",
                       "--s3-endpoint", s3.url)
    result = run_worker(args, {**worker_env, **s3.credentials_env()})
    assert result.returncode == 0, result.stderr[-3000:]
    documents = {
        key[: -len(".json")]: json.loads(s3.get(key))
        for key in s3.list_keys("indexed/ns/") if key.endswith(".json")
    }
    assert documents
    written = {key: s3.get(key) for key in s3.list_keys("indexed/_index/")}
    assert written == expected_index("indexed", documents)
    sink = MinioSink(s3.endpoint, s3.bucket, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    by_index = find_events(BucketStore(sink, "indexed"), whole_span(documents), use_index=True)
    assert sorted(event.id for event in by_index) == sorted(doc["id"] for doc in documents.values())
    assert by_index == find_events(BucketStore(sink, "indexed"), whole_span(documents), use_index=False)
