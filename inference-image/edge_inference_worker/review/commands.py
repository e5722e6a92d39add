"""`edge-inference events ...`: list, show, report, watch and reindex events in a bucket or folder.

    edge-inference events list s3://events/site-a --job lobby --night --class person
    edge-inference events show s3://events/site-a 3f1c0a9be2d45e6f7a81 --open
    edge-inference events report s3://events/site-a --job lobby --night -o last-night.html
    edge-inference events watch s3://events/site-a --class person
    edge-inference events reindex s3://events/site-a

Endpoint and credentials as for `detect`: `--s3-endpoint` or EDGE_INFERENCE_S3_ENDPOINT, keys from
EDGE_INFERENCE_S3_ACCESS_KEY / EDGE_INFERENCE_S3_SECRET_KEY.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from edge_inference_api.models import DirectorySink

from ..config import ConfigError, add_s3_arguments, credentials_from_env, sink_from_out
from ..exit_codes import EXIT_EVENTS_FAILED, EXIT_OK, EXIT_USAGE
from ..sinks import SinkError
from .index import EventSummary, IndexFormatError, summary_as_dict
from .query import EventQuery, QueryError, find_events, read_document, rebuild_index, scan_prefix
from .report import ReportEvent, data_uri, render_report
from .store import EventStore, ObjectMissingError, store_from_sink
from .timerange import TimeFormatError, parse_instant, parse_night

FORMATS = ("table", "jsonl", "csv")
TABLE_COLUMNS = ("start", "site", "node", "class", "peak", "frames", "id", "source")


def add_events_commands(events: argparse.ArgumentParser) -> None:
    """The `events` subcommands and their flags."""
    commands = events.add_subparsers(dest="events_command", required=True)
    listing = _command(commands, "list", "events matching the filters, as a table, JSON lines or CSV")
    _add_filters(listing)
    listing.add_argument("--format", choices=FORMATS, default="table")
    show = _command(commands, "show", "one event's document, and its snapshot saved (or opened)")
    show.add_argument("event_id", metavar="ID", help="the event id (or its document's key)")
    _add_place(show)
    show.add_argument("--snapshot", metavar="FILE", help="where to save the snapshot (default: ./<ID>.jpg)")
    show.add_argument("--open", action="store_true", help="open the snapshot in the default viewer")
    report = _command(commands, "report", "a self-contained HTML report (opens from the file, no network)")
    _add_filters(report)
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    watch = _command(commands, "watch", "print events as they arrive (Ctrl-C stops)")
    _add_filters(watch)
    watch.add_argument("--format", choices=FORMATS[1:] + ("table",), default="jsonl")
    watch.add_argument("--interval", type=float, default=10.0, help="seconds between looks at the bucket")
    watch.add_argument(
        "--lookback", type=float, default=6.0, help="hours back an event may start and still be reported when it lands"
    )
    reindex = _command(commands, "reindex", "write the index for events already in the bucket (a backfill)")
    _add_place(reindex)
    serve = _command(commands, "serve", "the read-only events browser: the report, live, over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--public-endpoint", metavar="URL",
        help="http(s)://host[:port] of S3 as users' browsers reach it, for snapshot links (default: --s3-endpoint)",
    )


def run_events_command(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO | None = None) -> int:
    """Run one `events` subcommand; returns the exit code (errors as one line on stderr)."""
    out = out or sys.stdout
    try:
        store = _store(args, environ)
        handler = _HANDLERS[args.events_command]
        return handler(args, store, out)
    except (ConfigError, TimeFormatError, QueryError) as exc:
        print(f"edge-inference events: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SinkError, IndexFormatError) as exc:
        print(f"edge-inference events: {exc}", file=sys.stderr)
        return EXIT_EVENTS_FAILED


def query_from_args(args: argparse.Namespace, now: datetime) -> EventQuery:
    """The filters of a command line as an `EventQuery`."""
    since = until = None
    if getattr(args, "night", False) is not False:
        since, until = parse_night(args.night, now)
    if getattr(args, "since", None):
        since = parse_instant(args.since, now)
    if getattr(args, "until", None):
        until = parse_instant(args.until, now)
    elif since is not None and until is None:
        until = now
    if since is not None and until is not None and since >= until:
        raise TimeFormatError(f"the time range is empty: {since.isoformat()} is not before {until.isoformat()}")
    return EventQuery(
        namespace=args.namespace,
        job=args.job,
        node=args.node,
        classes=frozenset(getattr(args, "classes", None) or ()),
        since=since.astimezone(UTC) if since else None,
        until=until.astimezone(UTC) if until else None,
        min_confidence=getattr(args, "min_confidence", 0.0),
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("source", help="s3://bucket/prefix (as `detect --out`) or a local events folder")
    add_s3_arguments(parser)
    return parser


def _add_place(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", help="only this namespace")
    parser.add_argument("--job", help="only this InferenceJob (a site); needs --namespace to narrow listings")
    parser.add_argument("--node", help="only this node")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    _add_place(parser)
    parser.add_argument(
        "--class", dest="classes", action="append", metavar="CLASS", help="only this class (repeatable)"
    )
    parser.add_argument(
        "--since", help="events that start at or after: ISO 8601 (local time unless Z/offset), or 12h (ago)"
    )
    parser.add_argument("--until", help="... and before (default: now when --since is given)")
    parser.add_argument(
        "--night", nargs="?", default=False, metavar="DATE",
        help="18:00 to 06:00 local time: last night, or the night that starts on DATE",
    )
    parser.add_argument("--min-confidence", type=float, default=0.0, help="peak confidence at least this")
    parser.add_argument("--scan", action="store_true", help="list every event document instead of using the index")


def _store(args: argparse.Namespace, environ: Mapping[str, str]) -> EventStore:
    sink = sink_from_out(args.source, args, environ)
    if isinstance(sink, DirectorySink) and not Path(sink.path).is_dir():
        raise ConfigError(f"events folder {args.source} does not exist")
    credentials = credentials_from_env(environ)
    public = getattr(args, "public_endpoint", None)
    try:
        return store_from_sink(sink, credentials.access_key, credentials.secret_key, public)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _find(args: argparse.Namespace, store: EventStore, query: EventQuery) -> list[EventSummary]:
    return find_events(store, query, use_index=False if args.scan else None)


def _list(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    events = _find(args, store, query_from_args(args, datetime.now(UTC)))
    write_events(events, args.format, out, header=True)
    return EXIT_OK


def write_events(events: Iterable[EventSummary], form: str, out: TextIO, *, header: bool) -> None:
    """Events as a table, JSON lines or CSV (header: column names first, for table and CSV)."""
    rows = [summary_as_dict(event) | {"site": event.site} for event in events]
    if form == "jsonl":
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    elif form == "csv":
        writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS, lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
    else:
        cells = [[_cell(row[column]) for column in TABLE_COLUMNS] for row in rows]
        widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(TABLE_COLUMNS)]
        lines = ([list(TABLE_COLUMNS)] if header else []) + cells
        for line in lines:
            out.write("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip() + "\n")
    out.flush()


# The columns of `--format csv` (the fields of `summary_as_dict`, and the site).
_CSV_FIELDS = sorted({"class" if f.name == "cls" else f.name for f in fields(EventSummary)} | {"site"})


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def _show(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    key = _document_key(args, store)
    document = json.loads(store.get(key))
    out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    target = Path(args.snapshot or f"{document['id']}.jpg")
    target.write_bytes(store.get(document["snapshot"]["key"]))
    print(f"snapshot saved to {target}", file=sys.stderr)
    if args.open:
        webbrowser.open(target.resolve().as_uri())
    return EXIT_OK


def _document_key(args: argparse.Namespace, store: EventStore) -> str:
    """The key of the event's document: given as a key, or found by listing (keys only, no reads)."""
    if "/" in args.event_id:
        return args.event_id if args.event_id.endswith(".json") else f"{args.event_id}.json"
    query = EventQuery(namespace=args.namespace, job=args.job, node=args.node)
    suffix = f"/{args.event_id}.json"
    for key in store.keys(scan_prefix(store.prefix, query)):
        if key.endswith(suffix):
            return key
    raise ObjectMissingError("not_found", f"no event {args.event_id} under {scan_prefix(store.prefix, query) or '/'}")


