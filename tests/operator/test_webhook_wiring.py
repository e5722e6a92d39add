"""An InferenceJob's webhook reaches the worker pods: URL and classes in the config, the HMAC key by reference."""

from __future__ import annotations

import json

import pytest
from edge_inference_api.models import ENV_WEBHOOK_HMAC_KEY, ENV_WORKER_CONFIG, InferenceJobSpec, WorkerConfig
from edge_inference_operator.builders import build_children
from pydantic import ValidationError
from support.jobs import BASE_SPEC

WEBHOOK = {"url": "https://alerts.example.com/hook", "secretRef": {"name": "lobby-webhook"}, "classes": ["person"]}


def worker_containers(make_job, settings, **spec):
    children = build_children(make_job(**spec), settings, {"edge-1": "cpu"})
    return [c for child in children for c in child["spec"]["template"]["spec"]["containers"]]


def test_the_worker_gets_the_webhook_and_its_key_by_secret_reference(make_job, settings):
    (worker,) = worker_containers(make_job, settings, webhook=WEBHOOK)
    env = {e["name"]: e for e in worker["env"]}
    assert env[ENV_WEBHOOK_HMAC_KEY] == {
        "name": ENV_WEBHOOK_HMAC_KEY, "valueFrom": {"secretKeyRef": {"name": "lobby-webhook", "key": "hmacKey"}}
    }
    config = WorkerConfig.model_validate_json(env[ENV_WORKER_CONFIG]["value"])
    assert config.webhook is not None
    assert (config.webhook.url, config.webhook.classes) == ("https://alerts.example.com/hook", ["person"])
    assert "lobby-webhook" not in env[ENV_WORKER_CONFIG]["value"]  # the config names no secret, holds no key


def test_without_a_webhook_there_is_no_key_and_no_webhook(make_job, settings):
    (worker,) = worker_containers(make_job, settings)
    assert ENV_WEBHOOK_HMAC_KEY not in {e["name"] for e in worker["env"]}
    config = json.loads({e["name"]: e for e in worker["env"]}[ENV_WORKER_CONFIG]["value"])
    assert config["webhook"] is None


@pytest.mark.parametrize(
    "webhook, where",
    [
        ({**WEBHOOK, "url": "ftp://alerts.example.com"}, "webhook.url"),
        ({**WEBHOOK, "url": "https://"}, "webhook.url"),
        ({"url": "https://alerts.example.com"}, "webhook.secretRef"),
        ({**WEBHOOK, "classes": [""]}, "webhook.classes.0"),
    ],
)
def test_a_bad_webhook_is_refused(webhook, where):
    with pytest.raises(ValidationError) as refused:
        InferenceJobSpec.model_validate({**BASE_SPEC, "webhook": webhook})
    assert where in ".".join(str(p) for p in refused.value.errors()[0]["loc"])
