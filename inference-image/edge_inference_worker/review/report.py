"""The events report: one self-contained HTML page. Pure (the caller fetches what it shows).

The same page serves two uses: `edge-inference events report` writes it to a file with every
snapshot embedded as a `data:` URI (it opens with no server and no network), and the events
browser serves it live with presigned links to the snapshots. It shows the events grouped by
site and node as thumbnails, a timeline per node, the counts per class per hour, and each event's
details in a dialog a click away; the class and node filters run in the page itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .index import EventSummary, hours_between, parse_time, summary_as_dict


@dataclass(frozen=True)
class ReportEvent:
    """One event as the page shows it: its summary, its document (details) and its snapshot's URL.

    Without the document in the page, `document_url` says where the details can be fetched.
    """

    summary: EventSummary
    document: Mapping | None
    image_url: str | None
    document_url: str | None = None


def data_uri(jpeg: bytes) -> str:
    """A snapshot embedded in the page itself."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def render_report(
    events: Sequence[ReportEvent],
    since: datetime | None,
    until: datetime | None,
    title: str,
    source: str,
    controls: str = "",
) -> str:
    """The whole page as a string (UTF-8 HTML5, no external resources); `controls`: HTML put above the filters."""
    since, until = _span(events, since, until)
    body = "\n".join(
        [
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">{_e(source)} &middot; {_e(_utc(since))} &ndash; {_e(_utc(until))} (UTC) &middot; '
            f'<span id="shown">{len(events)}</span> of {len(events)} events</p>',
            controls,
            _filters(events),
            "<h2>Timeline per node</h2>",
            _timelines(events, since, until),
            "<h2>Events per class per hour (UTC)</h2>",
            _counts(events, since, until),
            "<h2>Snapshots by site and node</h2>",
            _thumbnails(events),
            _DIALOG,
            _data_script(events),
            f"<script>{_SCRIPT}</script>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _span(events: Sequence[ReportEvent], since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    starts = [parse_time(event.summary.start) for event in events if event.summary.start]
    first = since or (min(starts) if starts else datetime.now().astimezone())
    last = until or (max(starts) + timedelta(seconds=1) if starts else first + timedelta(hours=1))
    return first, last


def _filters(events: Sequence[ReportEvent]) -> str:
    def select(name: str, values: set[str]) -> str:
        options = "".join(f'<option value="{_e(value)}">{_e(value)}</option>' for value in sorted(values))
        return f'<label>{name} <select id="filter-{name}"><option value="">all</option>{options}</select></label>'

    classes = {event.summary.cls for event in events}
    nodes = {event.summary.node for event in events}
    return f'<div class="filters">{select("class", classes)} {select("node", nodes)}</div>'


def _timelines(events: Sequence[ReportEvent], since: datetime, until: datetime) -> str:
    span = max((until - since).total_seconds(), 1.0)
    rows = []
    for (site, node), group in _by_site_and_node(events).items():
        marks = []
        for event in group:
            if event.summary.start is None:
                continue
            left = 100.0 * (parse_time(event.summary.start) - since).total_seconds() / span
            marks.append(
                f'<a href="#" class="mark event-ref" data-id="{_e(event.summary.id)}" '
                f'data-class="{_e(event.summary.cls)}" data-node="{_e(node)}" '
                f'style="left:{min(max(left, 0.0), 99.5):.3f}%;background:{_colour(event.summary.cls)}" '
                f'title="{_e(event.summary.cls)} {_e(event.summary.start)}"></a>'
            )
        rows.append(
            f'<div class="timeline-row" data-node="{_e(node)}"><span class="who">{_e(site)} / {_e(node)}</span>'
            f'<div class="track">{"".join(marks)}</div></div>'
        )
    return f'<div class="timelines">{"".join(rows) or "<p>No events.</p>"}</div>'


def _counts(events: Sequence[ReportEvent], since: datetime, until: datetime) -> str:
    counts = Counter(
        (parse_time(event.summary.start).strftime("%Y-%m-%d %H:00"), event.summary.cls)
        for event in events
        if event.summary.start
    )
    classes = sorted({cls for _, cls in counts})
    hours = [hour.strftime("%Y-%m-%d %H:00") for hour in hours_between(since, until)]
    if not classes:
        return "<p>No events.</p>"
    head = "".join(f"<th>{_e(cls)}</th>" for cls in classes)
    rows = [
        f"<tr><th>{hour}</th>" + "".join(f"<td>{counts[(hour, cls)] or ''}</td>" for cls in classes) + "</tr>"
        for hour in hours
        if any(counts[(hour, cls)] for cls in classes)
    ]
    totals = "".join(f"<td>{sum(counts[(hour, cls)] for hour in hours)}</td>" for cls in classes)
    return (
        f'<table class="counts" id="counts"><thead><tr><th>hour</th>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody><tfoot><tr><th>total</th>{totals}</tr></tfoot></table>'
    )


def _thumbnails(events: Sequence[ReportEvent]) -> str:
    sections = []
    for (site, node), group in _by_site_and_node(events).items():
        cards = "".join(_card(event) for event in group)
        sections.append(
            f'<section class="node" data-node="{_e(node)}"><h3>{_e(site)} &middot; {_e(node)}</h3>'
            f'<div class="cards">{cards}</div></section>'
        )
    return "".join(sections) or "<p>No events.</p>"


def _card(event: ReportEvent) -> str:
    summary = event.summary
    image = '<div class="noimg">no snapshot</div>'
    if event.image_url:
        image = f'<img src="{_e(event.image_url)}" alt="{_e(summary.cls)}">'
    return (
        f'<a href="#" class="card event event-ref" data-id="{_e(summary.id)}" data-class="{_e(summary.cls)}" '
        f'data-node="{_e(summary.node)}">{image}<span class="caption">'
        f'<b style="color:{_colour(summary.cls)}">{_e(summary.cls)}</b> {summary.peak:.2f}<br>'
        f"{_e(_short_time(summary.start))}</span></a>"
    )


def _by_site_and_node(events: Sequence[ReportEvent]) -> dict[tuple[str, str], list[ReportEvent]]:
    groups: dict[tuple[str, str], list[ReportEvent]] = {}
    for event in sorted(events, key=lambda e: (e.summary.site, e.summary.node, e.summary.start or "", e.summary.id)):
        groups.setdefault((event.summary.site, event.summary.node), []).append(event)
    return groups


def _data_script(events: Sequence[ReportEvent]) -> str:
    data = {
        event.summary.id: {
            "summary": summary_as_dict(event.summary),
            "document": event.document,
            "documentUrl": event.document_url,
        }
        for event in events
    }
    # `</` would end the script element early; JSON allows the escaped form.
    text = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return f'<script type="application/json" id="events-data">{text}</script>'


def _colour(cls: str) -> str:
    """A stable colour per class, so a class looks the same in every report."""
    hue = int(hashlib.sha256(cls.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue},70%,40%)"


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _short_time(start: str | None) -> str:
    return start.replace("T", " ")[:19] if start else "time unknown"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0}.meta{color:#555}
.filters label{margin-right:1em}
.timeline-row{display:flex;align-items:center;margin:2px 0}
.who{width:16em;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{position:relative;flex:1;height:14px;background:#eee;border-radius:3px}
.mark{position:absolute;top:1px;width:6px;height:12px;border-radius:2px}
table.counts{border-collapse:collapse}
table.counts td,table.counts th{border:1px solid #ccc;padding:2px 8px;text-align:right}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{display:block;width:200px;text-decoration:none;color:inherit;
border:1px solid #ddd;border-radius:4px;overflow:hidden}
.card img{width:200px;height:auto;display:block}.noimg{height:112px;background:#ddd}
.caption{display:block;padding:4px;font-size:12px}
.hidden{display:none!important}
dialog{max-width:90vw}dialog img{max-width:100%;height:auto}
dialog table td{padding:1px 8px;vertical-align:top;font-family:monospace;font-size:12px}
"""

_DIALOG = """<dialog id="details"><form method="dialog"><button>close</button></form>
<img id="details-image" alt="snapshot"><table id="details-table"></table></dialog>"""

# Filters hide cards, timeline marks and empty nodes; a click on a card or mark opens its details.
_SCRIPT = """
const data = JSON.parse(document.getElementById('events-data').textContent);
const byClass = document.getElementById('filter-class'), byNode = document.getElementById('filter-node');
function applyFilters() {
  let shown = 0;
  document.querySelectorAll('.event-ref').forEach(el => {
    const ok = (!byClass.value || el.dataset.class === byClass.value)
      && (!byNode.value || el.dataset.node === byNode.value);
    el.classList.toggle('hidden', !ok);
    if (ok && el.classList.contains('card')) shown++;
  });
  document.querySelectorAll('section.node, .timeline-row').forEach(el => {
    el.classList.toggle('hidden', !!byNode.value && el.dataset.node !== byNode.value);
  });
  document.getElementById('shown').textContent = shown;
}
function flatten(prefix, value, rows) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    Object.keys(value).sort().forEach(k => flatten(prefix ? prefix + '.' + k : k, value[k], rows));
  } else rows.push([prefix, Array.isArray(value) ? value.join(', ') : String(value)]);
  return rows;
}
function openDetails(id) {
  const item = data[id], card = document.querySelector('.card[data-id="' + id + '"] img');
  const image = document.getElementById('details-image'), table = document.getElementById('details-table');
  image.src = card ? card.src : '';
  table.replaceChildren();
  flatten('', item.document || item.summary, []).forEach(([k, v]) => {
    const row = table.insertRow(); row.insertCell().textContent = k; row.insertCell().textContent = v;
  });
  if (item.documentUrl) {
    const link = document.createElement('a');
    link.href = item.documentUrl; link.textContent = 'the whole document (JSON)';
    const row = table.insertRow(); row.insertCell().textContent = 'document'; row.insertCell().append(link);
  }
  document.getElementById('details').showModal();
}
byClass.addEventListener('change', applyFilters);
byNode.addEventListener('change', applyFilters);
document.querySelectorAll('.event-ref').forEach(el => el.addEventListener('click', ev => {
  ev.preventDefault(); openDetails(el.dataset.id);
}));
"""
