"""The events browser: the events report, live over the bucket, read-only (Starlette, served by uvicorn).

    edge-inference events serve s3://events/site-a --port 8080 [--public-endpoint https://s3.example.com]

Each page load reads the index (or lists, on a bucket without one) for the range in the address
(`?since=12h&namespace=shop&job=lobby`, the same filters as `events list`; default: the last 24
hours). Snapshots are not proxied: the page links them as presigned URLs, valid for 12 hours, so
the browser fetches them from S3 itself; `--public-endpoint` is the S3 address as users' browsers
reach it, when that differs from the one the server uses. Only GET routes exist.
"""

from __future__ import annotations

import argparse
import html
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..sinks import SinkError
from .commands import query_from_args, report_title
from .index import IndexFormatError
from .query import EventQuery, QueryError, find_events
from .report import ReportEvent, render_report
from .store import EventStore, ObjectMissingError
from .timerange import TimeFormatError

DEFAULT_SINCE = "24h"


def create_app(store: EventStore, source: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Starlette:
    """The browser's web application over one store."""

    # Plain functions: Starlette runs them in its thread pool, so a slow bucket never blocks the loop.
    def page(request: Request) -> Response:
        try:
            query = query_from_params(request.query_params, clock())
            events = find_events(store, query)
        except (TimeFormatError, QueryError, ValueError) as exc:
            return PlainTextResponse(f"bad request: {exc}\n", status_code=400)
        except (SinkError, IndexFormatError) as exc:
            return PlainTextResponse(f"cannot read the events: {exc}\n", status_code=502)
        shown = [
            ReportEvent(event, None, store.link(event.snapshot_key), f"document?key={quote(event.document_key)}")
            for event in events
        ]
        body = render_report(shown, query.since, query.until, report_title(query), source, _controls(request))
        return HTMLResponse(body)

    def document(request: Request) -> Response:
        key = request.query_params.get("key", "")
        if not key.endswith(".json") or not key.startswith(store.prefix):
            return PlainTextResponse("not an event document\n", status_code=404)
        try:
            return JSONResponse(json.loads(store.get(key)))
        except ObjectMissingError:
            return PlainTextResponse("no such event\n", status_code=404)
        except (SinkError, ValueError) as exc:
            return PlainTextResponse(f"cannot read the event: {exc}\n", status_code=502)

    def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/document", document, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def query_from_params(params: Mapping[str, str], now: datetime) -> EventQuery:
    """The page's address as a query, read exactly as `events list` reads its flags."""
    night = params.get("night")
    args = argparse.Namespace(
        namespace=params.get("namespace") or None,
        job=params.get("job") or None,
        node=None,  # the node filter runs in the page, like the class filter
        classes=[],
        since=params.get("since") or (None if night is not None else DEFAULT_SINCE),
        until=params.get("until") or None,
        night=False if night is None else (night or None),
        min_confidence=float(params.get("min_confidence") or 0.0),
    )
    return query_from_args(args, now)


def _controls(request: Request) -> str:
    def field(name: str, label: str, placeholder: str) -> str:
        value = html.escape(request.query_params.get(name, ""), quote=True)
        return (
            f'<label>{label} <input name="{name}" value="{value}" placeholder="{placeholder}" size="16"></label> '
        )

    return (
        '<form class="range" method="get" action="">'
        + field("since", "since", DEFAULT_SINCE)
        + field("until", "until", "now")
        + field("namespace", "namespace", "any")
        + field("job", "job", "any")
        + field("min_confidence", "min. confidence", "0")
        + '<button type="submit">show</button></form>'
    )
