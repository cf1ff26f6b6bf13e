"""The pages for people: the analyses list at ``/``, Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

A real uvicorn server holds five analyses started through the API (the demo source): a
healthy and a regressed past window on the stored config ``checkout``, a running and a
cancelled live one on ``payments``, and an inline-config one whose canary scope is HTML. Then:

- ``/`` in headless Chromium lists them with their verdict badges and report links, filtered
  by status and by config; its screenshot shows the pass and fail badges' colours; hostile
  strings are text, never markup; paging keeps the filters; a bad status, limit or offset is a
  422 JSON naming the query field.
- ``/docs`` renders Swagger UI's operations and ``/redoc`` ReDoc's, with the browser cut off
  from everything but 127.0.0.1: names do not resolve, any other request goes to a recording
  proxy (which answers 502), and Chromium's net log lists every URL it asked for. Neither the
  proxy nor the log sees anything but the service. A control run shows the harness catches a
  page that does reach out (FastAPI's stock docs page, which loads Swagger UI from a CDN).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from browser import CHATTER_SINK, RecordingProxy, chromium_run, netlog_urls, offline_args
from browser import chromium as chromium  # the fixture
from fastapi.openapi.docs import get_swagger_ui_html
from live_server import LiveServer, settings_for
from PIL import Image

from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.http.routes.pages import DOCS_CONTENT_SECURITY_POLICY
from kayenta_py.reports.templates import CONTENT_SECURITY_POLICY, VERDICT_COLORS

CHECKOUT: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))
HOSTILE_SCOPE = 'canary"><script>alert(1)</script><b>&amp;'


@dataclass
class Site:
    """The server and the ids of its analyses, by role."""

    url: str
    ids: dict[str, str]


@dataclass
class ListedRow:
    attrs: dict[str, str]
    text: str = ""
    links: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    """The rows of the analyses table, every tag seen, the links and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[ListedRow] = []
        self.tags: list[str] = []
        self.links: dict[str, str] = {}  # rel -> href
        self.options: list[str] = []
        self.text: list[str] = []
        self._row: ListedRow | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "tr" and "data-id" in values:
            self._row = ListedRow(values)
            self.rows.append(self._row)
        if tag == "a" and "href" in values:
            if self._row is not None:
                self._row.links.append(values["href"])
            if "rel" in values:
                self.links[values["rel"]] = values["href"]
        if tag == "option":
            self.options.append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None:
            self._row.text += data


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A real server (no tokens: a browser sends none) with five analyses in four states."""
    with LiveServer(settings_for(tmp_path_factory.mktemp("pages"))) as server:
        client = httpx.Client(base_url=server.url, timeout=30)
        for name in ("checkout", "payments"):
            stored = client.post("/api/v1/configs", json={"name": name, "config": {**CHECKOUT, "name": name}})
            assert stored.status_code == 201, stored.text
        start = float(math.floor(time.time()) - 900)
        past = {"source": "demo", "start": rfc3339(start), "end": rfc3339(start + 540), "step": 10}
        live = {"source": "demo", "lifetime": "PT1H", "interval": "PT10M", "step": 10}
        named = {"checkout": {"config_name": "checkout"}, "payments": {"config_name": "payments"}}
        bodies = {
            "healthy": {**named["checkout"], "baseline_scope": "baseline", "canary_scope": "canary", **past},
            "regressed": {**named["checkout"], "baseline_scope": "b", "canary_scope": "c-regressed", **past},
            "running": {**named["payments"], "baseline_scope": "v1", "canary_scope": "v2", **live},
            "cancelled": {**named["payments"], "baseline_scope": "v1", "canary_scope": "v3", **live},
            "hostile": {"config": CHECKOUT, "baseline_scope": "b", "canary_scope": HOSTILE_SCOPE, **past},
        }
        ids = {}
        for role, body in bodies.items():
            created = client.post("/api/v1/analyses", json=body)
            assert created.status_code == 201, created.text
            ids[role] = created.json()["id"]
        cancelled = client.post(f"/api/v1/analyses/{ids['cancelled']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        deadline = time.monotonic() + 60
        for role in ("healthy", "regressed", "hostile"):
            while not client.get(f"/api/v1/analyses/{ids[role]}/verdict").json()["complete"]:
                assert time.monotonic() < deadline, f"the {role} analysis did not complete in 60 s"
                time.sleep(0.1)
        yield Site(server.url, ids)


def analyses(site: Site) -> dict[str, dict[str, Any]]:
    """The API's view of every analysis, by id."""
    listed = httpx.get(f"{site.url}/api/v1/analyses", timeout=30).json()
    return {item["id"]: item for item in listed["items"]}


