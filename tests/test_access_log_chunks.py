"""Access logs read in chunks: the column-wise nginx parse equals the exact per-line parser line for line, the
chunks folded by the RequestAggregator equal the row-at-a-time Recorder, and a process pool over files gives
the result of one process."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.model import LatencyKind, Source, SourceKind, Window
from parity.sources.access_log import (
    MAX_TIMELINE_POINTS,
    TIMELINE_INTERVALS_S,
    _Chunk,
    _Collector,
    _exact_chunk,
    _fast_chunk,
    _parse_file,
    _ParserSpec,
    read_access_logs,
    timeline_interval_for,
)
from parity.sources.aggregate import RequestChunk
from tests.aggregate_support import assert_same_measurement, row_path_measurement

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _line(i: int, request: str, status: int = 200, extras: str = " 0.012", agent: str = "curl/8") -> str:
    local = T0 + timedelta(seconds=i * 7, hours=1)
    stamp = local.strftime("%d/%b/%Y:%H:%M:%S") + " +0100"
    return f'10.0.0.{i % 250} - - [{stamp}] "{request}" {status} 512 "-" "{agent}"{extras}'


def _mixed_lines(n: int = 600) -> list[str]:
    """Plain lines the column-wise parse takes, and every kind it must leave to the exact parser, interleaved."""
    rng = np.random.default_rng(5)
    odd = [
        r"GET /api/employees/\xE5\xB1\xB1 HTTP/1.1",  # nginx escapes
        "",  # no request
        "GET http://example.com:80/api/orders/9?x=1#frag HTTP/1.1",  # absolute target
        "get /lower HTTP/1.1",  # not a method: skipped
    ]
    lines = []
    for i in range(n):
        k = int(rng.integers(0, 40))
        query = ["", "?page=2", f"?page={k}&per=20", "?token=abc", f"?email=a{k % 3}@b.example", "?debug"][k % 6]
        request = f"{['GET', 'POST'][k % 2]} /api/things{k % 7}/{k}{query} HTTP/1.1"
        extras = [" 0.012", " 0.250 0.249", " 0.030 0.010, 0.015", " 0.002 -", "", " rt=0.5 urt=0.4", " soon", " 1e-3"][
            i % 8
        ]
        status = [200, 200, 499, 503, 404][i % 5]
        if i % 37 == 0:
            lines.append(_line(i, odd[(i // 37) % len(odd)], status, extras))
        elif i % 41 == 0:
            lines.append("   ")  # blank
        elif i % 43 == 0:
            lines.append("garbage line")
        elif i % 47 == 0:
            lines.append(_line(i, request, status, extras, agent='quoted \\"agent\\" ü'))
        else:
            lines.append(_line(i, request, status, extras))
    return lines


def _same_chunk(a: _Chunk, b: _Chunk) -> None:
    assert (a.nonblank, a.events) == (b.nonblank, b.events)
    assert [a.keys[c] for c in a.code] == [b.keys[c] for c in b.code]
    assert np.array_equal(a.t, b.t)
    assert np.array_equal(a.latency, b.latency, equal_nan=True)
    assert np.array_equal(a.errors, b.errors)


@pytest.mark.parametrize(("timing_field", "arrival"), [(-1, False), (0, True), (1, False), (-2, True), (5, False)])
def test_column_wise_nginx_parse_equals_the_exact_parser(timing_field: int, arrival: bool) -> None:
    block = ("\n".join(_mixed_lines()) + "\n").encode()
    spec = _ParserSpec("nginx", timing_field, arrival)
    parse = spec.exact()
    fast = _fast_chunk("a.log", block, 10, spec, parse)
    assert fast is not None
    exact = _exact_chunk("a.log", block, 10, parse)
    assert fast[1] == exact[1] == 610
    _same_chunk(fast[0], exact[0])
    assert len(fast[0].t) > 400  # most lines are requests
    assert fast[0].events  # and the odd ones were diagnosed in place


def test_blocks_the_column_wise_parse_leaves_to_the_exact_parser() -> None:
    spec = _ParserSpec("nginx", -1, False)
    for block in (b"a\r\nb\n", "x\xff\n".encode("latin-1"), b"x" * 70000 + b"\n"):
        assert _fast_chunk("a.log", block, 0, spec, spec.exact()) is None


def test_chunks_fold_like_the_recorder_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(("\ufeff" + "\n".join(_mixed_lines()) + "\n").encode()))
    collector = _Collector(None, 500, 1.0)
    chunks = [c for chunk in _parse_file(path, _ParserSpec("nginx", -1, False)) if (c := collector.consume(chunk))]
    assert sum(map(len, chunks)) == collector.requests.count > 400
    assert all(isinstance(c, RequestChunk) for c in chunks)
    start = datetime.fromtimestamp(collector.requests.first_s, UTC)
    end = datetime.fromtimestamp(collector.requests.last_s + 0.001, UTC)
    kw = {"source": Source(SourceKind.ACCESS_LOG), "start": start, "end": end, "latency_kind": LatencyKind.SERVER}
    folded = collector.requests.to_measurement(**kw)  # type: ignore[arg-type]
    interval = timeline_interval_for((end - start).total_seconds())
    assert interval in TIMELINE_INTERVALS_S
    assert len(folded.endpoints) > 10
    assert_same_measurement(folded, row_path_measurement(chunks, interval, **kw))
    assert MAX_TIMELINE_POINTS >= 1


def test_dropped_values_counted_while_their_pool_has_room(tmp_path: Path) -> None:
    """Repeated query strings in one chunk: a left-out value counts again until its pool fills, not after."""
    queries = ["q=x@y.example", "q=1", "q=x@y.example", "q=2", "q=x@y.example", "q=x@y.example", "token=a", "token=a"]
    path = tmp_path / "a.log"
    path.write_text("".join(_line(i, f"GET /s?{q} HTTP/1.1") + "\n" for i, q in enumerate(queries)))
    result = read_access_logs(path, "nginx", pool_limit=2)
    assert result.measurement.labels["query_values_dropped"] == "2 e-mail, 2 secret-like"
    (stats,) = result.measurement.endpoints
    assert stats.request is not None
    assert stats.request.params == {"q": ("1", "2")}


def test_a_pool_of_processes_gives_the_result_of_one(tmp_path: Path) -> None:
    lines = _mixed_lines(900)
    files = []
    for i in range(3):
        path = tmp_path / f"part{i}.log.gz"
        path.write_bytes(gzip.compress(("\n".join(lines[i * 300 : (i + 1) * 300]) + "\n").encode()))
        files.append(path)
    window = Window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=60))
    one = read_access_logs(files, "nginx", max_malformed_share=0.2, pool_limit=3, window=window, workers=1)
    pool = read_access_logs(files, "nginx", max_malformed_share=0.2, pool_limit=3, window=window, workers=2)
    assert measurement_json.dumps(one.measurement) == measurement_json.dumps(pool.measurement)
    fields = ("lines", "malformed", "malformed_examples", "skipped", "skipped_reasons", "no_latency", "before_window")
    assert [getattr(one, f) for f in fields] == [getattr(pool, f) for f in fields]
    assert one.outside_window > 0
    assert one.malformed_examples[0].startswith(f"{files[0]}:")


def test_a_target_whose_first_scheme_mark_starts_it_is_skipped_as_the_exact_parser_skips_it() -> None:
    """``GET ://x://y/z``: _request_line finds "://" at the target's start and refuses the line; the column-wise
    absolute-target pattern must not find the later "://" and read it as ``GET /z``."""
    requests = ["GET ://x://y/z HTTP/1.1", "GET :://x/y HTTP/1.1", "GET h://x/y HTTP/1.1", "GET /plain HTTP/1.1"]
    block = ("\n".join(_line(i, r) for i, r in enumerate(requests)) + "\n").encode()
    spec = _ParserSpec("nginx", -1, False)
    fast = _fast_chunk("a.log", block, 0, spec, spec.exact())
    assert fast is not None
    _same_chunk(fast[0], _exact_chunk("a.log", block, 0, spec.exact())[0])
    keys = fast[0].keys
    assert not isinstance(keys, tuple)
    assert [keys[c].as_py() for c in fast[0].code] == ["GET /y", "GET /y", "GET /plain"]
    assert [e[2] for e in fast[0].events] == ["a.log:1: no usable request line: 'GET ://x://y/z HTTP/1.1'"]


def test_a_last_line_without_newline_of_max_line_chars_is_overlong_as_in_the_exact_parser(tmp_path: Path) -> None:
    """The exact reader calls a line of MAX_LINE_CHARS characters without a newline overlong (malformed); the
    column-wise parse must not take it when it ends the file without its newline."""
    from parity.sources.access_log import MAX_LINE_CHARS

    first = _line(0, "GET /x HTTP/1.1")
    base = len(_line(1, "GET /a HTTP/1.1"))
    long = _line(1, "GET /a" + "b" * (MAX_LINE_CHARS - base) + " HTTP/1.1")
    assert len(long) == MAX_LINE_CHARS
    block = (first + "\n" + long).encode()
    spec = _ParserSpec("nginx", -1, False)
    exact = _exact_chunk("a.log", block, 0, spec.exact())[0]
    assert [e[2] for e in exact.events] == [f"a.log:2: longer than {MAX_LINE_CHARS} characters"]
    fast = _fast_chunk("a.log", block, 0, spec, spec.exact())
    if fast is not None:
        _same_chunk(fast[0], exact)
    path = tmp_path / "a.log"
    path.write_bytes(block)
    result = read_access_logs([path], fmt="nginx", max_malformed_share=1.0)
    assert (result.requests, result.malformed) == (1, 1)


def test_lines_ended_by_carriage_returns_alone_are_read_past_the_overlong_limit(tmp_path: Path) -> None:
    """Universal newlines, as the reader always read files: a run of lines ended by "\\r" alone, longer in all than
    an overlong line and with no "\\n" after it, is lines (not one overlong line dropped)."""
    lf = [_line(i, f"GET /api/a/{i} HTTP/1.1") for i in range(3)]
    cr = [_line(i, f"GET /api/b/{i} HTTP/1.1") for i in range(3000)]  # ~300 kB without a "\n"
    path = tmp_path / "a.log"
    path.write_bytes(("\n".join(lf) + "\n" + "\r".join(cr) + "\r").encode())  # the file ends in the "\r" run
    result = read_access_logs([path], fmt="nginx")
    assert (result.requests, result.malformed, result.lines) == (3003, 0, 3003)


def test_too_many_endpoints_is_bad_input_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The aggregator's endpoint limit (2**20 distinct routes: paths with a unique slug per request) ends the
    reading with a one-line BadInput naming the file, not a ValueError traceback (limit lowered to 3)."""
    from parity.errors import BadInput
    from parity.sources import aggregate

    monkeypatch.setattr(aggregate, "MAX_ENDPOINTS", 3)
    path = tmp_path / "many.log"
    path.write_text("".join(_line(i, f"GET /search/term-{'abcdefgh'[i]} HTTP/1.1") + "\n" for i in range(5)))
    with pytest.raises(BadInput, match=r"many\.log: more than 3 distinct endpoints"):
        read_access_logs([path], fmt="nginx")


def test_a_truncated_gzip_file_is_refused_naming_the_last_whole_line_read(tmp_path: Path) -> None:
    """As the line-by-line reader did: the message names the last whole line decompressed before the stream broke,
    not the last line of an earlier block (one read of a whole block lost what it had decompressed)."""
    import zlib

    from parity.errors import BadInput

    text = "".join(_line(i, f"GET /a/{i} HTTP/1.1") + "\n" for i in range(6000))
    data = gzip.compress(text.encode())
    cut = data[: len(data) * 2 // 3]
    path = tmp_path / "cut.log.gz"
    path.write_bytes(cut)
    whole_lines = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")  # all a stream reader gets
    assert 3000 < whole_lines < 6000
    with pytest.raises(BadInput, match=rf"cut\.log\.gz: gzip data broken after line {whole_lines} "):
        read_access_logs([path], fmt="nginx")
