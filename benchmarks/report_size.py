"""Benchmark: the HTML report at 1,000 endpoints — size, Python render time, browser load time (prints figures).

Builds two made-up Measurements (fixed seed) of ``N`` endpoints, each with a latency sketch of 2,000 requests
and a 30-minute timeline of 10-second intervals, where every 12th endpoint regresses; compares them, renders
``index.html`` with its chart data, and opens it from disk in headless Chromium (Debian's ``chromium``
driven by Playwright) to time:

- ``DOMContentLoaded`` and ``load`` (navigation timing, from the start of the navigation),
- the endpoint table built (the page's ``parity:table-built`` mark) and the first contentful paint,
- opening one endpoint's detail until its charts are drawn and painted,
- sorting the table by p95, filtering it by text, and showing every row (the table shows 200 at first).

Acceptance (issue 6): the page weighs ≤ 5 MB, renders in ≤ 3 s (load event and table built), and makes no
network request (every request is recorded; only the file itself may be loaded). Prints PASS/MISS per
target and exits 1 on a MISS; issue 15 adds: the endpoint table does not scroll sideways at 1,280 px with every
row shown. Usage: ``python benchmarks/report_size.py [N] [--screenshots DIR]`` (``DIR/report-1440.png`` and
``DIR/report-390.png``: full page, first endpoint's detail open); ``$PARITY_CHROMIUM`` overrides the browser binary.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from parity.judge.compare import compare
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    Measurement,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.report.context import RunMeta
from parity.report.html import render_html
from parity.sketch import LatencySketch

ENDPOINTS = 1000
REQUESTS = 2000
WINDOW_MIN = 30
INTERVAL_S = 10.0
SLOW_EVERY = 12
MAX_MB = 5.0
MAX_RENDER_S = 3.0
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def side(n: int, seed: int, *, regress: bool) -> Measurement:
    """``n`` endpoints of lognormal latencies with per-interval timelines; every ``SLOW_EVERY``-th endpoint
    is 40% slower when ``regress``."""
    rng = np.random.default_rng(seed)
    intervals = int(WINDOW_MIN * 60 / INTERVAL_S)
    methods = ("GET", "POST", "PUT", "DELETE")
    endpoints = []
    for i in range(n):
        median = 5.0 + (i % 50) * 4.0
        if regress and i % SLOW_EVERY == 0:
            median *= 1.4
        values = rng.lognormal(np.log(median), 0.4, REQUESTS)
        sketch = LatencySketch()
        sketch.add_many(values)
        slot = rng.integers(0, intervals, REQUESTS)
        counts = np.bincount(slot, minlength=intervals)
        sums = np.bincount(slot, weights=values, minlength=intervals)
        # per-interval p95: each interval's values sorted, the value at rank 0.95 (nearest rank)
        order = np.lexsort((values, slot))
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        ranks = first + np.floor(0.95 * np.maximum(counts - 1, 0)).astype(int)
        p95 = [float(values[order[r]]) if c else None for r, c in zip(ranks, counts, strict=True)]
        timeline = Timeline(
            start_s=T0.timestamp(),
            interval_s=INTERVAL_S,
            counts=tuple(int(c) for c in counts),
            avg_ms=tuple(float(s / c) if c else None for s, c in zip(sums, counts, strict=True)),
            p95_ms=tuple(p95),
        )
        key = Endpoint(methods[i % 4], f"/api/v{1 + i % 3}/resource{i}/{{id}}/items")
        errors = int(rng.binomial(REQUESTS, 0.002))
        endpoints.append(EndpointStats(key, REQUESTS, errors, LatencyDistribution(sketch), timeline=timeline))
    return Measurement(
        Source(SourceKind.SYNTHETIC, "made up", service="bench", env="new" if regress else "old"),
        Window(T0, T0 + timedelta(minutes=WINDOW_MIN)),
        tuple(endpoints),
        latency_kind=LatencyKind.SERVER,
        pair_id="bench",
    )


_OPEN_ONE = """() => new Promise(resolve => {
  const t0 = performance.now();
  document.querySelector('#endpoints button.open').click();
  const drawn = performance.now();
  requestAnimationFrame(() => requestAnimationFrame(() => resolve({
    drawn: drawn - t0, painted: performance.now() - t0,
    canvases: document.querySelectorAll('tr.detail canvas').length})));
})"""

_TIMED_CLICK = """selector => new Promise(resolve => {
  const t0 = performance.now();
  document.querySelector(selector).click();
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
})"""

_TIMED_FILTER = """text => new Promise(resolve => {
  const input = document.getElementById('filter');
  const t0 = performance.now();
  input.value = text;
  input.dispatchEvent(new Event('input'));
  requestAnimationFrame(() => requestAnimationFrame(() => resolve({
    ms: performance.now() - t0,
    shown: document.querySelectorAll('#endpoints tbody tr.row:not([hidden])').length})));
})"""

_TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const mark = performance.getEntriesByName('parity:table-built')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
          table: mark ? mark.startTime : null, fcp: fcp ? fcp.startTime : null,
          rows: document.querySelectorAll('#endpoints tbody tr.row').length};
}"""