def _report(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    query = query_from_args(args, datetime.now(UTC))
    events = [_embedded(store, event) for event in _find(args, store, query)]
    page = render_report(events, query.since, query.until, report_title(query), args.source)
    Path(args.output).write_text(page, encoding="utf-8")
    print(f"{len(events)} events written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _embedded(store: EventStore, event: EventSummary) -> ReportEvent:
    """An event with its document and its snapshot inside the page (a missing snapshot shows as such)."""
    try:
        image = data_uri(store.get(event.snapshot_key))
    except ObjectMissingError:
        image = None
    return ReportEvent(event, read_document(store, event), image)


def report_title(query: EventQuery) -> str:
    """'Events at <namespace>/<job> (node)': what the report covers."""
    place = "/".join(part for part in (query.namespace, query.job) if part) or "all sites"
    node = f" ({query.node})" if query.node else ""
    classes = f": {', '.join(sorted(query.classes))}" if query.classes else ""
    return f"Events at {place}{node}{classes}"


def _watch(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watch_events(store, args, out, stop, lambda: datetime.now(UTC))
    return EXIT_OK


def watch_events(
    store: EventStore, args: argparse.Namespace, out: TextIO, stop: threading.Event, clock: Callable[[], datetime]
) -> None:
    """Print every event that lands while watching, once; from `--since` (default: now) on."""
    started = clock()
    floor = query_from_args(args, started).since or started
    seen: set[str] = set()
    first = True
    while not stop.is_set():
        now = clock()
        lowest = max(floor, now - timedelta(hours=args.lookback))
        window = query_from_args(args, now)
        query = replace(window, since=lowest, until=now + timedelta(hours=1))
        fresh = [event for event in _find(args, store, query) if event.id not in seen]
        seen.update(event.id for event in fresh)
        write_events(fresh, args.format, out, header=first and args.format != "jsonl")
        first = first and not fresh
        stop.wait(args.interval)


def _reindex(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    written = rebuild_index(store, EventQuery(namespace=args.namespace, job=args.job, node=args.node))
    out.write(f"{written} index objects written\n")
    return EXIT_OK


def _serve(args: argparse.Namespace, store: EventStore, out: TextIO) -> int:
    import uvicorn

    from .browser import create_app

    uvicorn.run(create_app(store, args.source), host=args.host, port=args.port, log_level="info")
    return EXIT_OK


_HANDLERS: dict[str, Callable[[argparse.Namespace, EventStore, TextIO], int]] = {
    "list": _list,
    "show": _show,
    "report": _report,
    "watch": _watch,
    "reindex": _reindex,
    "serve": _serve,
}
