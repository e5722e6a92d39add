"""Level-based reconciliation of one InferenceJob: the same function on create, update, resume,
timer ticks and child events. It reads what is, builds what should be, converges, and writes status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from edge_inference_api import conditions
from edge_inference_api.errors import dotted, one_line
from edge_inference_api.hostpaths import host_path_refusal
from edge_inference_api.models import (
    LABEL_ACCELERATOR,
    Device,
    InferenceJobSpec,
    InferenceJobStatus,
    Mode,
    Phase,
)
from pydantic import ValidationError

from edge_inference_operator import kube as kube_api
from edge_inference_operator.builders import NVIDIA, ParsedJob, build_children
from edge_inference_operator.metrics import OperatorMetrics
from edge_inference_operator.observed import pinned_node
from edge_inference_operator.placement import InputClaim, InputClaims, NodeInfo, matching_nodes
from edge_inference_operator.scrape import ScrapeMemory, open_session, policy_from_settings, scrape_pods
from edge_inference_operator.settings import OperatorSettings
from edge_inference_operator.status import (
    Thresholds,
    Transition,
    compute_status,
    invalid_status,
    transitions,
    worth_writing,
)

Clock = Callable[[], datetime.datetime]
logger = logging.getLogger(__name__)

# Jobs reconciled at once. Each holds its desired children, scrapes and status while it waits for the
# API client (kube.REQUESTS_IN_FLIGHT threads): at a restart, kopf resumes every job at once, and 1,000
# reconciles in flight only queued there, holding memory (docs/benchmarks.md, "Operator at fleet scale").
RECONCILES_IN_FLIGHT = 16


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def validation_message(error: ValidationError) -> str:
    """A refused spec as one line a user can act on: `spec.field.path: problem; ...` (ten at most)."""
    return one_line(error, dotted("spec"), limit=10)


def check_job(body: Mapping[str, Any], settings: OperatorSettings) -> ParsedJob | Refusal:
    """Parse the job at the edge; what the schema cannot catch becomes a Refusal with a specific reason."""
    meta = body.get("metadata", {})
    try:
        spec = InferenceJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        # The API server's CEL rules refuse such paths already; without them (old server, rules
        # bypassed) the path is still what is wrong, so say so with the specific reason.
        host_path_only = all(tuple(e["loc"][:1]) == ("input",) and "hostPath" in e["msg"] for e in error.errors())
        if host_path_only:
            allowed = ", ".join(settings.allowed_host_paths) or "(none)"
            return Refusal(
                conditions.HOST_PATH_NOT_ALLOWED, f"{validation_message(error)}; allowed prefixes: {allowed}"
            )
        return Refusal(conditions.INVALID_SPEC, validation_message(error))
    refusal = host_path_refusal(spec.input.host_path, settings.allowed_host_paths)
    if refusal is not None:
        return Refusal(conditions.HOST_PATH_NOT_ALLOWED, refusal)
    refused_images = [a.image for a in spec.accelerators if a.image and not settings.image_allowed(a.image)]
    if refused_images:
        allowed = ", ".join(sorted({*settings.worker_images.values(), *settings.allowed_worker_images}))
        return Refusal(
            conditions.IMAGE_NOT_ALLOWED,
            f"spec.accelerators[].image {', '.join(refused_images)} is not allowed; allowed images: {allowed}",
        )
    if spec.model.device == Device.CUDA and any(a.type != NVIDIA for a in spec.accelerators):
        kinds = ", ".join(a.type for a in spec.accelerators if a.type != NVIDIA)
        return Refusal(conditions.INVALID_SPEC, f"spec.model.device is cuda but accelerators [{kinds}] have no GPU")
    return ParsedJob(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], spec=spec)


def previous_status(body: Mapping[str, Any]) -> InferenceJobStatus:
    try:
        return InferenceJobStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return InferenceJobStatus()  # a hand-edited, unreadable status is rebuilt from scratch


def batch_targets(
    previous: InferenceJobStatus, matched: Mapping[str, str], children: Iterable[Mapping[str, Any]]
) -> dict[str, str]:
    """Batch: the nodes recorded at start (or, before the first record, those matching now) -> accelerator."""
    if not previous.target_nodes:
        return dict(matched)
    from_children = {}
    for child in children:
        labels = child.get("metadata", {}).get("labels") or {}
        node = pinned_node(child)
        if node is not None and LABEL_ACCELERATOR in labels:
            from_children[node] = labels[LABEL_ACCELERATOR]
    targets = {}
    for node in previous.target_nodes:
        accelerator = matched.get(node) or from_children.get(node)
        if accelerator is not None:
            targets[node] = accelerator
    return targets


@dataclasses.dataclass(frozen=True)
class Observed:
    """The cluster as one job's reconcile sees it."""

    nodes: Mapping[str, NodeInfo]  # every camera node
    pods: Sequence[Mapping[str, Any]]  # the job's worker pods
    children: Sequence[Mapping[str, Any]] | None = None  # its DaemonSets and Jobs; None: LIST them


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a valid job's workers go, as its mode decides."""

    desired_nodes: list[str]  # the nodes counted in the status
    placed: dict[str, str]  # node -> accelerator kind of the worker there
    targets: dict[str, str]  # what build_children pins (Batch; empty for Continuous)
    create_missing: bool  # False once a batch has finished: its Jobs are not made again
    live_nodes: set[str] | None  # Batch: the camera nodes that exist now


