"""Access-log targets templated column-wise: the routes, endpoints, pools, query shapes and counts equal the
per-target path's (the one every request once took) on tricky paths, with and without route maps, and a worker
process that dies is one line of bad input."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pytest

from parity.errors import BadInput
from parity.model import Endpoint
from parity.sources.access_log import (
    _Chunk,
    _Collector,
    _exact_chunk,
    _fast_chunk,
    _ParserSpec,
    _template_column,
    read_access_logs,
)
from parity.sources.routes import RouteMap, encode_path, template_path_values
from tests.test_access_log import alb_line

TRICKY_PATHS = [
    "/api/items/1234",
    "/api/items/1234/",  # trailing slash
    "/api//items/99",  # empty segment
    "/",
    "/api/%E5%B1%B1/7",  # percent-escapes (a literal segment, an id after it)
    "/api/%e5%b1%b1/70",
    "/api/%ZZ/9",  # a broken escape
    "/api/%FF/123",  # an escape that is not UTF-8: left out of the pool
    "/api/山/8",  # unicode: encoded
    "/api/١٢٣/4",  # non-ASCII digits are not an id
    "/api/²",
    "/api/{x}/10",  # braces: encoded, never a placeholder
    "/a/}{/",
    "/api/" + "a1" * 3000,  # a very long token
    "/api/DEADBEEFdeadbeef",  # 16 hex digits: an id
    "/api/deadbeefdeadbee",  # 15: not
    "/api/abcdefghijklmnop",  # 16 letters without a digit: not
    "/api/abcdefghijklmno1",  # 16 letters and digits with a digit: an id
    "/api/123e4567-e89b-12d3-a456-426614174000",  # UUID
    "/api/123E4567-E89B-12D3-A456-426614174000/x/5/6/7",  # UUID, then {id2} {id3} {id4}
    "/api/1.5",
    "/api/12-34",
    "/api/0",
    "/files/1234.json",
    "/files/readme.json",
    "/v2/2024/report",
    "/static/a/b/c",
]
QUERIES = ["", "?page=1&per=2", "?page=2&per=2", "?token=abc", "?q=a%40b.example", "?debug", "?a&&b=", "?q=%FF", "?"]


def test_column_wise_templates_equal_template_path_values() -> None:
    encoded = [encode_path(p) for p in TRICKY_PATHS]
    template = _template_column(pa.array(encoded, pa.string()))
    assert template.route.to_pylist() == [template_path_values(p)[0] for p in TRICKY_PATHS]
    ids = template.segments.take(pa.array(template.segment[template.is_id])).to_pylist()
    assert ids == [v for p in TRICKY_PATHS for v in template_path_values(p)[1].values()]


def _requests(seed: int, n: int = 1500) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        path = TRICKY_PATHS[int(rng.integers(len(TRICKY_PATHS)))]
        if rng.random() < 0.5:
            path = f"/api/items/{int(rng.integers(0, 40 + 30 * seed))}/parts/{int(rng.integers(0, 3))}"
        query = QUERIES[int(rng.integers(len(QUERIES)))]
        out.append((["GET", "HEAD", "POST"][int(rng.integers(3))], path + query))
    return out


def _chunk(requests: list[tuple[str, str]], columns: bool) -> _Chunk:
    distinct = list(dict.fromkeys(requests))
    code = np.asarray([distinct.index(r) for r in requests], dtype=np.int64)
    keys = pa.array([f"{m} {t}" for m, t in distinct], pa.string()) if columns else tuple(distinct)
    n = len(requests)
    t = 1.8e9 + np.arange(n, dtype=np.float64)
    return _Chunk("a.log", n, keys, code, t, np.full(n, 5.0), np.zeros(n, dtype=np.bool_))


def _state(c: _Collector) -> tuple[object, ...]:
    return (c.index, c.resources, c.pools, c.shapes, c.shape_overflow, c.query_pools, c.query_dropped, c.unmatched,
            c.unmatched_examples, c.requests.count)  # fmt: skip


ROUTES = (
    Endpoint("GET", "/api/items/{id}"),
    Endpoint("GET", "/api/items/{item}/parts/{part}"),
    Endpoint("POST", "/api/{kind}/{n}"),
    Endpoint("GET", "/api"),
)
#: Route maps whose matching by templated path is exact, and three whose is not (a partial-segment placeholder,
#: a glob, a literal segment that looks like an id).
ROUTE_MAPS = [
    None,
    RouteMap(routes=ROUTES),
    RouteMap(routes=(*ROUTES, Endpoint("GET", "/files/{name}.json"))),
    RouteMap(routes=(*ROUTES, Endpoint("GET", "/static/{rest}")), globs={"/static/{rest}": frozenset({"rest"})}),
    RouteMap(routes=(*ROUTES, Endpoint("GET", "/v2/2024/{what}"))),
]


@pytest.mark.parametrize("route_map", ROUTE_MAPS)
@pytest.mark.parametrize("pool_limit", [1, 3, 50, 500])
def test_column_wise_targets_equal_the_per_target_path(route_map: RouteMap | None, pool_limit: int) -> None:
    columns = _Collector(route_map, pool_limit, 1.0)
    exact = _Collector(route_map, pool_limit, 1.0)
    for seed in range(3):  # several chunks: pools and shapes carry over
        requests = _requests(seed)
        a = columns.consume(_chunk(requests, columns=True))
        b = exact.consume(_chunk(requests, columns=False))
        assert a is not None
        assert b is not None
        assert a.keys == b.keys
        assert np.array_equal(a.endpoint, b.endpoint)
    assert _state(columns) == _state(exact)
    assert columns.query_dropped
    assert any(columns.pools)


def test_a_worker_that_dies_is_one_line_of_bad_input(tmp_path: Path) -> None:
    """Two files that are FIFOs nobody writes: their workers (children of multiprocessing's fork server) block
    opening them; killed, the read is BadInput."""
    files = []
    for i in range(2):
        fifo = tmp_path / f"part{i}.log"
        os.mkfifo(fifo)
        files.append(fifo)
    caught: list[BaseException] = []

    def read() -> None:
        try:
            read_access_logs(files, "nginx", workers=2)
        except BaseException as exc:
            caught.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    me = psutil.Process()
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while not caught and time.monotonic() < deadline:
            for child in me.children(recursive=True):
                try:
                    parent = child.parent()
                    server = parent is not None and "multiprocessing.forkserver" in " ".join(parent.cmdline())
                    if child.pid not in killed and server:
                        os.kill(child.pid, signal.SIGKILL)
                        killed.add(child.pid)
                except (psutil.Error, OSError):
                    continue
            time.sleep(0.1)
        reader.join(timeout=30)
    finally:
        for fifo in files:  # release any worker still blocked opening a FIFO
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
    assert killed
    assert len(caught) == 1, caught
    assert isinstance(caught[0], BadInput), caught
    message = str(caught[0])
    assert "\n" not in message
    assert "worker process" in message
    assert "part" in message


def _alb_lines(n: int = 400) -> list[str]:
    """ALB lines the column-wise parse takes, and every kind it must leave to the exact parser, interleaved."""
    rng = np.random.default_rng(9)
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    odd = [
        alb_line(t0, "GET", "/x", 0.001, kind="wss"),  # WebSocket: skipped
        alb_line(t0, "GET", "/", None, elb="301", target="-", actions="redirect"),  # the ALB's own answer
        alb_line(t0, "GET", "/a", 0.001, actions="waf,forward"),  # forwarded after a rule
        alb_line(t0, "GET", "/a", 0.001).replace("2026-11-25T09:00:00.000000Z", "2026-02-30T09:00:00.000000Z", 1),
        alb_line(t0, "GET", "/a", 0.001).replace("2026-11-25T09:00:00.000000Z", "2100-01-01T00:00:00.000001Z", 1),
        alb_line(t0, "GET", "/a", 0.001).replace("0.000 0.001 0.000", "0.000 fast 0.000"),
        alb_line(t0, "GET", "/a", 0.001).replace("0.000 0.001 0.000", "0.000 1e-3 0.000"),
        alb_line(t0, "GET", "/a", 0.001).replace(" 200 200 ", " 200 20x ", 1),
        alb_line(t0, "GET", "/a", 0.001, created="-"),
        alb_line(t0, "GET", "/a", 0.001, created="2026-11-25T08:59:59+00:00"),  # another ISO spelling
        alb_line(t0, "GET", "/a", 0.001).split(' "Mozilla')[0] + ' "agent"',  # before actions_executed existed
        alb_line(t0, "GET", "/a", 0.001).replace('"GET https://hr.example.com:443/a HTTP/1.1"', '"- - -"'),
        alb_line(t0, "GET", "", 0.001),  # https://host:443 without a path: "/"
        alb_line(t0, "GET", "/a", 0.001).replace("https://hr.example.com:443/a", "/b#frag"),
        alb_line(t0, "GET", "/a", 0.001, kind="grpcs"),
        "not an ALB line",
    ]
    lines = []
    for i in range(n):
        t = t0 + timedelta(seconds=float(rng.uniform(0, 7200)))
        if i % 11 == 0:
            lines.append(odd[(i // 11) % len(odd)])
            continue
        path = f"/api/v1/employees/{int(rng.integers(1000, 1400))}" + ["", "?page=2", "?token=x"][i % 3]
        target_s = None if i % 29 == 0 else round(float(rng.uniform(0, 0.5)), 3)
        elb, target = [("200", "200"), ("502", "502"), ("504", "-"), ("200", "404")][i % 4]
        created = t - timedelta(seconds=float(rng.uniform(0, 0.5)))
        lines.append(alb_line(t, ["GET", "POST"][i % 2], path, target_s, elb=elb, target=target, created=created,
                              extra=' "new-field" 42' if i % 7 == 0 else ""))  # fmt: skip
    return lines


@pytest.mark.parametrize("arrival", [False, True])
def test_column_wise_alb_parse_equals_the_exact_parser(arrival: bool) -> None:
    block = ("\n".join(_alb_lines()) + "\n").encode()
    spec = _ParserSpec("alb", -1, arrival)
    parse = spec.exact()
    fast = _fast_chunk("a.log", block, 3, spec, parse)
    assert fast is not None
    exact = _exact_chunk("a.log", block, 3, parse)
    assert fast[1] == exact[1] == 403
    a, b = fast[0], exact[0]
    assert (a.nonblank, a.events) == (b.nonblank, b.events)
    assert [a.keys[c] for c in a.code] == [b.keys[c] for c in b.code]
    assert np.array_equal(a.t, b.t)
    assert np.array_equal(a.latency, b.latency, equal_nan=True)
    assert np.array_equal(a.errors, b.errors)
    assert len(a.t) > 300
    assert len(a.events) >= 10
