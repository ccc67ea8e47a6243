"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The report is built from made-up Measurements (fixed seeds, timelines, load stages, a hostile endpoint name)
and opened from disk (``file://``). Checked: no console message of level error and no page error; not one
network request besides the document itself; sorting, text and verdict filtering change the visible rows;
opening an endpoint draws its charts (canvases with pixels on them); names holding markup or script render as
inert text; the incomparability callout (copyable commands), the "not judged, but looks worse" section and the
oversampled badge render. Full-page screenshots are kept in ``reports/artifacts/`` (git-ignored).

Chromium is ``$PARITY_CHROMIUM``, else ``chromium`` on the PATH, else ``/usr/bin/chromium`` (``make test``
installs Debian's package when it is missing). Playwright's own browser downloads are never used. The tests
skip, saying why, only when that browser cannot be started.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Request, Route, sync_playwright

from parity.judge.compare import compare
from parity.judge.result import EndpointResult, ParityResult, Verdict
from parity.model import (
    Endpoint,
    EndpointStats,
    GeneratorHealth,
    LatencyDistribution,
    LatencyKind,
    LoadStage,
    Measurement,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.report.context import RunMeta, plain_sentence, split_remedy
from parity.report.html import render_html
from parity.report.write import write_reports
from parity.sketch import LatencySketch

ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "artifacts"
META = RunMeta("0.1.0-test", "0123abc", datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "parity.toml", "parity compare a b")
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MINUTES = 10
INTERVAL_S = 10.0

HOSTILE = "GET /x<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
ORDERS = "GET /api/orders/{id}"
CREATE = "POST /api/orders"
USERS = "GET /api/users"
SEARCH = "GET /search"
HEALTH = "GET /health"
RARE = "GET /api/rare"

#: (key, baseline median ms, candidate median ms, requests, candidate errors)
ENDPOINTS = (
    (ORDERS, 100.0, 180.0, 3000, 3),
    (CREATE, 40.0, 40.0, 1500, 120),
    (HOSTILE, 20.0, 30.0, 1200, 0),
    (USERS, 30.0, 30.0, 2500, 0),
    (SEARCH, 60.0, 58.0, 2000, 0),
    (HEALTH, 2.0, 2.0, 3000, 0),
    (RARE, 50.0, 50.0, 12, 0),
)
#: Load stages of both replays (name, planned total req/s); ORDERS saturates early on the candidate.
STAGES = (("ramp-1", 50.0), ("ramp-2", 100.0), ("ramp-3", 150.0), ("ramp-4", 200.0))


def _draws(rng: random.Random, median_ms: float, n: int) -> list[float]:
    normal = NormalDist()
    return [median_ms * math.exp(0.3 * normal.inv_cdf(min(max(rng.random(), 1e-9), 1 - 1e-9))) for _ in range(n)]


def _stats(key: str, rng: random.Random, median_ms: float, n: int, errors: int, *, timeline: bool) -> EndpointStats:
    values = _draws(rng, median_ms, n)
    sketch = LatencySketch()
    for v in values:
        sketch.add(v)
    line = None
    if timeline:
        points = MINUTES * 60 // int(INTERVAL_S)
        per = [values[i::points] for i in range(points)]
        line = Timeline(
            start_s=START.timestamp(),
            interval_s=INTERVAL_S,
            counts=tuple(len(p) for p in per),
            avg_ms=tuple(sum(p) / len(p) if p else None for p in per),
            p95_ms=tuple(sorted(p)[int(0.95 * (len(p) - 1))] if p else None for p in per),
        )
    return EndpointStats(Endpoint.parse(key), n, errors, LatencyDistribution(sketch), timeline=line)


def _side(seed: int, candidate: bool) -> Measurement:
    rng = random.Random(seed)
    endpoints = tuple(
        _stats(key, rng, cand if candidate else base, n, errors if candidate else 0, timeline=True)
        for key, base, cand, n, errors in ENDPOINTS
    )
    t0 = START.timestamp()
    stages = []
    for i, (name, load) in enumerate(STAGES):
        growth = 1.0 + (0.8 * i * i if candidate else 0.1 * i)  # the candidate's p95 bends upward
        stage_stats = (_stats(ORDERS, rng, 100.0 * growth, 300, 0, timeline=False),)
        stages.append(LoadStage(name, t0 + 150 * i, t0 + 150 * (i + 1), load, stage_stats))
    return Measurement(
        Source(SourceKind.SYNTHETIC, "made up", service="orders-api", env="new" if candidate else "old"),
        Window(START, START + timedelta(minutes=MINUTES)),
        endpoints,
        latency_kind=LatencyKind.SERVER,
        pair_id="run-7",
        stages=tuple(stages),
        # the candidate's generator ran hot in the last stage (1 interval of 24: below the share that voids latency)
        generator=GeneratorHealth(t0, 25.0, (40.0,) * 20 + (60.0, 70.0, 80.0, 95.0), (0,) * 22 + (2, 9), 2, 13_212, 11)
        if candidate
        else None,
    )


@pytest.fixture(scope="module")
def sides() -> tuple[Measurement, Measurement]:
    return _side(1, candidate=False), _side(2, candidate=True)


@pytest.fixture(scope="module")
def result(sides: tuple[Measurement, Measurement]) -> ParityResult:
    return compare(*sides, names=("old.json", "new.json"))


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory, result: ParityResult, sides: tuple[Measurement, Measurement]
) -> Path:
    out = tmp_path_factory.mktemp("report")
    return write_reports(result, out, META, measurements=sides).index_html


def _chromium() -> str:
    return os.environ.get("PARITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=_chromium(), headless=True)
        except Error as exc:
            pytest.skip(f"chromium ({_chromium()}) cannot start: {str(exc).splitlines()[0]}")
        try:
            yield b
        finally:
            b.close()


class Visit:
    """A page on the report with everything it logged and requested."""

    def __init__(self, page: Page, document: str = "") -> None:
        self.page = page
        self.document = document
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.routed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning", "assert"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def route(self, route: Route) -> None:
        """Lets the report's own file through; records and refuses anything else."""
        if route.request.url == self.document:
            route.continue_()
        else:
            self.routed.append(route.request.url)
            route.abort()

    def visible_keys(self) -> list[str]:
        keys: list[str] = self.page.eval_on_selector_all(
            "#endpoints tbody tr.row:not([hidden]) button.open", "bs => bs.map(b => b.textContent)"
        )
        return keys


@pytest.fixture(scope="module")
def tab(browser: Browser, report: Path) -> Iterator[Visit]:
    """One browser tab for the module's tests (a new context per test costs ~0.4 s)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    v = Visit(context.new_page(), report.as_uri())
    context.route("**/*", v.route)  # any other request (http, https, file, data) lands here and is refused
    try:
        yield v
    finally:
        context.close()


@pytest.fixture
def visit(tab: Visit) -> Visit:
    """The report freshly loaded in the shared tab, with nothing logged or requested yet."""
    tab.problems.clear()
    tab.requests.clear()
    tab.routed.clear()
    tab.page.goto(tab.document)
    return tab


def _order(result: ParityResult) -> list[str]:
    return [e.endpoint.key for e in result.endpoints]


def test_loads_cleanly_without_any_network_request(visit: Visit, report: Path, result: ParityResult) -> None:
    assert visit.visible_keys() == _order(result)
    assert not visit.page.locator("#more").is_visible()  # every row fits the first page
    assert visit.page.inner_text("#shown") == f"{len(result.endpoints)} of {len(result.endpoints)} endpoint(s) match"
    visit.page.locator("#endpoints button.open").first.click()  # drawing charts must not fetch anything either
    visit.page.wait_for_selector("tr.detail canvas")
    assert visit.problems == []
    assert visit.requests == [report.as_uri()]
    assert visit.routed == []


def test_sorting_reorders_rows(visit: Visit, result: ParityResult) -> None:
    page = visit.page
    page.click("#endpoints th[data-sort=endpoint]")
    assert visit.visible_keys() == sorted(_order(result))
    assert page.get_attribute("#endpoints th[data-sort=endpoint]", "aria-sort") == "ascending"
    page.click("#endpoints th[data-sort=endpoint]")
    assert visit.visible_keys() == sorted(_order(result), reverse=True)
    # p95: worst ratio first, endpoints without a p95 last
    page.click("#endpoints th[data-sort=p95_ms]")
    ratios = {e.endpoint.key: (m.ratio if (m := e.metric("p95_ms")) else None) for e in result.endpoints}
    keys = visit.visible_keys()
    known = [k for k in keys if ratios[k] is not None]
    assert keys[: len(known)] == sorted(known, key=lambda k: -(ratios[k] or 0))
    assert keys[0] == ORDERS
    page.click("#endpoints th[data-sort=order]")
    assert visit.visible_keys() == _order(result)
    assert visit.problems == []


def test_filtering_by_text_and_verdict(visit: Visit, result: ParityResult) -> None:
    page = visit.page
    page.fill("#filter", "ORDERS")  # case-insensitive substring of the endpoint
    assert visit.visible_keys() == [k for k in _order(result) if "orders" in k.lower()]
    assert page.inner_text("#shown").startswith("2 of ")
    page.fill("#filter", "")
    verdicts = {e.endpoint.key: e.verdict for e in result.endpoints}
    page.click("button.toggle[data-verdict=pass]")
    assert page.get_attribute("button.toggle[data-verdict=pass]", "aria-pressed") == "false"
    assert visit.visible_keys() == [k for k in _order(result) if verdicts[k] is not Verdict.PASS]
    page.click("button.toggle[data-verdict=fail]")
    expected = [k for k in _order(result) if verdicts[k] not in (Verdict.PASS, Verdict.FAIL)]
    assert expected  # the fixture has marginal or inconclusive endpoints
    assert visit.visible_keys() == expected
    page.fill("#filter", "rare")
    assert visit.visible_keys() == [k for k in expected if "rare" in k]
    page.fill("#filter", "")
    page.click("button.toggle[data-verdict=pass]")
    page.click("button.toggle[data-verdict=fail]")
    assert visit.visible_keys() == _order(result)
    assert visit.problems == []


_CANVAS_INKED = """c => {
  const ctx = c.getContext('2d');
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let inked = 0;
  for (let i = 3; i < px.length; i += 4) { if (px[i] !== 0) { inked += 1; } }
  return {w: c.width, h: c.height, inked: inked};
}"""


def test_opening_an_endpoint_draws_its_charts(visit: Visit) -> None:
    page = visit.page
    row = page.locator("#endpoints tr.row", has=page.locator("button.open", has_text=ORDERS))
    row.locator("button.open").click()
    detail = page.locator("tr.detail")
    assert detail.count() == 1
    titles = detail.locator(".chart h4").all_inner_texts()
    assert titles == [
        "Percentiles (ms), baseline vs candidate",
        "Latency distribution (CDF)",
        "Latency over time (p95, ms)",
        "Request rate over time (req/s)",
        "Latency vs load (p95 per load stage)",
    ]
    canvases = detail.locator("canvas")
    assert canvases.count() == 5
    for i in range(5):
        figures = canvases.nth(i).evaluate(_CANVAS_INKED)
        assert figures["w"] > 100, figures
        assert figures["h"] > 100, figures
        assert figures["inked"] > 500, (titles[i], figures)
    # each metric first in one plain sentence, its verdict stated once (the badge); the statistics one click away
    says = detail.locator("ul.says li[data-metric=p95_ms]")
    assert says.locator(".badge").inner_text() == "FAIL"
    assert re.fullmatch(
        r"p95 went from [\d.]+ ms to [\d.]+ ms, 1\.\d× slower; this is beyond the 5% / 2 ms tolerance and not noise\.",
        says.locator(".sentence").inner_text(),
    )
    assert "Fisher exact test" not in detail.inner_text()  # the statistics: folded away
    detail.locator("details.more > summary").click()
    text = detail.inner_text()
    assert "significant at the run's 1% false-alarm rate, and beyond the 5% / 2 ms tolerance" in text
    assert "→ FAIL" not in text  # the verdict is not stated twice
    assert "Fisher exact test" in text  # the methods behind the figures
    # closing removes the detail and its charts; reopening draws them again
    row.locator("button.open").click()
    assert page.locator("tr.detail").count() == 0
    row.locator("button.open").click()
    assert page.locator("tr.detail canvas").count() == 5
    assert visit.problems == []


def test_hostile_names_render_as_inert_text(visit: Visit) -> None:
    page = visit.page
    assert HOSTILE in visit.visible_keys()
    assert page.locator("#endpoints button.open", has_text=HOSTILE).is_visible()
    assert page.locator("table.bottlenecks td.endpoint", has_text=HOSTILE).is_visible()
    page.locator("#endpoints button.open", has_text=HOSTILE).click()
    page.wait_for_selector("tr.detail canvas")
    page.fill("#filter", "<script>")
    assert visit.visible_keys() == [HOSTILE]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.evaluate("document.scripts.length") == 3  # data, Chart.js, the page's own script
    assert visit.problems == []


def test_screenshot_shows_the_banner_and_the_table(visit: Visit) -> None:
    page = visit.page
    assert page.locator("#verdict").is_visible()
    assert page.inner_text("#verdict .banner-verdict") == "FAIL"
    assert page.locator("#endpoints tbody tr.row").first.is_visible()
    page.locator("#endpoints button.open").first.click()
    page.wait_for_selector("tr.detail canvas")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    assert visit.problems == []


def test_report_without_measurements_still_renders(browser: Browser, tmp_path: Path, result: ParityResult) -> None:
    index = write_reports(result, tmp_path, META).index_html
    page = browser.new_page()
    try:
        v = Visit(page)
        page.goto(index.as_uri())
        page.locator("#endpoints button.open").first.click()
        detail = page.locator("tr.detail")
        assert detail.locator("canvas").count() == 2  # percentiles and latency vs load: from the result alone
        assert "not in this report" in detail.inner_text()
        assert v.problems == []
        assert v.requests == [index.as_uri()]
    finally:
        page.close()


def test_long_tables_come_in_pages(browser: Browser, tmp_path: Path, result: ParityResult) -> None:
    """Past 200 rows the table shows a page at a time (layout of 1,000 rows takes seconds); sorting and
    filtering still cover every endpoint."""
    keys = [f"GET /api/items{i:03d}" for i in range(230)]
    many = replace(
        result,
        endpoints=tuple(EndpointResult(Endpoint.parse(k), Verdict.PASS, (), (), 40, 40, None) for k in keys),
        bottlenecks=(),
        knees=(),
    )
    index = write_reports(many, tmp_path, META).index_html
    page = browser.new_page()
    try:
        v = Visit(page)
        page.goto(index.as_uri())
        assert len(v.visible_keys()) == 200
        assert page.inner_text("#more .count") == "Showing 200 of 230 matching endpoints."
        page.click("#endpoints th[data-sort=endpoint]")
        page.click("#endpoints th[data-sort=endpoint]")  # descending: the last keys come first
        assert v.visible_keys()[:2] == ["GET /api/items229", "GET /api/items228"]
        page.click("#more button.next")
        assert len(v.visible_keys()) == 230
        assert not page.locator("#more").is_visible()
        page.fill("#filter", "items00")
        assert v.visible_keys() == [f"GET /api/items00{i}" for i in range(9, -1, -1)]
        assert v.problems == []
    finally:
        page.close()


# --- what a verdict cannot rest on: the incomparability callout, endpoints that look worse, oversampling ---

RARE_SLOW = "GET /api/reports/{id}/export"
PAYROLL = "POST /api/payroll/calculations"
#: A file name that is markup: it reaches the page inside the remedies' commands.
HOSTILE_FILE = "access<img src=x onerror=window.__pwned=3>.json"


def _plain_side(
    endpoints: tuple[EndpointStats, ...], *, candidate: bool, kind: SourceKind, latency: LatencyKind, pair: str | None
) -> Measurement:
    return Measurement(
        Source(kind, "made up", service="orders-api", env="new" if candidate else "old", target="https://new.example"),
        Window(START, START + timedelta(minutes=MINUTES)),
        endpoints,
        latency_kind=latency,
        pair_id=pair,
        labels={"format": "nginx"} if kind is SourceKind.ACCESS_LOG else {"run_time_s": "600", "seed": "3"},
    )


@pytest.fixture(scope="module")
def incomparable_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ParityResult]:
    """An access-log baseline (server-side latency) against a replay (client-side): latency not comparable."""
    rng = random.Random(11)
    rows = ((ORDERS, 100.0, 110.0, 2000), (USERS, 30.0, 33.0, 2500), (HOSTILE, 20.0, 22.0, 1200))
    base = tuple(_stats(k, rng, b, n, 0, timeline=True) for k, b, _, n in rows)
    cand = tuple(_stats(k, rng, c, n, 0, timeline=True) for k, _, c, n in rows)
    sides = (
        _plain_side(base, candidate=False, kind=SourceKind.ACCESS_LOG, latency=LatencyKind.SERVER, pair=None),
        _plain_side(cand, candidate=True, kind=SourceKind.LOCUST_REPLAY, latency=LatencyKind.SERVICE_TIME, pair=None),
    )
    result = compare(*sides, names=(HOSTILE_FILE, "replay.json"))
    assert result.incomparable is not None
    out = tmp_path_factory.mktemp("incomparable")
    return write_reports(result, out, META, measurements=sides).index_html, result


@pytest.fixture(scope="module")
def looks_worse_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ParityResult]:
    """A concurrent A/B: a rare endpoint x1.5 slower on 12 requests (not judged, looks worse) and a payroll
    endpoint the replay oversampled x4."""
    rng = random.Random(12)

    def side(candidate: bool) -> Measurement:
        endpoints = (
            _stats(ORDERS, rng, 100.0, 2000, 0, timeline=True),
            _stats(USERS, rng, 30.0, 2500, 0, timeline=True),
            _stats(RARE_SLOW, rng, 75.0 if candidate else 50.0, 12, 0, timeline=True),
            replace(_stats(PAYROLL, rng, 300.0, 400, 0, timeline=True), load_factor=4.0),
        )
        return _plain_side(
            endpoints, candidate=candidate, kind=SourceKind.SYNTHETIC, latency=LatencyKind.SERVER, pair="ab-12"
        )

    sides = (side(False), side(True))
    result = compare(*sides)
    assert [e.endpoint.key for e in result.unjudged_looking_worse] == [RARE_SLOW]
    out = tmp_path_factory.mktemp("looks-worse")
    return write_reports(result, out, META, measurements=sides).index_html, result


@pytest.fixture
def isolated(browser: Browser) -> Iterator[Callable[[Path], Visit]]:
    """Opens a report in a fresh context whose every other request is refused and recorded."""
    contexts = []

    def open_report(index: Path) -> Visit:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        v = Visit(context.new_page(), index.as_uri())
        context.route("**/*", v.route)
        v.page.goto(v.document)
        return v

    try:
        yield open_report
    finally:
        for context in contexts:
            context.close()


def test_incomparability_callout_renders(
    isolated: Callable[[Path], Visit], incomparable_report: tuple[Path, ParityResult]
) -> None:
    index, result = incomparable_report
    assert result.incomparable is not None
    visit = isolated(index)
    page = visit.page
    callout = page.locator("#incomparable")
    assert callout.is_visible()
    assert page.inner_text("#incomparable .callout-title") == "Latency not comparable: neither passed nor failed"
    # above the fold: right under the verdict banner
    assert (callout.bounding_box() or {"y": 1e9})["y"] < 900
    commands = page.locator("#incomparable ol.remedies code").all_inner_texts()
    assert commands == [split_remedy(r)[0] for r in result.incomparable.remedies]
    assert HOSTILE_FILE in commands[0]  # a file name that is markup stays text
    assert page.locator("#incomparable button.copy").count() == len(commands)
    page.locator("#incomparable button.copy").first.click()
    page.wait_for_function("document.querySelector('#incomparable button.copy').textContent !== 'Copy'")
    assert page.inner_text("#incomparable button.copy >> nth=0") in ("Copied", "Selected")
    assert page.evaluate("window.getSelection().toString()") == commands[0]  # selected either way
    # metric cells of latency say "incomparable", throughput "shown": not a grey inconclusive
    first_row = page.locator("#endpoints tr.row").first
    assert first_row.locator("td.metric.gate-incomparable .gate").first.inner_text().lower() == "incomparable"
    assert first_row.locator("td.metric.gate-shown .gate").inner_text().lower() == "shown"
    assert first_row.locator("td.metric.verdict-inconclusive").count() == 0
    first_row.locator("button.open").click()
    detail = page.locator("tr.detail")
    detail.locator("canvas").first.wait_for()
    assert detail.locator(".says .badge.ungated", has_text="incomparable").count() == 6
    assert "the two sides measured different kinds of latency (see the callout at the top)" in detail.inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-incomparable.png"), full_page=True)
    assert visit.problems == []
    assert visit.requests == [index.as_uri()]
    assert visit.routed == []


def test_looks_worse_section_and_oversampled_badge_render(
    isolated: Callable[[Path], Visit], looks_worse_report: tuple[Path, ParityResult]
) -> None:
    index, result = looks_worse_report
    visit = isolated(index)
    page = visit.page
    assert page.inner_text("#verdict .banner-verdict") == "INCONCLUSIVE"
    section = page.locator("#looks-worse")
    assert section.is_visible()
    top = (section.bounding_box() or {"y": 1e9})["y"]
    assert top < (page.locator("#bottlenecks").bounding_box() or {"y": 0})["y"]
    assert page.inner_text("#looks-worse h2") == "Not judged, but looks worse (1)"
    row = section.locator("tbody tr")
    assert row.count() == len(result.unjudged_looking_worse) == 1
    assert row.locator("td.endpoint").inner_text() == RARE_SLOW
    assert row.locator("td.looks").inner_text().startswith("looks x1.")
    assert re.search(r"typical latency \(rank shift\): ~\d+ more", row.inner_text())
    table_row = page.locator("#endpoints tr.row", has=page.locator("button.open", has_text=RARE_SLOW))
    assert table_row.locator(".why.looks").inner_text().startswith("not judged, looks x1.")
    table_row.locator("button.open").click()
    detail = page.locator("tr.detail")
    detail.locator("canvas").first.wait_for()
    assert detail.locator("p.looks").inner_text().startswith("not judged, looks x1.")
    assert detail.locator("p.needs").inner_text().startswith("Not decided yet: about ")
    assert detail.locator(".says .needs").first.is_visible()
    payroll = page.locator("#endpoints tr.row", has=page.locator("button.open", has_text=PAYROLL))
    badge = payroll.locator(".tag.oversampled")
    assert badge.inner_text() == "oversampled ×4"
    assert "the replayed mix differs from production" in (badge.get_attribute("title") or "")
    table_row.locator("button.open").click()  # close, open the payroll detail: the badge is there too
    payroll.locator("button.open").click()
    assert page.locator("tr.detail .tag.oversampled").inner_text() == "oversampled ×4"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-looks-worse.png"), full_page=True)
    assert visit.problems == []
    assert visit.requests == [index.as_uri()]
    assert visit.routed == []


# --- layout at 1,280 / 390 px, the plain sentences, clock-time charts (issue 15) -------------------------------

#: The baseline: production yesterday, one hour, Berlin time (UTC+1 in March); the candidate: a replay today that
#: compressed that hour into ten minutes.
BASE_START = datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
CAND_START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LONG_NAME = "GET /api/users/{id}/preferences/notifications/email/digest/weekly/summary-with-a-very-long-route-name"
UNBROKEN = "GET /" + "x" * 300
GAPPY = "GET /api/gappy"
#: (key, baseline median ms, candidate median ms, requests, candidate errors): twelve endpoints of every kind
UX_ENDPOINTS = (
    (ORDERS, 100.0, 160.0, 1200, 2),
    (CREATE, 40.0, 40.0, 1200, 90),
    (USERS, 30.0, 30.0, 1200, 0),
    (LONG_NAME, 25.0, 25.0, 1200, 0),
    (SEARCH, 60.0, 42.0, 1200, 0),
    (HEALTH, 2.0, 2.0, 1200, 0),
    (RARE, 50.0, 50.0, 12, 0),
    (GAPPY, 70.0, 84.0, 1200, 0),
    ("PUT /api/items/{id}", 80.0, 82.0, 1200, 0),
    ("DELETE /api/items/{id}", 30.0, 33.0, 1200, 0),
    (RARE_SLOW, 300.0, 310.0, 1200, 0),
    (UNBROKEN, 10.0, 10.0, 1200, 0),
)
#: Words that belong to the statistics, not to the first line a reader sees per metric.
STATISTICAL = re.compile(
    r"\bp\s*[=<]|p-value|holm|hodges|lehmann|rosenbaum|significan|\bci\b|confidence|α|fisher|mann|whitney|"
    r"rank shift|hypothes|z-score|t-test",
    re.IGNORECASE,
)


def _ux_stats(
    key: str, rng: random.Random, median_ms: float, n: int, errors: int, start: datetime, step_s: float
) -> EndpointStats:
    """``n`` lognormal latencies spread over 60 timeline points of ``step_s`` from ``start``; GAPPY has data in
    every seventh point only (isolated points)."""
    values = _draws(rng, median_ms, n)
    sketch = LatencySketch()
    for v in values:
        sketch.add(v)
    per = [values[i::60] for i in range(60)]
    if key == GAPPY:
        per = [p if i % 7 == 0 else [] for i, p in enumerate(per)]
    line = Timeline(
        start_s=start.timestamp(),
        interval_s=step_s,
        counts=tuple(len(p) if p else None for p in per),
        avg_ms=tuple(sum(p) / len(p) if p else None for p in per),
        p95_ms=tuple(sorted(p)[int(0.95 * (len(p) - 1))] if p else None for p in per),
    )
    return EndpointStats(Endpoint.parse(key), n, errors, LatencyDistribution(sketch), timeline=line)


def _ux_sides() -> tuple[Measurement, Measurement]:
    rng = random.Random(15)
    base = tuple(_ux_stats(k, rng, b, n, 0, BASE_START, 60.0) for k, b, _, n, _ in UX_ENDPOINTS)
    cand = tuple(_ux_stats(k, rng, c, n, err, CAND_START, 10.0) for k, _, c, n, err in UX_ENDPOINTS)
    return (
        Measurement(
            Source(SourceKind.SYNTHETIC, "production yesterday", service="orders-api", env="prod"),
            Window(BASE_START, BASE_START + timedelta(hours=1)),
            base,
            latency_kind=LatencyKind.SERVER,
            labels={"timezone": "Europe/Berlin"},
        ),
        Measurement(
            Source(SourceKind.SYNTHETIC, "replay today", service="orders-api", env="new"),
            Window(CAND_START, CAND_START + timedelta(minutes=10)),
            cand,
            latency_kind=LatencyKind.SERVER,
        ),
    )


@pytest.fixture(scope="module")
def ux_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ParityResult]:
    sides = _ux_sides()
    result = compare(*sides, names=("prod-yesterday.json", "replay.json"))
    out = tmp_path_factory.mktemp("ux")
    return write_reports(result, out, META, measurements=sides).index_html, result


@pytest.fixture(scope="module")
def many_report(tmp_path_factory: pytest.TempPathFactory, ux_report: tuple[Path, ParityResult]) -> Path:
    """1,000 endpoints: the twelve judged ones again and again under made-up names, some long and unbroken
    (rendered without the Measurements: the table is what is checked, and judging 1,000 would take seconds)."""
    _, result = ux_report
    rng = random.Random(1000)
    names = []
    for i in range(1000):
        words = "/".join(
            rng.choice(("api", "v2", "tenants", "{id}", "reports", "quarterly-summary", "x" * 40))
            for _ in range(rng.randint(1, 9))
        )
        names.append(f"{rng.choice(('GET', 'POST', 'PUT', 'DELETE'))} /{words}/{i}")
    endpoints = tuple(
        replace(result.endpoints[i % len(result.endpoints)], endpoint=Endpoint.parse(name))
        for i, name in enumerate(names)
    )
    many = replace(result, endpoints=endpoints, bottlenecks=(), knees=())
    index = tmp_path_factory.mktemp("many") / "index.html"  # the page alone: the other reports cost 2 s more
    index.write_text(render_html(many, META), encoding="utf-8")
    return index


_OVERFLOW = """() => {
  const table = document.getElementById('endpoints');
  const box = table.parentElement;
  const right = table.getBoundingClientRect().right;
  let beyond = 0;
  table.querySelectorAll('tr.row td').forEach(td => {
    if (td.getBoundingClientRect().right > right + 0.5) { beyond += 1; }
  });
  return {scroll: box.scrollWidth, client: box.clientWidth, page: document.documentElement.scrollWidth,
          rows: table.querySelectorAll('tr.row').length, beyond: beyond};
}"""


def _screenshot(page: Page, tmp: Path, name: str) -> None:
    """A full-page screenshot under ``tmp`` and, for CI to pick up, under ``reports/artifacts/``."""
    shot = tmp / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)


def test_endpoint_table_fits_1280_px_with_12_and_1000_endpoints(
    browser: Browser, ux_report: tuple[Path, ParityResult], many_report: Path, tmp_path: Path
) -> None:
    index, result = ux_report
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        v = Visit(page)
        page.goto(index.as_uri())
        page.locator("#endpoints button.open").first.click()  # an open detail must not widen the table either
        page.wait_for_selector("tr.detail canvas")
        fit = page.evaluate(_OVERFLOW)
        assert fit["rows"] == len(result.endpoints) == 12
        assert fit["scroll"] <= fit["client"], fit
        assert fit["page"] <= 1280, fit
        assert fit["beyond"] == 0, fit
        # every column the reviewer needs is in view: verdict, extra time, avg/p95/p99/max, errors, throughput
        heads = page.locator("#endpoints > thead th").all_inner_texts()
        assert [h.strip() for h in heads] == [
            "#",
            "Endpoint",
            "Verdict",
            "Extra time",
            "avg",
            "p95",
            "p99",
            "max",
            "errors",
            "throughput",
        ]
        unbroken = page.locator("#endpoints td.endpoint", has=page.locator("button.open", has_text=UNBROKEN))
        assert (unbroken.get_attribute("title") or "").startswith(UNBROKEN)  # the full name on hover
        page.set_viewport_size({"width": 1440, "height": 900})
        _screenshot(page, tmp_path, "report-1440.png")
        page.goto(many_report.as_uri())
        page.click("#more button.all")
        fit = page.evaluate(_OVERFLOW)
        assert fit["rows"] == 1000
        page.set_viewport_size({"width": 1280, "height": 900})
        fit = page.evaluate(_OVERFLOW)
        assert fit["scroll"] <= fit["client"], fit
        assert fit["page"] <= 1280, fit
        assert fit["beyond"] == 0, fit
        assert v.problems == []
    finally:
        context.close()


_CLIPPED_BADGES = """() => {
  const out = [];
  const width = document.documentElement.clientWidth;
  document.querySelectorAll('.badge').forEach(b => {
    if (!b.offsetParent) { return; }  // not rendered (a closed <details>)
    const r = b.getBoundingClientRect();
    if (r.width === 0 || r.left < 0 || r.right > width + 0.5) {
      out.push(['viewport', b.textContent, r.left, r.right]);
      return;
    }
    for (let a = b.parentElement; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX === 'visible' && style.overflowY === 'visible') { continue; }
      const c = a.getBoundingClientRect();
      if (r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5
          || (b.scrollWidth > b.clientWidth + 1)) {
        out.push(['clipped by ' + a.tagName + '.' + a.className, b.textContent, r.left, r.right]);
        return;
      }
    }
  });
  return out;
}"""


def test_every_verdict_badge_is_visible_at_390_px(
    browser: Browser, ux_report: tuple[Path, ParityResult], tmp_path: Path
) -> None:
    index, result = ux_report
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        v = Visit(page)
        page.goto(index.as_uri())
        page.locator("#endpoints button.open").first.click()
        page.wait_for_selector("tr.detail canvas")
        badges = page.locator("#endpoints .badge")
        assert badges.count() >= len(result.endpoints) + 8  # every row's, and each metric's in the open detail
        assert page.evaluate(_CLIPPED_BADGES) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # cards: each figure carries its label
        first = page.locator("#endpoints tr.row").first
        assert first.locator("td[data-label=p95]").is_visible()
        _screenshot(page, tmp_path, "report-390.png")
        # no headings to click on cards: the menu sorts (worst p95 ratio first)
        assert page.locator("#sort-by").is_visible()
        page.select_option("#sort-by", "p95_ms")
        ratios = {e.endpoint.key: m.ratio for e in result.endpoints if (m := e.metric("p95_ms")) and m.ratio}
        assert v.visible_keys()[0] == max(ratios, key=lambda k: ratios[k])
        assert v.problems == []
    finally:
        context.close()


def test_detail_leads_with_one_plain_sentence_per_metric(
    isolated: Callable[[Path], Visit],
    ux_report: tuple[Path, ParityResult],
    incomparable_report: tuple[Path, ParityResult],
) -> None:
    for index, result in (ux_report, incomparable_report):
        visit = isolated(index)
        page = visit.page
        firsts = {e.verdict: e for e in reversed(result.endpoints)}  # one endpoint of each verdict, and SEARCH
        for e in [*firsts.values(), *(e for e in result.endpoints if e.endpoint.key == SEARCH)]:
            row = page.locator("#endpoints tr.row", has=page.locator("button.open", has_text=e.endpoint.key)).first
            row.locator("button.open").click()
            detail = page.locator("tr.detail")
            says = detail.locator("ul.says > li")
            assert says.count() == len(e.metrics), e.endpoint.key
            for i in range(says.count()):
                li = says.nth(i)
                assert li.locator(".badge").count() == 1  # the metric's verdict, once
                sentence = li.locator(".sentence").inner_text().split("\n")[0]
                assert not STATISTICAL.search(sentence), sentence
                assert re.match(r"^[a-z0-9 ]+ (went from|stayed at|was not (judged|compared))\b", sentence), sentence
                assert sentence.endswith("."), sentence
            assert not detail.locator("details.more").evaluate("d => d.open")  # the statistics: one click away
            assert not STATISTICAL.search(detail.locator("ul.says").inner_text())
            row.locator("button.open").click()
        assert visit.problems == []
    # the issue's own example reads as asked
    orders = next(e for e in ux_report[1].endpoints if e.endpoint.key == ORDERS)
    p95 = orders.metric("p95_ms")
    assert p95 is not None
    assert re.fullmatch(
        r"p95 went from [\d.]+ ms to [\d.]+ ms, 1\.\d× slower; this is beyond the 5% / 2 ms tolerance and not noise\.",
        plain_sentence(p95, ux_report[1].alpha),
    )


_SCALES = """c => {
  const chart = Chart.getChart(c);
  const out = {};
  ['x', 'x2'].forEach(id => {
    const s = chart.scales[id];
    if (!s) { return; }
    out[id] = {title: s.options.title.text, labels: s.ticks.map(t => [].concat(t.label))};
  });
  out.sets = chart.data.datasets.map(d => ({label: d.label, color: d.borderColor, order: d.order,
                                          radius: [].concat(d.pointRadius)}));
  return out;
}"""


def test_time_charts_are_on_clock_time(
    isolated: Callable[[Path], Visit], ux_report: tuple[Path, ParityResult], report: Path
) -> None:
    index, _ = ux_report
    visit = isolated(index)
    page = visit.page
    for key in (ORDERS, GAPPY):
        row = page.locator("#endpoints tr.row", has=page.locator("button.open", has_text=key)).first
        row.locator("button.open").click()
        canvases = page.locator("tr.detail .chart.time canvas")
        assert canvases.count() == 2  # latency and request rate over time
        for i in range(2):
            scales = canvases.nth(i).evaluate(_SCALES)
            # lower axis: the baseline's clock, UTC and Berlin time (UTC+1 in February)
            assert "UTC" in scales["x"]["title"], scales
            assert "Europe/Berlin" in scales["x"]["title"], scales
            ticks = scales["x"]["labels"]
            assert len(ticks) >= 3
            for utc, local in ticks:
                assert re.fullmatch(r"\d\d:\d\d", utc), ticks
                assert re.fullmatch(r"\d\d:\d\d", local), ticks
                assert (int(local[:2]) - int(utc[:2])) % 24 == 1, ticks
            assert ticks[0] == ["09:00", "10:00"]  # the baseline's window: yesterday 09:00-10:00 UTC, 10:00 in Berlin
            # upper axis: the candidate's own clock (its ten minutes aligned to the baseline's hour)
            assert "candidate" in scales["x2"]["title"], scales
            assert "UTC" in scales["x2"]["title"], scales
            cand = [label[0] for label in scales["x2"]["labels"]]
            assert cand, scales
            assert all(re.fullmatch(r"10:(0\d|10)", t) for t in cand), cand
            sets = {s["label"]: s for s in scales["sets"]}
            assert sets["candidate"]["order"] < sets["baseline"]["order"]  # drawn above the baseline
            assert sets["candidate"]["color"] != sets["baseline"]["color"]
            assert all(s["color"].lower() not in ("#6e7781", "grey", "gray") for s in sets.values())
            if key == GAPPY:  # isolated points are drawn as dots
                assert all(max(s["radius"]) > 0 for s in sets.values()), sets
        row.locator("button.open").click()
    assert visit.problems == []
    # one clock (a concurrent run) and no time zone: UTC only, and the axis says so
    visit = isolated(report)
    visit.page.locator("#endpoints button.open").first.click()
    scales = visit.page.locator("tr.detail .chart.time canvas").first.evaluate(_SCALES)
    assert scales["x"]["title"] == "clock time, both sides: UTC only (the baseline names no time zone)"
    assert "x2" not in scales
    assert all(re.fullmatch(r"\d\d:\d\d", label[0]) for label in scales["x"]["labels"])
    assert visit.problems == []
