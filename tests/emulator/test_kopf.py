"""kopf, logged in with the test kubeconfig, runs against the emulator as against a cluster."""

import asyncio
import contextlib

import kopf
import kubernetes
import pytest
import yaml

JOB_PATH = ("edgeinference.io", "v1alpha1", "default", "inferencejobs", "lobby")


def trivial_operator() -> kopf.OperatorRegistry:
    """An operator that marks Continuous jobs Running in status.phase (the CRD's enum allows no other words)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_):
        settings.peering.standalone = True
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="edgeinference.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="edgeinference.io")

    @kopf.on.create("edgeinference.io", "v1alpha1", "inferencejobs", registry=registry)
    def created(body, spec, patch, **_):
        patch.status["phase"] = "Running" if spec["mode"] == "Continuous" else "Pending"
        kopf.info(body, reason="Accepted", message=f"{spec['mode']} job accepted")

    return registry


async def eventually(read, what: str, deadline_s: float = 20):
    """Poll the blocking ``read`` until it returns something truthy (in a thread: kopf shares this loop)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        if value := await asyncio.to_thread(read):
            return value
        await asyncio.sleep(0.05)
    pytest.fail(f"{what} did not happen within {deadline_s}s")


async def test_kopf_sees_a_job_applied_with_kubectl_and_patches_its_status(kube_api, job, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    stop, ready = asyncio.Event(), asyncio.Event()
    operator = asyncio.create_task(kopf.operator(
        registry=trivial_operator(), clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready,
    ))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        applied = await asyncio.to_thread(kube_api.kubectl, "apply", "-f", "-", input=yaml.safe_dump(job))
        assert applied.returncode == 0, applied.stderr

        custom = kubernetes.client.CustomObjectsApi(kube_api.api_client())
        core = kubernetes.client.CoreV1Api(kube_api.api_client())
        phase = await eventually(lambda: custom.get_namespaced_custom_object(*JOB_PATH).get("status", {}).get("phase"),
                                 "status.phase set by the operator")
        assert phase == "Running"  # Continuous is the CRD's default mode, applied by the server on create
        events = await eventually(lambda: core.list_namespaced_event(
            "default", field_selector="involvedObject.name=lobby").items, "an Event about the job")
        assert (events[0].reason, events[0].message) == ("Accepted", "Continuous job accepted")

        # A blocking call straight from the operator's loop stalls kopf but cannot deadlock it: the server
        # answers from its own thread.
        assert custom.get_namespaced_custom_object(*JOB_PATH)["status"]["phase"] == "Running"
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, 20)
    operator_requests = {(r.verb, r.resource, r.subresource) for r in kube_api.requests if "kopf" in r.user_agent}
    assert ("watch", "inferencejobs", None) in operator_requests
    assert ("patch", "inferencejobs", "status") in operator_requests
    assert ("create", "events", None) in operator_requests


