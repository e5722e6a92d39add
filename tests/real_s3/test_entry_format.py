"""Pure logic of the outbox: the entry file format and the backoff schedule."""

import random

import pytest
from edge_inference_worker.backoff import backoff_delay
from edge_inference_worker.outbox import CorruptEntryError, decode_entry, encode_entry

KEY = "events/default/job/node-a/f0123/e0042"
METADATA = b'{"schema":"edgeinference.io/event/v1","class":"person"}'
SNAPSHOT = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


def test_entry_round_trips():
    entry = decode_entry(encode_entry(KEY, METADATA, SNAPSHOT, 1234.5))
    assert (entry.key_base, entry.metadata_json, entry.snapshot_jpeg) == (KEY, METADATA, SNAPSHOT)
    assert entry.created == 1234.5


def test_empty_parts_round_trip():
    entry = decode_entry(encode_entry(KEY, b"", b"", 0.0))
    assert (entry.metadata_json, entry.snapshot_jpeg) == (b"", b"")


@pytest.mark.parametrize("cut", [0, 1, 9, 14, 40, -33, -1])
def test_a_truncated_entry_is_detected(cut):
    data = encode_entry(KEY, METADATA, SNAPSHOT, 1.0)
    with pytest.raises(CorruptEntryError):
        decode_entry(data[:cut])


@pytest.mark.parametrize("position", [0, 12, 60, 200, -40, -1])
def test_a_flipped_byte_is_detected(position):
    data = bytearray(encode_entry(KEY, METADATA, SNAPSHOT, 1.0))
    data[position] ^= 0x01
    with pytest.raises(CorruptEntryError):
        decode_entry(bytes(data))


def test_trailing_garbage_is_detected():
    with pytest.raises(CorruptEntryError):
        decode_entry(encode_entry(KEY, METADATA, SNAPSHOT, 1.0) + b"x")


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (7, 30.0, 60.0), (50, 30.0, 60.0), (10_000, 30.0, 60.0)],
)
def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(attempt, low, high):
    rng = random.Random(7)
    delays = [backoff_delay(attempt, 0.5, 60.0, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jitter: retries of many nodes do not line up