def dom(binary: str, url: str, tmp: Path, *, budget_ms: int = 5000) -> tuple[str, list[str], set[str]]:
    """Chromium's DOM of ``url`` with the network cut off; also the proxy's record and the net log."""
    netlog = tmp / "netlog.json"
    with RecordingProxy() as proxy:
        run = chromium_run(
            binary,
            tmp / "profile",
            *offline_args(proxy, netlog),
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        requests = list(proxy.requests)
    return run.stdout, requests, netlog_urls(netlog)


def assert_stayed_home(site: Site, requests: list[str], urls: set[str], page: str) -> None:
    """Nothing reached the proxy; every URL asked for is the service's (or the browser's sink)."""
    assert requests == [], f"requests that would have left the machine: {requests}"
    foreign = {u for u in urls if not u.startswith((site.url + "/", CHATTER_SINK))}
    assert foreign == set(), f"URLs outside the service: {foreign}"
    assert page in urls  # the log did record the page itself


# ---------------------------------------------------------------- the analyses page


def test_chromium_lists_every_analysis_with_badges_and_report_links(
    chromium: str, site: Site, tmp_path: Path
) -> None:
    page, requests, urls = dom(chromium, f"{site.url}/", tmp_path)
    assert_stayed_home(site, requests, urls, f"{site.url}/")
    parser = parse(page)
    rows = {row.attrs["data-id"]: row for row in parser.rows}
    api = analyses(site)
    assert set(rows) == set(site.ids.values()) == set(api)
    assert [row.attrs["data-id"] for row in parser.rows] == list(api)  # newest first, like the API
    for analysis_id, row in rows.items():
        verdict = api[analysis_id]["verdict"]
        assert row.attrs["data-verdict"] == verdict
        assert verdict.upper() in row.text and api[analysis_id]["status"] in row.text
        assert row.links == [f"/api/v1/analyses/{analysis_id}/report"]
        report = httpx.get(f"{site.url}{row.links[0]}", timeout=30)
        assert report.status_code == 200 and analysis_id in report.text
    verdicts = {role: api[site.ids[role]]["verdict"] for role in site.ids}
    assert verdicts["regressed"] == "fail" and verdicts["cancelled"] == "fail"
    assert verdicts["healthy"] == "pass" and verdicts["running"] == "pending"
    assert "checkout" in rows[site.ids["healthy"]].text and "inline" in rows[site.ids["hostile"]].text
    # the hostile scope is text in the browser's DOM, never markup
    assert "script" not in parser.tags and "b" not in parser.tags
    assert HOSTILE_SCOPE in rows[site.ids["hostile"]].text
    assert {"", "checkout", "payments"} <= set(parser.options)


def test_chromium_filters_by_status_and_config(chromium: str, site: Site, tmp_path: Path) -> None:
    page, requests, urls = dom(chromium, f"{site.url}/?status=completed&config=checkout", tmp_path)
    assert_stayed_home(site, requests, urls, f"{site.url}/?status=completed&config=checkout")
    assert {row.attrs["data-id"] for row in parse(page).rows} == {site.ids["healthy"], site.ids["regressed"]}
    expected = {
        "status=running": {"running"},
        "status=cancelled": {"cancelled"},
        "status=completed": {"healthy", "regressed", "hostile"},
        "status=failed": set(),
        "config=payments": {"running", "cancelled"},
        "status=cancelled&config=payments": {"cancelled"},
        "status=&config=": set(site.ids),  # the form's "any"
    }
    for query, roles in expected.items():
        answer = httpx.get(f"{site.url}/?{query}", timeout=30)
        assert answer.status_code == 200, answer.text
        listed = {row.attrs["data-id"] for row in parse(answer.text).rows}
        assert listed == {site.ids[r] for r in roles}, query
        if not roles:
            assert "No analyses match." in answer.text


def test_screenshot_shows_the_verdict_badges(chromium: str, site: Site, tmp_path: Path) -> None:
    png = tmp_path / "list.png"
    shot = chromium_run(chromium, tmp_path / "profile", f"--screenshot={png}", f"{site.url}/")
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    with Image.open(png) as opened:
        pixels = np.asarray(opened.convert("RGB"), dtype=np.int16).reshape(-1, 3)
    for verdict in ("pass", "fail", "pending"):
        color = VERDICT_COLORS[verdict]
        rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        painted = int(np.all(np.abs(pixels - rgb) <= 2, axis=1).sum())
        assert painted > 300, f"only {painted} pixels of the {verdict} badge's {color}"


def test_hostile_filter_values_are_text(site: Site) -> None:
    answer = httpx.get(f"{site.url}/", params={"config": '"><script>x</script>'}, timeout=30)
    assert answer.status_code == 200
    parser = parse(answer.text)
    assert "script" not in parser.tags and parser.rows == []
    assert '"><script>x</script>' in parser.options  # kept as the chosen value, escaped
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_paging_keeps_the_filters(site: Site) -> None:
    first = httpx.get(f"{site.url}/?limit=2", timeout=30)
    parser = parse(first.text)
    assert len(parser.rows) == 2 and "prev" not in parser.links
    assert parser.links["next"] == "/?limit=2&offset=2"
    seen = [row.attrs["data-id"] for row in parser.rows]
    page = parser
    while "next" in page.links:
        page = parse(httpx.get(site.url + page.links["next"], timeout=30).text)
        seen += [row.attrs["data-id"] for row in page.rows]
    assert seen == list(analyses(site)) and page.links["prev"] == "/?limit=2&offset=2"
    filtered = parse(httpx.get(f"{site.url}/?status=completed&limit=1&offset=1", timeout=30).text)
    assert filtered.links == {
        "prev": "/?status=completed&limit=1&offset=0",
        "next": "/?status=completed&limit=1&offset=2",
    }
    beyond = httpx.get(f"{site.url}/?offset=1000", timeout=30)
    assert beyond.status_code == 200 and "No analyses match." in beyond.text
    assert parse(beyond.text).links["prev"] == "/?limit=50&offset=950"


@pytest.mark.parametrize(
    ("query", "field_name"),
    [
        ("status=done", "status"),
        ("status=RUNNING", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("offset=1000000001", "offset"),
        ("limit=ten", "limit"),
        ("config=" + "x" * 201, "config"),
    ],
)
def test_bad_queries_are_422_json_naming_the_field(site: Site, query: str, field_name: str) -> None:
    answer = httpx.get(f"{site.url}/?{query}", timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", field_name]]


# ---------------------------------------------------------------- the API docs, offline


def test_swagger_ui_renders_offline(chromium: str, site: Site, tmp_path: Path) -> None:
    page, requests, urls = dom(chromium, f"{site.url}/docs", tmp_path)
    assert_stayed_home(site, requests, urls, f"{site.url}/docs")
    assert f"{site.url}/static/docs/swagger-ui-bundle.js" in urls and f"{site.url}/openapi.json" in urls
    assert page.count('class="opblock opblock-') >= 10  # one block per operation, drawn by Swagger UI
    assert 'data-path="/api/v1/analyses/{analysis_id}/verdict"' in page
    answer = httpx.get(f"{site.url}/docs", timeout=30)
    assert answer.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
    assert "cdn" not in answer.text and "https://" not in answer.text


def test_redoc_renders_offline(chromium: str, site: Site, tmp_path: Path) -> None:
    page, requests, urls = dom(chromium, f"{site.url}/redoc", tmp_path)
    assert_stayed_home(site, requests, urls, f"{site.url}/redoc")
    assert f"{site.url}/static/docs/redoc.standalone.js" in urls
    assert 'operation/create_analysis_api_v1_analyses_post"' in page  # drawn by ReDoc from the document
    assert "Start a canary analysis" in page
    answer = httpx.get(f"{site.url}/redoc", timeout=30)
    assert "fonts.googleapis.com" not in answer.text and "https://" not in answer.text


def test_the_harness_catches_a_page_that_reaches_out(chromium: str, site: Site, tmp_path: Path) -> None:
    """Control: FastAPI's stock docs page (Swagger UI from a CDN) is caught by proxy and net log."""
    stock = tmp_path / "stock-docs.html"
    stock.write_bytes(get_swagger_ui_html(openapi_url=f"{site.url}/openapi.json", title="stock").body)
    page, requests, urls = dom(chromium, stock.as_uri(), tmp_path, budget_ms=2000)
    assert any("cdn.jsdelivr.net" in r for r in requests), requests
    assert any("cdn.jsdelivr.net" in u for u in urls)
    assert 'class="opblock' not in page  # and without its CDN it stays blank


def test_with_tokens_the_list_needs_a_read_token_and_the_docs_do_not(tmp_path: Path) -> None:
    """``/`` shows analyses, so it needs the read scope like every GET; the docs show only the schema."""
    settings = settings_for(tmp_path, api_tokens="write:pages-writer,read:pages-reader")
    with LiveServer(settings) as server:
        anonymous = httpx.get(f"{server.url}/", timeout=30)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/json")
        wrong = httpx.get(f"{server.url}/", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
        reader = httpx.get(f"{server.url}/", headers={"Authorization": "Bearer pages-reader"}, timeout=30)
        assert reader.status_code == 200 and "No analyses match." in reader.text
        assets = ("/static/docs/swagger-ui-bundle.js", "/static/docs/redoc.standalone.js")
        for path in ("/docs", "/redoc", *assets):
            assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path
