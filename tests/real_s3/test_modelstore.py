"""Custom weights from S3: verified by sha256, cached by it, usable offline."""

import hashlib
import io
import zipfile

import pytest
from edge_inference_api.models import S3ModelSource
from edge_inference_worker.modelstore import ModelChecksumError, ModelFetchError, fetch_model

WEIGHTS = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB standing in for a .pt file
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS).hexdigest()


def upload(s3_server, key: str, data: bytes) -> None:
    s3_server.client().put_object(s3_server.bucket, key, io.BytesIO(data), len(data))


def fetch(s3_server, cache_dir, key="models/custom.pt", sha256=WEIGHTS_SHA256):
    source = S3ModelSource(bucket=s3_server.bucket, key=key, sha256=sha256)
    return fetch_model(source, s3_server.s3_sink(), s3_server.access_key, s3_server.secret_key, cache_dir)


def cached_files(cache_dir):
    return sorted(p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*") if p.is_file())


def test_good_weights_are_cached_by_sha256_and_reused_offline(s3_server, tmp_path):
    upload(s3_server, "models/custom.pt", WEIGHTS)
    path = fetch(s3_server, tmp_path / "cache")
    assert path == tmp_path / "cache" / WEIGHTS_SHA256 / "custom.pt"
    assert path.read_bytes() == WEIGHTS
    assert cached_files(tmp_path / "cache") == [f"{WEIGHTS_SHA256}/custom.pt"]  # no temporary files

    s3_server.stop()  # the pod restarts without network
    assert fetch(s3_server, tmp_path / "cache") == path


def test_a_wrong_sha256_refuses_the_weights_and_caches_nothing(s3_server, tmp_path):
    upload(s3_server, "models/custom.pt", WEIGHTS)
    wrong = hashlib.sha256(b"other weights").hexdigest()
    with pytest.raises(ModelChecksumError, match=f"has sha256 {WEIGHTS_SHA256}, expected {wrong}"):
        fetch(s3_server, tmp_path / "cache", sha256=wrong)
    assert cached_files(tmp_path / "cache") == []


def test_no_cache_and_no_server_is_a_clear_error(s3_server, tmp_path):
    s3_server.stop()
    with pytest.raises(ModelFetchError, match="s3_unreachable.*no verified copy is cached"):
        fetch(s3_server, tmp_path / "cache")
    assert cached_files(tmp_path / "cache") == []


def test_a_missing_object_is_a_clear_error(s3_server, tmp_path):
    with pytest.raises(ModelFetchError, match="s3_error.*NoSuchKey"):
        fetch(s3_server, tmp_path / "cache", key="models/absent.pt")


def test_a_damaged_cache_is_fetched_again(s3_server, tmp_path):
    upload(s3_server, "models/custom.pt", WEIGHTS)
    path = fetch(s3_server, tmp_path / "cache")
    path.write_bytes(b"bit rot")
    assert fetch(s3_server, tmp_path / "cache").read_bytes() == WEIGHTS
    path.write_bytes(b"bit rot")
    s3_server.stop()
    with pytest.raises(ModelFetchError):  # damaged and offline: refuse rather than load bad weights
        fetch(s3_server, tmp_path / "cache")
    assert not path.exists()


def test_an_openvino_zip_is_unpacked_into_the_folder_ultralytics_loads(s3_server, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("model.xml", "<net/>")
        zipped.writestr("model.bin", WEIGHTS[:1000])
        zipped.writestr("metadata.yaml", "names: {0: person}\n")
    data = archive.getvalue()
    upload(s3_server, "models/custom_openvino_model.zip", data)
    path = fetch(
        s3_server, tmp_path / "cache", key="models/custom_openvino_model.zip", sha256=hashlib.sha256(data).hexdigest()
    )
    assert path.name == "custom_openvino_model" and path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["metadata.yaml", "model.bin", "model.xml"]
    s3_server.stop()
    assert (
        fetch(
            s3_server,
            tmp_path / "cache",
            key="models/custom_openvino_model.zip",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        == path
    )


def test_a_zip_escaping_its_folder_is_refused(s3_server, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../evil.py", "print('pwned')")
    data = archive.getvalue()
    upload(s3_server, "models/evil.zip", data)
    with pytest.raises(ModelFetchError, match="escapes"):
        fetch(s3_server, tmp_path / "cache", key="models/evil.zip", sha256=hashlib.sha256(data).hexdigest())
    assert not list(tmp_path.rglob("evil.py"))
    assert cached_files(tmp_path / "cache") == []
