"""The index format, the query filters and the time ranges users type: pure logic, tables."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from edge_inference_worker.review.index import (
    IndexFormatError,
    decode_index,
    encode_index,
    hour_of,
    hours_between,
    index_key,
    summary_from_document,
)
from edge_inference_worker.review.query import EventQuery, scan_prefix
from edge_inference_worker.review.timerange import TimeFormatError, last_night, parse_instant, parse_night
from support.event_fleet import one_event, utc

NIGHT = utc("2026-11-26T22:15")


def summary(**changes):
    return replace(one_event("events", "lobby", "edge-1", NIGHT, "person", peak=0.8).summary, **changes)


def test_index_key_puts_the_hour_first_and_the_site_below_it():
    hour = utc("2026-11-26T22:00")
    key = index_key("events", hour, "shop", "lobby", "edge-1")
    assert key == "events/_index/v1/2026-11-26/22/shop/lobby/edge-1.json"
    assert index_key("", hour, "shop", "lobby", "edge-1") == "_index/v1/2026-11-26/22/shop/lobby/edge-1.json"


def test_an_event_is_indexed_under_the_utc_hour_of_its_start_and_not_at_all_without_one():
    assert hour_of(summary()) == utc("2026-11-26T22:00")
    assert hour_of(summary(start=None)) is None


def test_index_objects_are_deterministic_sorted_and_deduplicated():
    first = summary(id="b" * 20, start="2026-11-26T22:30:00.000Z")
    second = summary(id="a" * 20, start="2026-11-26T22:10:00.000Z")
    hour = utc("2026-11-26T22:00")
    one = encode_index(hour, "fleet", "lobby", "edge-1", [first, second, first])
    other = encode_index(hour, "fleet", "lobby", "edge-1", [second, first])
    assert one == other
    assert [event.id for event in decode_index(one, "k")] == ["a" * 20, "b" * 20]
    assert decode_index(one, "k") == [second, first]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "not JSON"),
        (json.dumps({"schemaVersion": 2, "events": []}).encode(), "schemaVersion 1"),
        (json.dumps({"schemaVersion": 1, "namespace": "n", "job": "j", "node": "x", "events": [{}]}).encode(), "'id'"),
    ],
)
def test_an_index_object_we_cannot_read_is_a_clear_error(body, message):
    with pytest.raises(IndexFormatError, match=message):
        decode_index(body, "events/_index/v1/2026-11-26/22/n/j/x.json")


def test_a_document_of_another_schema_version_is_refused():
    event = one_event("events", "lobby", "edge-1", NIGHT, "person", peak=0.8)
    document = json.loads(event.document) | {"schemaVersion": 2}
    with pytest.raises(IndexFormatError, match="schemaVersion 2"):
        summary_from_document(document, "k.json")


def test_hours_between_covers_every_hour_that_overlaps_the_range():
    hours = hours_between(utc("2026-11-26T18:30"), utc("2026-11-26T21:00"))
    assert hours == [utc("2026-11-26T18:00"), utc("2026-11-26T19:00"), utc("2026-11-26T20:00")]


@pytest.mark.parametrize(
    "query, matches",
    [
        (EventQuery(), True),
        (EventQuery(namespace="fleet", job="lobby", node="edge-1"), True),
        (EventQuery(job="garage"), False),
        (EventQuery(node="edge-2"), False),
        (EventQuery(classes=frozenset({"car", "person"})), True),
        (EventQuery(classes=frozenset({"car"})), False),
        (EventQuery(min_confidence=0.8), True),
        (EventQuery(min_confidence=0.81), False),
        (EventQuery(since=utc("2026-11-26T22:15"), until=utc("2026-11-26T22:16")), True),
        (EventQuery(since=utc("2026-11-26T22:00"), until=utc("2026-11-26T22:15")), False),  # until is exclusive
        (EventQuery(since=utc("2026-11-26T22:16")), False),
    ],
)
def test_query_filters(query, matches):
    assert query.matches(summary()) is matches


def test_a_time_range_leaves_out_events_without_a_wall_time():
    assert EventQuery().matches(summary(start=None))
    assert not EventQuery(since=utc("2000-01-01T00:00")).matches(summary(start=None))


@pytest.mark.parametrize(
    "query, prefix",
    [
        (EventQuery(), "events/"),
        (EventQuery(namespace="shop"), "events/shop/"),
        (EventQuery(namespace="shop", job="lobby", node="edge-1"), "events/shop/lobby/edge-1/"),
        (EventQuery(namespace="shop", node="edge-1"), "events/shop/"),  # a node without its job cannot narrow
        (EventQuery(job="lobby"), "events/"),
    ],
)
def test_the_scan_lists_the_narrowest_prefix_the_query_allows(query, prefix):
    assert scan_prefix("events", query) == prefix


NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12h", NOW - timedelta(hours=12)),
        ("90m", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-26T22:00Z", utc("2026-11-26T22:00")),
        ("2026-11-26T23:00+01:00", utc("2026-11-26T22:00")),
    ],
)
def test_times_users_type(text, expected):
    assert parse_instant(text, NOW) == expected


def test_a_time_without_a_zone_is_local_time():
    assert parse_instant("2026-11-26T22:00", NOW) == datetime(2026, 11, 26, 22, 0).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "26/11/2026", "12 hours"])
def test_a_time_we_cannot_read_says_what_is_accepted(text):
    with pytest.raises(TimeFormatError, match="ISO 8601"):
        parse_instant(text, NOW)


def test_last_night_is_the_last_night_that_has_ended():
    for now in (NOW, NOW.replace(hour=3), NOW.replace(hour=20)):
        start, end = last_night(now)
        assert end <= now.astimezone() and end - start == timedelta(hours=12)
        assert start.hour == 18 and end.hour == 6
        assert now.astimezone() - end < timedelta(days=1)


def test_a_night_by_date_starts_that_evening():
    start, end = parse_night("2026-11-26", NOW)
    assert start == datetime(2026, 11, 26, 18, 0).astimezone() and end == datetime(2026, 11, 27, 6, 0).astimezone()
    with pytest.raises(TimeFormatError, match="evening's date"):
        parse_night("last tuesday", NOW)