def browse(index: Path, screenshots: Path | None = None) -> dict[str, Any]:
    """Open ``index`` in headless Chromium and time it (ms); records every request. With ``screenshots``, also
    writes ``report-1440.png`` and ``report-390.png`` there (full page, the first endpoint's detail open) and
    measures the endpoint table's sideways overflow at 1,280 px (``overflow_px``, 0 when it fits)."""
    from playwright.sync_api import Route, sync_playwright

    chromium = os.environ.get("PARITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    uri = index.resolve().as_uri()
    requests: list[str] = []
    problems: list[str] = []

    def route(r: Route) -> None:
        if r.request.url == uri:
            r.continue_()
        else:
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", route)
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            t = time.perf_counter()
            page.goto(uri, wait_until="load")
            page.wait_for_selector("#endpoints tbody tr.row")
            wall = (time.perf_counter() - t) * 1000
            out: dict[str, Any] = page.evaluate(_TIMINGS)
            out["wall"] = wall
            out["open"] = page.evaluate(_OPEN_ONE)
            out["sort"] = page.evaluate(_TIMED_CLICK, "#endpoints th[data-sort=p95_ms]")
            out["filter"] = page.evaluate(_TIMED_FILTER, "resource7")
            page.evaluate(_TIMED_FILTER, "")
            out["all"] = page.evaluate(_TIMED_CLICK, "#more button.all")
            page.set_viewport_size({"width": 1280, "height": 900})
            out["overflow_px"] = page.evaluate(
                "() => { const b = document.getElementById('endpoints').parentElement; "
                "return Math.max(b.scrollWidth - b.clientWidth, document.documentElement.scrollWidth - 1280); }"
            )
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                page.goto(uri, wait_until="load")
                page.locator("#endpoints button.open").first.click()
                page.wait_for_selector("tr.detail canvas")
                for width in (1440, 390):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.screenshot(path=str(screenshots / f"report-{width}.png"), full_page=True)
        finally:
            browser.close()
    out["requests"] = requests
    out["problems"] = problems
    out["uri"] = uri
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    args = sys.argv[1:]
    screenshots = None
    if "--screenshots" in args:
        at = args.index("--screenshots")
        if at + 1 >= len(args):
            print("report_size.py: --screenshots needs a directory", file=sys.stderr)
            return 2
        screenshots = Path(args[at + 1])
        del args[at : at + 2]
    n = int(args[0]) if args else ENDPOINTS
    t = time.perf_counter()
    base, cand = side(n, 1, regress=False), side(n, 2, regress=True)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    result = compare(base, cand)
    t_compare = time.perf_counter() - t
    meta = RunMeta("bench", None, datetime.now(UTC), None, None)
    t = time.perf_counter()
    html = render_html(result, meta, (base, cand))
    t_render = time.perf_counter() - t
    t = time.perf_counter()
    plain = render_html(result, meta)
    t_plain = time.perf_counter() - t
    size_mb = len(html.encode("utf-8")) / 1e6
    print(f"endpoints {n}, {REQUESTS} requests each, {WINDOW_MIN} min timelines at {INTERVAL_S:g} s")
    print(f"  verdict {result.verdict.value}: {len(result.bottlenecks)} regressed endpoint(s)")
    print(f"  build measurements {t_build:.2f} s, compare {t_compare:.2f} s")
    print(f"  render index.html: {t_render:.2f} s with chart data, {t_plain:.2f} s without")
    print(f"  size: {size_mb:.2f} MB with chart data, {len(plain.encode('utf-8')) / 1e6:.2f} MB without")
    keep = os.environ.get("PARITY_BENCH_KEEP")  # a path: keep the page there to look at
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(keep) if keep else Path(tmp) / "index.html"
        index.write_text(html, encoding="utf-8")
        b = browse(index, screenshots)
    print(
        f"  browser: DOMContentLoaded {b['dcl']:.0f} ms, load {b['load']:.0f} ms, table built {b['table']:.0f} ms "
        f"({b['rows']} rows), first contentful paint {b['fcp'] or float('nan'):.0f} ms, wall {b['wall']:.0f} ms"
    )
    print(
        f"  open one endpoint: charts drawn {b['open']['drawn']:.0f} ms, painted {b['open']['painted']:.0f} ms "
        f"({b['open']['canvases']} charts)"
    )
    print(f"  sort by p95 {b['sort']:.0f} ms; filter by text {b['filter']['ms']:.0f} ms ({b['filter']['shown']} shown)")
    print(f"  show all {n} rows (past the first page of 200): {b['all']:.0f} ms")
    rendered_ms = max(b["load"], b["table"] or 0.0)
    others = [u for u in b["requests"] if u != b["uri"]]
    checks = [
        (f"size {size_mb:.2f} MB <= {MAX_MB:g} MB", size_mb <= MAX_MB),
        (f"renders in {rendered_ms / 1000:.2f} s <= {MAX_RENDER_S:g} s", rendered_ms <= MAX_RENDER_S * 1000),
        (f"network requests besides the file: {len(others)}", not others and set(b["requests"]) == {b["uri"]}),
        (f"page errors: {len(b['problems'])}", not b["problems"]),
        (f"rows in the first page: {b['rows']} (of {n})", b["rows"] == min(n, 200)),
        (f"endpoint table overflow at 1280 px (every row shown): {b['overflow_px']} px", b["overflow_px"] <= 0),
    ]
    if screenshots is not None:
        print(f"  screenshots: {screenshots / 'report-1440.png'}, {screenshots / 'report-390.png'}")
    for text, ok in checks:
        print(f"  {verdict(ok)}  {text}")
    for problem in b["problems"]:
        print(f"        {problem}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
