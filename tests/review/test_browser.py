"""The events browser in a real headless Chromium over a real S3 bucket: filter, open, the snapshot renders.

The browser is Debian's `chromium` (apt), driven by Playwright with the system executable (never a
downloaded browser). The screenshot of the opened event is kept in `.work/artifacts/` at the top of
the checkout (ignored by git), as `events-browser.png`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from edge_inference_worker.review.query import EventQuery
from playwright.sync_api import Page, sync_playwright
from support.s3server import free_ports
from support.waiting import wait_until

from .test_events_cli import NIGHT, expected

ARTIFACTS = Path(__file__).resolve().parents[2] / ".work" / "artifacts"
CHROMIUM = os.environ.get("EDGE_INFERENCE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SITE = EventQuery(namespace="fleet", job="site-001", since=NIGHT[0], until=NIGHT[1])


@pytest.fixture(scope="module")
def browser_url(fleet, tmp_path_factory) -> Iterator[str]:
    """`edge-inference events serve` over the fleet's bucket, as a child process; its base URL."""
    port = free_ports(1)[0]
    log = tmp_path_factory.mktemp("browser") / "serve.log"
    command = [sys.executable, "-m", "edge_inference_worker.cli", "events", "serve", fleet.source, "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(command, env={**os.environ, **fleet.env()}, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/healthz") or server.poll() is not None, 60, "the browser to listen")
        assert server.poll() is None, log.read_text()
        yield base
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def page(browser_url) -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def visible_cards(page: Page) -> list[dict]:
    return page.eval_on_selector_all(
        ".card:not(.hidden)", "cs => cs.map(c => ({id: c.dataset.id, cls: c.dataset.class, node: c.dataset.node}))"
    )


def test_filter_open_and_see_the_snapshot(page, browser_url, fleet):
    address = f"{browser_url}/?namespace=fleet&job=site-001&since=2026-11-26T18:00Z&until=2026-11-27T06:00Z"
    page.goto(address)
    assert sorted(card["id"] for card in visible_cards(page)) == expected(fleet, SITE)
    # Every thumbnail comes from S3 through a presigned link and decodes.
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete)", timeout=30_000)
    widths = page.eval_on_selector_all(".card img", "images => images.map(i => [i.src, i.naturalWidth])")
    assert widths and all(src.startswith(fleet.s3.url) and "X-Amz-Signature=" in src and w > 0 for src, w in widths)

    page.select_option("#filter-class", "person")
    persons = replace(SITE, classes=frozenset({"person"}))
    person_cards = visible_cards(page)
    assert sorted(card["id"] for card in person_cards) == expected(fleet, persons)
    node = person_cards[-1]["node"]
    page.select_option("#filter-node", node)
    on_node = replace(persons, node=node)
    cards = visible_cards(page)
    assert sorted(card["id"] for card in cards) == expected(fleet, on_node) and cards
    assert page.inner_text("#shown") == str(len(cards))

    chosen = cards[0]["id"]
    page.click(f'.card[data-id="{chosen}"]')
    page.wait_for_function(
        "document.getElementById('details').open && document.getElementById('details-image').complete"
        " && document.getElementById('details-image').naturalWidth > 0",
        timeout=30_000,
    )
    details = page.inner_text("#details-table")
    assert chosen in details and node in details and "person" in details
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "events-browser.png"))
    assert (ARTIFACTS / "events-browser.png").stat().st_size > 10_000

    document_url = page.get_attribute("#details-table a", "href")
    with urllib.request.urlopen(urllib.parse.urljoin(address, document_url), timeout=10) as response:
        assert json.loads(response.read())["id"] == chosen


def test_the_browser_only_reads(browser_url):
    request = urllib.request.Request(f"{browser_url}/", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405


def test_a_bad_range_is_a_clear_400(browser_url):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{browser_url}/?since=yesterday", timeout=10)
    assert refused.value.code == 400 and b"cannot read time 'yesterday'" in refused.value.read()
