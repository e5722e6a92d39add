"""The operator's start-up over a fleet's worth of worker pods: seconds from its start to its first reconcile,
and with --compare, the same for the operator at another git revision, side by side on one fleet.

  python bench/operator_startup.py --nodes 5000 --pods 10000 --compare aa28811

On the real control plane with kwok nodes (tests/support/controlplane.py), as bench/operator_scale.py builds
it: N nodes in sites of 5 and the fleet's Continuous jobs (one per site, two fleet-wide). The P worker pods
are created directly from a worker pod as the DaemonSet controller makes it (bench/data/cluster_objects/pod.json),
spread over the jobs as their DaemonSets would: minutes instead of the 20 the DaemonSet controller takes here.
Then the controller manager is stopped, so that it does not adopt, replace or delete those pods while the
operator starts again and again: what is timed is the operator's own start-up (its LISTs, decoding, first
reconcile), against an API server that serves nothing else.

A first start, not counted, makes every job's children; then the revisions start in turn, `--runs` times each.
Before them the pods are listed in JSON and in protobuf: the API server's seconds, and the CPU seconds the
operator's decoding takes, in each encoding.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_inference_operator import wire  # noqa: E402
from edge_inference_operator.cache import pod_summary  # noqa: E402
from edge_inference_operator.kubeproto import core_v1_pb2, runtime_pb2  # noqa: E402
from edge_inference_operator.names import LABEL_JOB, MANAGED_SELECTOR  # noqa: E402
from operator_scale import (  # noqa: E402
    METRIC,
    REPO,
    SITE_SIZE,
    Fleet,
    Operator,
    continuous_jobs,
    control_plane,
    in_parallel,
    total,
    wait_for,
)
from support.controlplane import ControlPlane, _ssl_context  # noqa: E402

POD = REPO / "bench" / "data" / "cluster_objects" / "pod.json"
CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def worker_pods(count: int, nodes: int, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`count` worker pods, one per (node, job) in turn: the site jobs' on their sites, then the fleet-wide ones'."""
    template = json.loads(POD.read_text())
    for key in ("generateName", "ownerReferences", "resourceVersion", "uid", "creationTimestamp", "generation"):
        template["metadata"].pop(key, None)
    template.pop("status", None)
    sites = [j["metadata"]["name"] for j in jobs if "nodeSelector" in j["spec"]]
    fleet_wide = [j["metadata"]["name"] for j in jobs if "nodeSelector" not in j["spec"]]
    placed = [(i, sites[i // SITE_SIZE]) for i in range(min(nodes, len(sites) * SITE_SIZE))]
    placed += [(i, job) for job in fleet_wide for i in range(nodes)]
    pods = []
    for node, job in placed[:count]:
        pod = copy.deepcopy(template)
        pod["metadata"]["name"] = f"{job}-worker-{node:05d}"
        pod["metadata"]["labels"][LABEL_JOB] = job
        pod["spec"]["nodeName"] = f"edge-{node:05d}"
        pods.append(pod)
    if len(pods) < count:
        raise SystemExit(f"{count} pods asked for; the fleet's jobs have {len(pods)} (node, job) pairs")
    return pods


def time_lists(plane: ControlPlane) -> dict[str, Any]:
    """Every worker pod listed in pages of 100, in JSON and in protobuf: the API server's part (seconds to
    serve every page, read as bytes) and the operator's (CPU seconds to decode them and keep each pod's summary)."""
    decoders = {"json": json.loads, "protobuf": lambda body: wire.decode_list(wire.PODS, body)}
    context = _ssl_context(plane.pki.ca, plane.admin)
    result: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 1)}
    seconds: dict[str, dict[str, float]] = {}  # unrounded, for the ratios (a small fleet's decoding takes ~0 s)
    for name, accept in (("json", "application/json"), ("protobuf", wire.PROTOBUF)):
        started, pages, token = time.monotonic(), [], ""
        while True:
            url = f"{plane.url}/api/v1/pods?labelSelector={MANAGED_SELECTOR}&limit=100&continue={token}"
            request = urllib.request.Request(url, headers={"Accept": accept})
            with urllib.request.urlopen(request, timeout=60, context=context) as answer:
                pages.append(answer.read())
            token = next_token(pages[-1], accept)
            if not token:
                break
        served = time.monotonic() - started
        cpu = time.process_time()
        for page in pages:  # one page at a time, as the operator does
            kept = [pod_summary(item) for item in decoders[name](page)["items"]]
        decoded = time.process_time() - cpu
        assert kept, "no pods listed"
        seconds[name] = {"server_s": served, "decode_cpu_s": decoded}
        result[name] = {"server_s": round(served, 2), "mb": round(sum(map(len, pages)) / 1e6, 1),
                        "decode_cpu_s": round(decoded, 2)}  # fmt: skip
    for key in ("server_s", "decode_cpu_s"):
        result[f"{key} json / protobuf"] = round(seconds["json"][key] / max(seconds["protobuf"][key], 1e-6), 1)
    return result


def next_token(body: bytes, accept: str) -> str:
    """The page's continue token, without decoding its items (the list's metadata comes first in either encoding)."""
    if accept != wire.PROTOBUF:
        found = CONTINUE.search(body[:4096])
        return found.group(1).decode() if found else ""
    envelope, listed = runtime_pb2.Unknown(), core_v1_pb2.PodList()
    envelope.ParseFromString(body[len(wire.MAGIC) :])
    listed.ParseFromString(envelope.raw)  # in C: the items are parsed, never made Python objects
    return str(getattr(listed.metadata, "continue"))


@contextlib.contextmanager
def revision_tree(revision: str | None) -> Iterator[dict[str, str]]:
    """The environment that runs the operator's code at git `revision` (a temporary worktree); {} for this tree."""
    if revision is None:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="operator-startup-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            yield {"PYTHONPATH": f"{tree / 'api'}:{tree / 'operator'}"}
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


def start_once(plane: ControlPlane, log: Path, env: dict[str, str]) -> dict[str, Any]:
    """One start of the operator: seconds to its first reconcile, its CPU by then, its peak RSS."""
    load = os.getloadavg()[0]
    operator = Operator(plane, log, reconcile_seconds=3600, env=env)
    try:
        seconds = wait_for("the first reconcile", lambda: total(operator.scrape(), METRIC + "reconciles_total") >= 1,
                           600, operator, every=0.1)  # fmt: skip
        return {"first_reconcile_s": round(seconds, 2), "cpu_s": round(operator.cpu_seconds(), 2),
                "peak_rss_mb": round(operator.peak_rss_mb(), 1), "load": round(load, 1)}  # fmt: skip
    finally:
        operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--site-jobs", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3, help="starts of each revision")
    parser.add_argument("--compare", metavar="REV", help="also start the operator at this git revision, in turn")
    args = parser.parse_args()

    with control_plane(args.nodes) as plane, revision_tree(args.compare) as other:
        fleet = Fleet(plane, args.nodes)
        jobs = continuous_jobs(args.nodes, args.site_jobs)
        fleet.apply(jobs)
        started = time.monotonic()
        in_parallel(lambda pod: fleet.core.create_namespaced_pod("default", pod),
                    worker_pods(args.pods, args.nodes, jobs), threads=16)  # fmt: skip
        print(f"{args.pods} worker pods created in {time.monotonic() - started:.0f} s", flush=True)
        wait_for("every worker pod Running", lambda: fleet.pods("Running") >= args.pods, 900, every=5)
        start_once(plane, plane.workdir / "operator-warm-up.log", {})  # makes every job's children
        plane.components["kube-controller-manager"].stop()
        result: dict[str, Any] = {"nodes": args.nodes, "jobs": len(jobs), "pods": args.pods,
                                  "lists": time_lists(plane)}  # fmt: skip
        variants = {"this tree": {}, **({args.compare: other} if args.compare else {})}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for run in range(args.runs):
            for name, env in variants.items():
                runs[name].append(start_once(plane, plane.workdir / f"operator-{len(runs[name])}-{run}.log", env))
                print(json.dumps({"revision": name, **runs[name][-1]}), flush=True)
        for name, starts in runs.items():
            result[name] = {key: statistics.median(s[key] for s in starts) for key in starts[0]}
        if args.compare:
            mine, theirs = result["this tree"], result[args.compare]
            keys = ("first_reconcile_s", "cpu_s", "peak_rss_mb")
            result[f"{args.compare} / this tree"] = {key: round(theirs[key] / mine[key], 2) for key in keys}
        print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
