"""Worker progress at fleet scale: the operator's real scrape code against N simulated workers, side by side.

No Kubernetes: the pods are dicts whose podIP is a loopback address (127.1.0.1 onwards), and one local
process (bench/support/simulated_workers.py) answers for all of them, as a real worker would. Each
configuration of `edge_inference_operator.scrape.ScrapePolicy` scrapes the same fleet through
`scrape_pods`, one call per reconcile, with the clock advanced by the reconcile interval (10 s) per
call, so a run of minutes of simulated time takes seconds. Printed per configuration:

- CPU seconds (this process's user+system time) and wall seconds per reconcile, steady (after a first
  round that opens connections);
- CPU as a fraction of one core at the operator's reconcile interval;
- connections the simulated workers accepted per request (1.0: a new connection every time), and the
  connections held open at the end (the kept-alive pool);
- scrapes that failed, on a fleet where every worker answers (a loop too busy to connect in time);
- first of all, in a fresh process, what one idle kept-alive connection costs in RSS.

The "before" configuration is today's scrape as it was before /progress: the whole Prometheus text over
a new connection, every reconcile. A second part silences a fraction of the workers ("hang": they never
answer) and checks that exactly those become Stale candidates (failing since their first scrape).

    PYTHONPATH=api:operator:inference-image python bench/progress_scale.py --pods 5000
    ... --pods 15000 --jobs 1000 --chosen-only     # the fleet of 1,000 site jobs, the chosen policy alone
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import gc
import math
import os
import resource
import time
from typing import Any

from edge_inference_api import telemetry
from edge_inference_operator.scrape import (
    ScrapeMemory,
    ScrapePolicy,
    ScrapeRound,
    open_session,
    policy_from_settings,
    scrape_pods,
)
from edge_inference_operator.settings import OperatorSettings
from support.simulated_workers import SimulatedWorkers, pod_ip

RECONCILE_SECONDS = OperatorSettings.model_fields["reconcile_seconds"].default
STALE_AFTER_SECONDS = OperatorSettings.model_fields["stale_after_seconds"].default
T0 = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Configuration:
    name: str
    policy: ScrapePolicy


def connection(policy: ScrapePolicy) -> str:
    return "kept alive" if policy.keep_alive else "new connection"


def configurations() -> list[Configuration]:
    """Today's scrape first, the operator's own policy (from its default settings) last."""
    chosen = policy_from_settings(OperatorSettings(allowed_host_paths=("/srv/video",)))
    every_reconcile = dataclasses.replace(chosen, interval=0)
    return [
        Configuration(
            "before: /metrics, new connection",
            dataclasses.replace(every_reconcile, path=telemetry.METRICS_PATH, keep_alive=False),
        ),
        Configuration(
            "/metrics, kept alive", dataclasses.replace(every_reconcile, path=telemetry.METRICS_PATH, keep_alive=True)
        ),
        Configuration("/progress, new connection", dataclasses.replace(every_reconcile, keep_alive=False)),
        Configuration("/progress, kept alive", dataclasses.replace(every_reconcile, keep_alive=True)),
        Configuration(
            f"/progress, kept alive, every {chosen.interval:.0f} s", dataclasses.replace(chosen, keep_alive=True)
        ),
        Configuration(f"chosen: /progress, {connection(chosen)}, every {chosen.interval:.0f} s", chosen),
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
    held: int = 0  # connections open at the end
    errors: int = 0

    def core_fraction(self) -> float:
        return sum(self.cpu) / (len(self.cpu) * RECONCILE_SECONDS)


def by_job(pods: list[dict[str, Any]], jobs: int) -> dict[str, list[dict[str, Any]]]:
    """The pods split into `jobs` jobs of consecutive pods (a site's nodes, one job each)."""
    size = math.ceil(len(pods) / jobs)
    return {f"fleet/job-{j}": pods[j * size : (j + 1) * size] for j in range(jobs)}


async def reconcile_round(
    session: Any, jobs: dict[str, list[dict[str, Any]]], memory: ScrapeMemory, now: Any, policy: ScrapePolicy
) -> ScrapeRound:
    """Every job's scrape of one reconcile tick, at once (as kopf's timers run them), merged."""
    rounds = await asyncio.gather(*(scrape_pods(session, pods, memory, key, now, policy) for key, pods in jobs.items()))
    reports = {node: report for r in rounds for node, report in r.reports.items()}
    errors = {node: error for r in rounds for node, error in r.errors.items()}
    return ScrapeRound(reports, sum(r.asked for r in rounds), errors)


async def run_configuration(
    jobs: dict[str, list[dict[str, Any]]], policy: ScrapePolicy, reconciles: int, workers: SimulatedWorkers
) -> tuple[Measured, ScrapeRound]:
    """The jobs' reconciles, back to back, the clock moving RECONCILE_SECONDS each.

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
            scraped = await reconcile_round(session, jobs, memory, now, policy)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if index == 0:
                measured.first_cpu, measured.first_wall = cpu, wall
            else:
                measured.cpu.append(cpu)
                measured.wall.append(wall)
                measured.asked += scraped.asked
            measured.errors += len(scraped.errors)
        measured.held = workers.counters()["open_connections"] - 1  # less the counters' own
    after = workers.counters()
    measured.requests = sum(after["requests"].values()) - sum(before["requests"].values()) - 1  # less the counters' own
    measured.connections = after["connections"] - before["connections"] - 1
    return measured, scraped


async def idle_connection_cost(jobs: dict[str, list[dict[str, Any]]], workers: SimulatedWorkers) -> None:
    """RSS growth per kept-alive connection (run first, in a fresh process): every worker asked once over
    new connections (the code and memory warm), then once more over connections kept."""
    steady = ScrapePolicy(interval=STALE_AFTER_SECONDS / 2)
    for policy in (dataclasses.replace(steady, keep_alive=False), dataclasses.replace(steady, keep_alive=True)):
        gc.collect()
        before = rss_mb()
        async with open_session(policy) as session:
            await reconcile_round(session, jobs, ScrapeMemory(), T0, policy)
            gc.collect()
            held = workers.counters()["open_connections"] - 1
            grown = rss_mb() - before
    print(f"{held} idle kept-alive connections: RSS +{grown:.0f} MB, {grown * 1024 / max(held, 1):.1f} KB each")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def print_table(rows: list[tuple[str, Measured]], pods: int, jobs: int) -> None:
    """One line per configuration; "vs before": the first row's CPU over this row's (when it is "before")."""
    before = rows[0][1] if rows[0][0].startswith("before") else None
    print(f"\n{pods} simulated workers in {jobs} jobs, a reconcile every {RECONCILE_SECONDS:.0f} s", end=" ")
    print("(steady: the mean after the first)")
    print(
        f"{'configuration':44} {'first cpu/wall s':>17} {'cpu s/rec':>9} {'wall s/rec':>10} {'asked/rec':>9} "
        f"{'core %':>7} {'vs before':>9} {'conn/req':>8} {'held':>6} {'failed':>6}"
    )
    for name, m in rows:
        ratio = f"{before.core_fraction() / m.core_fraction():8.1f}x" if before else f"{'-':>9}"
        print(
            f"{name:44} {m.first_cpu:8.2f}/{m.first_wall:<8.2f} {sum(m.cpu) / len(m.cpu):9.3f} "
            f"{sum(m.wall) / len(m.wall):10.3f} {m.asked / len(m.cpu):9.0f} {100 * m.core_fraction():6.1f}% "
            f"{ratio} {m.connections / max(m.requests, 1):8.2f} {m.held:6} {m.errors:6}"
        )


async def compare(
    jobs: dict[str, list[dict[str, Any]]], reconciles: int, workers: SimulatedWorkers, chosen_only: bool
) -> None:
    rows = []
    for configuration in configurations()[-1:] if chosen_only else configurations():
        measured, _ = await run_configuration(jobs, configuration.policy, reconciles, workers)
        rows.append((configuration.name, measured))
        print(f"  measured {configuration.name}", flush=True)
    print_table(rows, sum(map(len, jobs.values())), len(jobs))


async def stale_check(jobs: dict[str, list[dict[str, Any]]], reconciles: int, workers: SimulatedWorkers) -> None:
    """The chosen policy on a fleet where some workers hang: exactly they fail, from their first scrape."""
    policy = configurations()[-1].policy
    measured, last = await run_configuration(jobs, policy, reconciles, workers)
    pods = [pod for job_pods in jobs.values() for pod in job_pods]
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
    parser.add_argument("--jobs", type=int, default=1, help="jobs the workers are split into, scraped at once")
    parser.add_argument("--chosen-only", action="store_true", help="measure only the chosen configuration")
    parser.add_argument("--silent-fraction", type=float, default=0.02, help="workers that hang, in the Stale part")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a kept-alive connection per worker
    if hard < args.pods + 100:
        raise SystemExit(f"open files limit {hard} is below {args.pods} workers")
    print(f"load before: {os.getloadavg()}")
    with SimulatedWorkers(port=0) as workers:
        jobs = by_job(simulated_pods(args.pods, workers.port), args.jobs)
        asyncio.run(idle_connection_cost(jobs, workers))
        asyncio.run(compare(jobs, args.reconciles, workers, args.chosen_only))
    with SimulatedWorkers(port=0, silent_fraction=args.silent_fraction) as workers:
        jobs = by_job(simulated_pods(args.pods, workers.port), args.jobs)
        asyncio.run(stale_check(jobs, args.reconciles, workers))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
