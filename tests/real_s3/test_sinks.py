"""The sinks against a real S3 server and a real folder."""

import os

import pytest
from edge_inference_api.models import DirectorySink, S3Sink
from edge_inference_worker.sinks import (
    KIND_UNREACHABLE,
    BucketMissingError,
    FolderSink,
    MinioSink,
    SinkError,
    check_key,
    sink_from_config,
)


def test_minio_sink_stores_objects_with_content_type(s3_server):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    sink.check()
    sink.put_object("events/ns/job/node/f/e.json", b'{"a":1}', "application/json")
    stat = s3_server.client().stat_object(s3_server.bucket, "events/ns/job/node/f/e.json")
    assert stat.content_type == "application/json"
    assert s3_server.get("events/ns/job/node/f/e.json") == b'{"a":1}'


def test_a_missing_bucket_is_a_clear_error_and_is_not_created(s3_server):
    sink = MinioSink(
        s3_server.endpoint,
        "no-such-bucket",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    with pytest.raises(BucketMissingError, match="'no-such-bucket' does not exist"):
        sink.check()
    with pytest.raises(BucketMissingError, match="bucket does not exist"):
        sink.put_object("k.json", b"{}", "application/json")
    assert not s3_server.client().bucket_exists("no-such-bucket")


def test_wrong_credentials_are_an_s3_error(s3_server):
    sink = MinioSink(s3_server.endpoint, s3_server.bucket, access_key="nobody", secret_key="wrong-secret", secure=False)
    with pytest.raises(SinkError) as raised:
        sink.put_object("k.json", b"{}", "application/json")
    assert raised.value.kind == "s3_error"
    assert s3_server.list_keys() == []


def test_a_stopped_server_is_unreachable(s3_server):
    sink = sink_from_config(s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key)
    s3_server.stop()
    with pytest.raises(SinkError) as raised:
        sink.put_object("k.json", b"{}", "application/json")
    assert raised.value.kind == KIND_UNREACHABLE


def test_directory_sink_writes_atomically_and_overwrites(tmp_path):
    sink = sink_from_config(DirectorySink(path=str(tmp_path / "events")), None, None)
    sink.check()
    sink.put_object("ns/job/node/f/e.jpg", b"first", "image/jpeg")
    sink.put_object("ns/job/node/f/e.jpg", b"second", "image/jpeg")
    folder = tmp_path / "events/ns/job/node/f"
    assert os.listdir(folder) == ["e.jpg"]  # no temporary files left behind
    assert (folder / "e.jpg").read_bytes() == b"second"


def test_a_partial_file_left_by_a_crash_is_consumed_when_the_key_is_retried(tmp_path):
    folder = tmp_path / "ns/job/node/f"
    folder.mkdir(parents=True)
    (folder / ".e.jpg.part").write_bytes(b"half a jp")  # what a SIGKILL mid-write leaves
    FolderSink(tmp_path).put_object("ns/job/node/f/e.jpg", b"whole jpeg", "image/jpeg")
    assert os.listdir(folder) == ["e.jpg"]
    assert (folder / "e.jpg").read_bytes() == b"whole jpeg"


@pytest.mark.parametrize("key", ["", "/abs/key", "a/../../etc/passwd", "a//b", "./a", "a/\x00"])
def test_keys_that_could_escape_are_refused(tmp_path, key):
    with pytest.raises(ValueError, match="invalid object key"):
        check_key(key)
    with pytest.raises(ValueError):
        FolderSink(tmp_path).put_object(key, b"x", "text/plain")
    assert list(tmp_path.iterdir()) == []


def test_s3_config_builds_a_minio_sink():
    sink = sink_from_config(S3Sink(endpoint="minio.example:9000", bucket="events", secure=True), "a", "b")
    assert isinstance(sink, MinioSink)
    assert repr(sink) == "MinioSink(https://minio.example:9000/events)"
