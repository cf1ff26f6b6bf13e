"""The analyses page at ``/``: a server-rendered list with filters, verdict badges and report links.

No script, font or fetch: the page obeys the reports' ``CONTENT_SECURITY_POLICY`` (inline styles
only). Every value shown is escaped. Test: ``tests/test_pages.py`` (in headless Chromium).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from kayenta_py._version import __version__
from kayenta_py.model.formatting import format_score, format_utc
from kayenta_py.reports.templates import _CSS, CONTENT_SECURITY_POLICY, VERDICT_COLORS, _e

_LISTING_CSS = """
form.filters { display: flex; gap: 12px; align-items: end; flex-wrap: wrap; margin: 0 0 16px; }
form.filters label { display: flex; flex-direction: column; font-size: 13px; color: #5f6b7a; }
.badge { display: inline-block; min-width: 64px; padding: 2px 8px; border-radius: 10px;
         color: #ffffff; font-weight: bold; text-align: center; font-size: 13px; }
nav.pages { margin: 12px 0; display: flex; gap: 16px; }
p.empty { color: #5f6b7a; }
"""


@dataclass(frozen=True)
class ListedAnalysis:
    """One row of the page: what the list shows of an analysis, and where its report is."""

    id: str
    status: str
    verdict: str
    score: float | None
    config_name: str | None
    baseline_scope: str
    canary_scope: str
    mode: str
    start_ts: float
    end_ts: float
    reason: str
    report_url: str


@dataclass(frozen=True)
class ListingPage:
    """One page of the list, and the filters that chose it."""

    rows: Sequence[ListedAnalysis]
    total: int
    offset: int
    limit: int
    status: str | None
    config: str | None
    statuses: Sequence[str]
    configs: Sequence[str]


def render_listing_html(page: ListingPage, *, links: Mapping[str, str]) -> str:
    """Return the analyses page: filters, one row per analysis (newest first), paging links."""
    body = _table(page.rows) if page.rows else '<p class="empty">No analyses match.</p>'
    nav = _paging(page)
    footer = " · ".join(f'<a href="{_e(url)}">{_e(name)}</a>' for name, url in links.items())
    shown = f"{page.offset + 1}-{page.offset + len(page.rows)} of {page.total}" if page.rows else "0"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<title>kayenta-py: analyses</title>
<style>{_CSS}{_LISTING_CSS}</style>
</head>
<body>
<header>
<h1>Canary analyses</h1>
<p class="sub">kayenta-py {_e(__version__)} · {_e(shown)} · newest first</p>
</header>
<main>
{_filters(page)}
{body}
{nav}
</main>
<footer>{footer}</footer>
</body>
</html>
"""


def _filters(page: ListingPage) -> str:
    """A GET form choosing a status and a config (no script: submitting reloads the page)."""

    def options(values: Sequence[str], chosen: str | None, every: str) -> str:
        items = [f'<option value=""{" selected" if chosen is None else ""}>{_e(every)}</option>']
        items += [
            f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v)}</option>' for v in values
        ]
        return "".join(items)

    return f"""<form class="filters" method="get" action="/">
<label>status <select name="status">{options(page.statuses, page.status, "any status")}</select></label>
<label>config <select name="config">{options(page.configs, page.config, "any config")}</select></label>
<input type="hidden" name="limit" value="{page.limit}">
<button type="submit">Filter</button>
</form>"""


def _table(rows: Sequence[ListedAnalysis]) -> str:
    lines = [
        "<table><thead><tr><th>verdict</th><th>score</th><th>config</th><th>baseline → canary</th>"
        "<th>mode</th><th>status</th><th>window (UTC)</th><th>reason</th><th>report</th></tr></thead><tbody>"
    ]
    for row in rows:
        color = VERDICT_COLORS.get(row.verdict, VERDICT_COLORS["pending"])
        lines.append(
            f'<tr data-id="{_e(row.id)}" data-verdict="{_e(row.verdict)}">'
            f'<td><span class="badge" style="background:{color}">{_e(row.verdict.upper())}</span></td>'
            f"<td>{_e(format_score(row.score))}</td>"
            f"<td>{_e(row.config_name or 'inline')}</td>"
            f"<td>{_e(row.baseline_scope)} → {_e(row.canary_scope)}</td>"
            f"<td>{_e(row.mode)}</td><td>{_e(row.status)}</td>"
            f"<td>{_e(format_utc(row.start_ts))} – {_e(format_utc(row.end_ts))}</td>"
            f"<td>{_e(row.reason[:300])}</td>"
            f'<td><a href="{_e(row.report_url)}">report</a></td></tr>'
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _paging(page: ListingPage) -> str:
    """Links to the previous and next pages, keeping the filters."""

    def href(offset: int) -> str:
        query = {"status": page.status, "config": page.config, "limit": page.limit, "offset": offset}
        return "/?" + urlencode({k: v for k, v in query.items() if v is not None})

    parts = []
    if page.offset > 0:
        parts.append(f'<a rel="prev" href="{_e(href(max(0, page.offset - page.limit)))}">← newer</a>')
    if page.offset + len(page.rows) < page.total:
        parts.append(f'<a rel="next" href="{_e(href(page.offset + page.limit))}">older →</a>')
    return f'<nav class="pages">{"".join(parts)}</nav>' if parts else ""
