"""Custom detector weights from S3: downloaded once, verified by sha256, cached on the node.

The cache is keyed by the expected sha256 (`<cache_dir>/<sha256>/<file name>`), so a pod that
restarts without network finds its weights there. A cached file is re-hashed before use; a
download is hashed while it streams into a temporary file and only renamed into place when it
matches, so the cache never holds unverified weights. An OpenVINO export arrives as a zip: the
verified zip is kept and unpacked beside it (`<sha256>/<name without .zip>/`), which is the
folder ultralytics loads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from edge_inference_api.models import S3ModelSource, S3Sink

from edge_inference_worker.checksums import CHUNK_BYTES, sha256_of
from edge_inference_worker.durable import fsync_directory
from edge_inference_worker.sinks import MinioSink, SinkError

log = logging.getLogger(__name__)


class ModelFetchError(Exception):
    """The weights could not be obtained (no valid cache, and S3 failed or has no such object)."""


class ModelChecksumError(ModelFetchError):
    """The weights' sha256 differs from the expected one; nothing was cached."""


def cached_download_path(source: S3ModelSource, cache_dir: Path) -> Path:
    """Where the verified object of `source` is kept: `<cache_dir>/<sha256>/<file name of the key>`."""
    name = PurePosixPath(source.key).name
    if name in ("", ".", ".."):
        raise ModelFetchError(f"model key {source.key!r} has no file name")
    return Path(cache_dir) / source.sha256 / name


def model_path_for(download: Path) -> Path:
    """What the detector loads: the file itself, or the unpacked folder of an OpenVINO zip."""
    return download.with_suffix("") if download.suffix == ".zip" else download


def fetch_model(
    source: S3ModelSource,
    endpoint: S3Sink,
    access_key: str | None,
    secret_key: str | None,
    cache_dir: Path,
) -> Path:
    """Path of verified weights for `source`: from the cache if valid, else downloaded from S3.

    Raises `ModelChecksumError` if the object's sha256 is not `source.sha256` (nothing cached),
    `ModelFetchError` if there is no valid cache and S3 cannot deliver the object.
    """
    download = cached_download_path(source, cache_dir)
    if _cached(source, download):
        log.info("model: using cached weights (sha256 verified, no network needed)",
                 extra={"fields": {"key": source.key, "path": str(download)}})
        return model_path_for(download)
    where = f"s3://{source.bucket}/{source.key} on {endpoint.endpoint}"
    sink = MinioSink(
        endpoint.endpoint,
        source.bucket,
        access_key=access_key,
        secret_key=secret_key,
        secure=endpoint.secure,
        region=endpoint.region,
        timeout=120.0,
    )
    download.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=download.parent, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            actual = _download(sink, source, file, where)
            file.flush()
            os.fsync(file.fileno())
        if actual != source.sha256:
            raise ModelChecksumError(
                f"model {where} has sha256 {actual}, expected {source.sha256}: refused, nothing cached"
            )
        if download.suffix == ".zip":
            _unpack(Path(tmp_name), model_path_for(download))
        os.replace(tmp_name, download)
        fsync_directory(download.parent)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    log.info("model: downloaded, sha256 verified, cached",
             extra={"fields": {"key": source.key, "from": where, "path": str(download)}})
    return model_path_for(download)


def _download(sink: MinioSink, source: S3ModelSource, file: BinaryIO, where: str) -> str:
    digest = hashlib.sha256()
    try:
        for chunk in sink.object_chunks(source.key, CHUNK_BYTES):
            digest.update(chunk)
            file.write(chunk)
    except SinkError as error:
        raise ModelFetchError(f"cannot fetch model ({error.kind}) and no verified copy is cached: {error}") from error
    except Exception as error:  # connection lost mid-body, disk full: nothing is cached
        raise ModelFetchError(f"download of model {where} broke off: {error}") from error
    return digest.hexdigest()


def _cached(source: S3ModelSource, download: Path) -> bool:
    if not download.is_file():
        return False
    actual = sha256_of(download)
    if actual != source.sha256:
        log.error("model cache is damaged; fetching again",
                  extra={"fields": {"path": str(download), "sha256": actual, "expected": source.sha256}})
        download.unlink()
        return False
    # A zip is renamed into place only after it was unpacked, so the folder exists; check anyway.
    return model_path_for(download).exists()


def _unpack(archive: Path, folder: Path) -> None:
    """Unpack a verified zip into `folder` atomically, refusing members that escape it."""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(archive) as zipped:
            _refuse_escapes(zipped, staging)
            zipped.extractall(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except zipfile.BadZipFile as error:
        raise ModelFetchError(f"model archive is not a valid zip: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_escapes(zipped: zipfile.ZipFile, staging: Path) -> None:
    """Raise `ModelFetchError` for a member that would land outside `staging` (`../`, an absolute path)."""
    for member in zipped.namelist():
        destination = (staging / member).resolve()
        if not destination.is_relative_to(staging.resolve()):
            raise ModelFetchError(f"model archive member {member!r} escapes the archive folder")