def children_fingerprint(meta: Mapping[str, Any], placement: Placement, children: Sequence[Mapping[str, Any]]) -> bytes:
    """What a job's desired children, and how its children compare with them, depend on: the job (its uid and
    spec generation; the settings are the process's), where it is placed, and the version of each child."""
    parts = [meta["uid"], str(meta.get("generation")), str(placement.create_missing)]
    parts += [f"{node}={kind}" for node, kind in sorted(placement.targets.items())]
    parts += sorted(f"{c['kind']}/{c['metadata']['name']}@{c['metadata'].get('resourceVersion')}" for c in children)
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).digest()


class Reconciler:
    """Everything a reconcile needs that outlives one call: settings, API, scrape memory, metrics, locks."""

    def __init__(
        self,
        settings: OperatorSettings,
        kube: kube_api.Kube,
        metrics: OperatorMetrics,
        clock: Clock = utcnow,
        terminating: Callable[[str], bool] = lambda namespace: False,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.terminating = terminating  # whether a namespace is being deleted (the operator's namespace watch)
        self.memory = ScrapeMemory()
        self.scrape_policy = policy_from_settings(settings)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._in_flight = asyncio.Semaphore(RECONCILES_IN_FLIGHT)
        # (namespace, name, uid) -> the status last written, as JSON: a parsed status of a fleet-wide job
        # is about 3x the size (docs/benchmarks.md, "Operator at fleet scale"), and it is read once a reconcile.
        self._written: dict[tuple[str, str, str], bytes] = {}
        self._inputs = InputClaims()  # what each job reads, as last reconciled
        self._settled: dict[tuple[str, str], bytes] = {}  # job -> children_fingerprint when its children were as wanted
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self.kube.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = open_session(self.scrape_policy)
        return self._session

    def busy(self, namespace: str, name: str) -> bool:
        lock = self._locks.get((namespace, name))
        return lock is not None and lock.locked()

    def forget(self, namespace: str, name: str) -> None:
        """The job is gone: drop its lock, scrape memory and phase."""
        self._locks.pop((namespace, name), None)
        self._inputs.release(f"{namespace}/{name}")
        self._settled.pop((namespace, name), None)
        for key in [key for key in self._written if key[:2] == (namespace, name)]:
            del self._written[key]
        self.memory.forget(f"{namespace}/{name}")
        self.metrics.job_phase((namespace, name), None)

    async def reconcile(self, body: Mapping[str, Any], observe: Callable[[], Observed]) -> InferenceJobStatus:
        """Converge one job (serialised per job) and write its status; returns the status written.

        `observe` is called once the job's lock is held: a reconcile that waited for another (which
        may have made thousands of children meanwhile) sees the cluster as that one left it.
        """
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock, self._in_flight:  # the job's lock first: a reconcile waiting for it holds no slot
            started = time.monotonic()  # the reconcile's own time, not the waits for a lock or a slot
            try:
                seen = observe()
                children = seen.children
                if children is None:
                    children = await kube_api.observed_children(self.kube, key[0], key[1], meta["uid"])
                status, result = await self._reconcile(body, seen.nodes, seen.pods, children)
            except Exception as error:
                self.metrics.reconciles.labels(result="error").inc()
                self.metrics.errors.labels(kind="api" if isinstance(error, kube_api.KubeError) else "unexpected").inc()
                raise
            finally:
                self.metrics.duration.observe(time.monotonic() - started)
        self.metrics.reconciles.labels(result=result).inc()
        self.metrics.job_phase(key, status.phase.value if status.phase else None)
        return status

    async def _reconcile(
        self,
        body: Mapping[str, Any],
        nodes: Mapping[str, NodeInfo],
        pods: Iterable[Mapping[str, Any]],
        children: Sequence[Mapping[str, Any]],
    ) -> tuple[InferenceJobStatus, str]:
        meta = body["metadata"]
        # The operator is the only writer of status: what it last wrote is newer than a body that
        # kopf got before that write came back through the watch (no duplicate transitions/Events).
        written = self._written.get((meta["namespace"], meta["name"], meta["uid"]))
        previous = InferenceJobStatus.model_validate_json(written) if written else previous_status(body)
        now = self.clock()
        checked = check_job(body, self.settings)
        if isinstance(checked, Refusal):
            return await self._refuse(body, previous, checked, now, children), "invalid"
        job = checked
        place = self._place_batch if job.spec.mode == Mode.BATCH else self._place_continuous
        placement = place(job, previous, meta.get("generation"), nodes, children)
        try:
            convergence = await self._converge(job, meta, placement, children)
        except kube_api.KubeError as error:
            return await self._converge_failed(body, previous, error, now)
        for action in ("created", "updated", "deleted"):
            self.metrics.children_changed.labels(action=action).inc(len(getattr(convergence, action)))
        if not placement.create_missing:
            # The outcome is recorded in the status; finished Jobs may be cleaned up without changing it.
            return previous, "ok"
        status = await self._observe(job, body, previous, placement, convergence, pods, now)
        await self._write(body, previous, status)
        return status, "ok"

    async def _converge(
        self, job: ParsedJob, meta: Mapping[str, Any], placement: Placement, children: Sequence[Mapping[str, Any]]
    ) -> kube_api.Convergence:
        """Make the children what the job wants; skipped while nothing they depend on has changed since a
        reconcile found every one as wanted (building and comparing 2,000 DaemonSets at every resync was
        a tenth of the event loop's time at 1,000 jobs: docs/benchmarks.md, "Operator at fleet scale")."""
        key, fingerprint = (job.namespace, job.name), children_fingerprint(meta, placement, children)
        if self._settled.get(key) == fingerprint:
            return kube_api.Convergence(children=[dict(child) for child in children])
        desired = build_children(job, self.settings, placement.targets)
        convergence = await kube_api.converge_children(
            self.kube, job.namespace, desired, children, create_missing=placement.create_missing
        )
        if len(convergence.unchanged) == len(desired) and not convergence.deleted:
            self._settled[key] = fingerprint
        else:
            self._settled.pop(key, None)
        return convergence

    async def _refuse(
        self,
        body: Mapping[str, Any],
        previous: InferenceJobStatus,
        refusal: Refusal,
        now: datetime.datetime,
        children: Sequence[Mapping[str, Any]],
    ) -> InferenceJobStatus:
        """Nothing may run for a refused spec: children of an earlier, valid spec go too."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        self._inputs.release(f"{namespace}/{name}")
        await kube_api.converge_children(self.kube, namespace, [], children)
        status = invalid_status(previous, meta.get("generation"), refusal.reason, refusal.message, now)
        await self._write(body, previous, status)
        return status

    def _place_continuous(
        self,
        job: ParsedJob,
        previous: InferenceJobStatus,
        generation: int | None,
        nodes: Mapping[str, NodeInfo],
        children: Sequence[Mapping[str, Any]],
    ) -> Placement:
        """Continuous: a DaemonSet per kind, on the nodes that match now."""
        matched = matching_nodes(nodes, job.spec, daemonset=True)
        return Placement(desired_nodes=list(matched), placed=matched, targets={}, create_missing=True, live_nodes=None)

    def _place_batch(
        self,
        job: ParsedJob,
        previous: InferenceJobStatus,
        generation: int | None,
        nodes: Mapping[str, NodeInfo],
        children: Sequence[Mapping[str, Any]],
    ) -> Placement:
        """Batch: a Job per node recorded at start; a finished batch is not re-run (a new generation is)."""
        matched = matching_nodes(nodes, job.spec, daemonset=False)
        targets = batch_targets(previous, matched, children)
        # A finished batch is not re-run when a finished Job is deleted; a new generation re-runs it.
        finished = previous.phase in (Phase.SUCCEEDED, Phase.FAILED) and previous.observed_generation == generation
        return Placement(
            desired_nodes=list(previous.target_nodes or targets),
            placed=targets,
            targets=targets,
            create_missing=not finished,
            live_nodes=set(nodes),
        )

    async def _observe(
        self,
        job: ParsedJob,
        body: Mapping[str, Any],
        previous: InferenceJobStatus,
        placement: Placement,
        convergence: kube_api.Convergence,
        pods: Iterable[Mapping[str, Any]],
        now: datetime.datetime,
    ) -> InferenceJobStatus:
        """Scrape the job's workers and compute its status from what is there now."""
        key = f"{job.namespace}/{job.name}"
        self._inputs.claim(key, InputClaim(job.spec.input.host_path, frozenset(placement.placed)))
        types = {a.type for a in job.spec.accelerators}
        job_pods = [p for p in pods if (p.get("metadata", {}).get("labels") or {}).get(LABEL_ACCELERATOR) in types]
        scraped = await scrape_pods(self._http(), job_pods, self.memory, key, now, self.scrape_policy)
        self.metrics.scrape_failures.inc(len(scraped.errors))
        return compute_status(
            previous=previous,
            spec=job.spec,
            generation=body["metadata"].get("generation"),
            desired_nodes=placement.desired_nodes,
            children=convergence.children,
            pods=job_pods,
            reports=scraped.reports,
            now=now,
            thresholds=self._thresholds(),
            live_nodes=placement.live_nodes,
            shared_with=self._inputs.shared_with(key),
            idle_accelerators=[a.type for a in job.spec.accelerators if a.type not in set(placement.placed.values())],
            taken_names=convergence.taken,
        )

    def _thresholds(self) -> Thresholds:
        return Thresholds(
            stale_after=datetime.timedelta(seconds=self.settings.stale_after_seconds),
            backlog_age_seconds=self.settings.backlog_age_seconds,
            batch_start_deadline=datetime.timedelta(seconds=self.settings.batch_start_deadline_seconds),
        )

    async def _converge_failed(
        self, body: Mapping[str, Any], previous: InferenceJobStatus, error: kube_api.KubeError, now: datetime.datetime
    ) -> tuple[InferenceJobStatus, str]:
        """The API server refused a child: said in the status when it is the spec's fault, else raised."""
        meta = body["metadata"]
        if kube_api.namespace_terminating(error):
            logger.debug("%s/%s: its namespace is being deleted; nothing to do", meta["namespace"], meta["name"])
            return previous, "terminating"
        if error.status != kube_api.INVALID:
            raise error
        # What the schema could not catch: the API server's own words, as a condition and an Event.
        message = f"the API server refused a worker: {error.message}"
        status = invalid_status(previous, meta.get("generation"), conditions.CHILD_REJECTED, message, now)
        await self._write(body, previous, status)
        return status, "invalid"

    async def _write(self, body: Mapping[str, Any], previous: InferenceJobStatus, status: InferenceJobStatus) -> None:
        meta = body["metadata"]
        # Progress (counters, heartbeats) shown up to stale_after late: the state says Stale at once when it matters.
        if not worth_writing(previous, status, datetime.timedelta(seconds=self.settings.stale_after_seconds)):
            return
        wire = status.model_dump(mode="json", by_alias=True)
        try:
            await kube_api.patch_status(self.kube, meta["namespace"], meta["name"], wire)
        except kube_api.KubeError as error:
            if error.status != kube_api.NOT_FOUND:
                raise
            # Deleted while this reconcile ran (a resync's body can be older than the delete): forget it
            # again, or what it claimed here (its input folder) would linger in other jobs' status.
            self.forget(meta["namespace"], meta["name"])
            return
        self._written[(meta["namespace"], meta["name"], meta["uid"])] = status.model_dump_json(by_alias=True).encode()
        for transition in transitions(previous, status):
            await self._post(body, transition)

    async def _post(self, body: Mapping[str, Any], transition: Transition) -> None:
        """An Event for one condition transition (Warning when it got worse); a failed post only logs."""
        if self.terminating(body["metadata"]["namespace"]):
            return  # the API server would refuse it (403); the job goes with its namespace
        message = f"{transition.type}={transition.status}: {transition.message}"
        kind = "Warning" if transition.warning else "Normal"
        try:
            await kube_api.post_event(
                self.kube, body, kind, transition.reason, message, conditions.rfc3339(self.clock())
            )
        except kube_api.KubeError as error:
            level = logging.DEBUG if kube_api.namespace_terminating(error) else logging.WARNING
            logger.log(
                level, "could not post the %s Event of %s: %s", transition.reason, body["metadata"]["name"], error
            )
