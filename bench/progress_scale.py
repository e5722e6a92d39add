"""Worker progress at fleet scale: the operator's real scrape code against N simulated workers, side by side.

No Kubernetes: the pods are dicts whose podIP is a loopback address (127.1.0.1 onwards), and one local
process (bench/support/simulated_workers.py) answers for all of them, as a real worker would. Each
configuration of `edge_inference_operator.scrape.ScrapePolicy` scrapes the same fleet through
`scrape_pods`, one call per reconcile, with the clock advanced by the reconcile interval (10 s) per
call, so a run of minutes of simulated time takes seconds. Printed per configuration:

- CPU seconds (this process's user+system time) and wall seconds per reconcile, steady (after a first
  round that opens connections);
- CPU as a fraction of one core at the operator's reconcile interval;
- connections the simulated workers accepted per request (1.0: a new connection every time);
- scrapes that failed, on a fleet where every worker answers (a loop too busy to connect in time);
- this process's RSS after the run (the kept-alive connections).

The "before" configuration is today's scrape as it was before /progress: the whole Prometheus text over
a new connection, every reconcile. A second part silences a fraction of the workers ("hang": they never
answer) and checks that exactly those become Stale candidates (failing since their first scrape).

    PYTHONPATH=api:operator:inference-image python bench/progress_scale.py --pods 5000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import math
import os
import resource
import time
from typing import Any

from edge_inference_api import telemetry
from edge_inference_operator.scrape import ScrapeMemory, ScrapePolicy, ScrapeRound, open_session, scrape_pods
from edge_inference_operator.settings import OperatorSettings
from support.simulated_workers import SimulatedWorkers, pod_ip

RECONCILE_SECONDS = OperatorSettings.model_fields["reconcile_seconds"].default
STALE_AFTER_SECONDS = OperatorSettings.model_fields["stale_after_seconds"].default
T0 = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Configuration:
    name: str
    policy: ScrapePolicy


def configurations() -> list[Configuration]:
    every_reconcile = ScrapePolicy(interval=0)
    return [
        Configuration(
            "before: /metrics, new connection",
            dataclasses.replace(every_reconcile, path=telemetry.METRICS_PATH, keep_alive=False),
        ),
        Configuration("/metrics, kept alive", dataclasses.replace(every_reconcile, path=telemetry.METRICS_PATH)),
        Configuration("/progress, new connection", dataclasses.replace(every_reconcile, keep_alive=False)),
        Configuration("/progress, kept alive", every_reconcile),
        Configuration(
            f"chosen: /progress, kept alive, every {STALE_AFTER_SECONDS / 2:.0f} s",
            ScrapePolicy(interval=STALE_AFTER_SECONDS / 2),
        ),
    ]


def simulated_pods(count: int, port: int) -> list[dict[str, Any]]:
    """Worker pods as the operator sees them: bound, Running, a loopback podIP, the metrics port declared."""
    return [
        {
            "metadata": {"name": f"worker-{i}"},
            "spec": {
                "nodeName": f"edge-{i}",
                "containers": [{"name": "worker", "ports": [{"name": "metrics", "containerPort": port}]}],
            },
            "status": {"phase": "Running", "podIP": pod_ip(i)},
        }
        for i in range(count)
    ]


@dataclasses.dataclass
class Measured:
    cpu: list[float] = dataclasses.field(default_factory=list)  # per steady reconcile
    wall: list[float] = dataclasses.field(default_factory=list)
    first_cpu: float = 0.0
    first_wall: float = 0.0
    asked: int = 0
    requests: int = 0
    connections: int = 0
    errors: int = 0

    def core_fraction(self) -> float:
        return sum(self.cpu) / (len(self.cpu) * RECONCILE_SECONDS)


async def run_configuration(
    pods: list[dict[str, Any]], policy: ScrapePolicy, reconciles: int, workers: SimulatedWorkers
) -> tuple[Measured, ScrapeRound]:
    """One job's reconciles, back to back, the clock moving RECONCILE_SECONDS each.

    A policy with an interval runs 3 of its longest periods, whatever `reconciles` says: its mean is
    then over whole scrape cycles.
    """
    if policy.interval:
        reconciles = max(reconciles, math.ceil(3 * policy.interval * 1.25 / RECONCILE_SECONDS))
    measured, memory = Measured(), ScrapeMemory()
    before = workers.counters()
    async with open_session(policy) as session:
        for index in range(reconciles + 1):
            now = T0 + datetime.timedelta(seconds=index * RECONCILE_SECONDS)
            cpu, wall = time.process_time(), time.perf_counter()
            scraped = await scrape_pods(session, pods, memory, "fleet/job", now, policy)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if index == 0:
                measured.first_cpu, measured.first_wall = cpu, wall
            else:
                measured.cpu.append(cpu)
                measured.wall.append(wall)
                measured.asked += scraped.asked
            measured.errors += len(scraped.errors)
    after = workers.counters()
    measured.requests = sum(after["requests"].values()) - sum(before["requests"].values()) - 1  # less the counters' own
    measured.connections = after["connections"] - before["connections"] - 1
    return measured, scraped


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def print_table(rows: list[tuple[str, Measured, float]], pods: int) -> None:
    before = rows[0][1]
    print(f"\n{pods} simulated workers, a reconcile every {RECONCILE_SECONDS:.0f} s (steady: the mean after the first)")
    print(
        f"{'configuration':44} {'first cpu/wall s':>17} {'cpu s/rec':>9} {'wall s/rec':>10} {'asked/rec':>9} "
        f"{'core %':>7} {'vs before':>9} {'conn/req':>8} {'failed':>6} {'RSS MB':>7}"
    )
    for name, m, rss in rows:
        ratio = before.core_fraction() / m.core_fraction()
        print(
            f"{name:44} {m.first_cpu:8.2f}/{m.first_wall:<8.2f} {sum(m.cpu) / len(m.cpu):9.3f} "
            f"{sum(m.wall) / len(m.wall):10.3f} {m.asked / len(m.cpu):9.0f} {100 * m.core_fraction():6.1f}% "
            f"{ratio:8.1f}x {m.connections / max(m.requests, 1):8.2f} {m.errors:6} {rss:7.0f}"
        )


async def compare(pods: list[dict[str, Any]], reconciles: int, workers: SimulatedWorkers) -> None:
    rows = []
    for configuration in configurations():
        measured, _ = await run_configuration(pods, configuration.policy, reconciles, workers)
        rows.append((configuration.name, measured, rss_mb()))
        print(f"  measured {configuration.name}", flush=True)
    print_table(rows, len(pods))


async def stale_check(pods: list[dict[str, Any]], reconciles: int, workers: SimulatedWorkers) -> None:
    """The chosen policy on a fleet where some workers hang: exactly they fail, from their first scrape."""
    policy = configurations()[-1].policy
    measured, last = await run_configuration(pods, policy, reconciles, workers)
    silent = {pod["spec"]["nodeName"] for pod in pods if workers.is_silent(pod["status"]["podIP"])}
    failing = {node for node, report in last.reports.items() if report.failing_since is not None}
    cpu, wall = sum(measured.cpu) / len(measured.cpu), sum(measured.wall) / len(measured.wall)
    print(
        f"\nWith {len(silent)} of {len(pods)} workers hanging (chosen policy, timeout {policy.timeout:.0f} s, "
        f"{policy.concurrency} in flight): first reconcile {measured.first_cpu:.2f} s CPU, "
        f"{measured.first_wall:.2f} s wall; steady {cpu:.3f} s CPU, {wall:.2f} s wall per reconcile "
        f"(worst {max(measured.wall):.2f} s), {100 * measured.core_fraction():.1f}% of a core"
    )
    since_first = all(last.reports[node].failing_since == T0 for node in silent)
    print(
        f"failing (Stale after {STALE_AFTER_SECONDS:.0f} s): {len(failing)}; exactly the silent ones: "
        f"{failing == silent}; failing since their first scrape: {since_first}"
    )
    if failing != silent or not since_first:
        raise SystemExit("Stale detection is wrong")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--reconciles", type=int, default=3, help="steady reconciles measured per configuration")
    parser.add_argument("--silent-fraction", type=float, default=0.02, help="workers that hang, in the Stale part")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a kept-alive connection per worker
    if hard < args.pods + 100:
        raise SystemExit(f"open files limit {hard} is below {args.pods} workers")
    print(f"load before: {os.getloadavg()}")
    with SimulatedWorkers(port=0) as workers:
        pods = simulated_pods(args.pods, workers.port)
        asyncio.run(compare(pods, args.reconciles, workers))
    with SimulatedWorkers(port=0, silent_fraction=args.silent_fraction) as workers:
        asyncio.run(stale_check(simulated_pods(args.pods, workers.port), args.reconciles, workers))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
