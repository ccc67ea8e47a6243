"""The k6 and JMeter readers as chunk generators: each format's chunks give the same Measurement folded by the
RequestAggregator as recorded row by row (tests/aggregate_support.py), across several blocks, and the fast
block parse gives the same requests as the exact per-line / pandas reading it falls back to."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parity.errors import BadInput
from parity.model import Measurement, Source, SourceKind
from parity.replay.recorder import timeline_interval
from parity.sources import jmeter, k6
from parity.sources.aggregate import RequestChunk
from parity.sources.load_tool import fold_requests, route_of, split_label
from tests.aggregate_support import assert_same_measurement, row_path_measurement

T0 = 1772445600.0
URLS = ["http://127.0.0.1:8080/api/users/{}", "http://127.0.0.1:8080/api/orders", "/posts/{}/comments/${{}}", "login"]


def _k6_file(path: Path, n: int = 3000) -> None:
    """A k6 --out json file with the lines k6 writes around each request, statuses 200/500/0, names of every
    kind (URL, path, template literal, free text); a blank line in the middle (the per-line path for that
    block)."""
    rng = np.random.default_rng(7)
    out = ['{"type":"Metric","data":{"name":"http_reqs","type":"counter"},"metric":"http_reqs"}']
    for i in range(n):
        url = URLS[i % 4].format(int(rng.integers(1, 50)))
        status = ["200", "200", "500", "0"][int(rng.integers(0, 4))]
        tags = {"method": "GET" if i % 3 else "post ", "name": url, "status": status, "url": url}
        if i % 5:
            tags["expected_response"] = "true" if status == "200" else "false"
        ms = float(rng.lognormal(3, 0.6))
        end = f"2026-03-02T10:{i * 20 // 60000:02d}:{(i * 20 % 60000) / 1000:06.3f}Z"
        for metric, value in (("http_reqs", 1), ("http_req_duration", ms), ("http_req_failed", status != "200")):
            out.append(
                json.dumps(
                    {"metric": metric, "type": "Point", "data": {"time": end, "value": float(value), "tags": tags}}
                )
            )
        if i == n // 2:
            out.append("")
    path.write_text("\n".join(out) + "\n")


def _both_paths(m: Measurement, chunks: list[RequestChunk]) -> None:
    """``m`` (the reader's, folded by the aggregator) equals the chunks recorded one request at a time."""
    row = row_path_measurement(
        chunks,
        timeline_interval(m.window.duration_s),
        source=m.source,
        start=m.window.start,
        end=m.window.end,
        latency_kind=m.latency_kind,
        labels=m.labels,
    )
    assert_same_measurement(m, row)


def test_k6_chunks_fold_as_rows_and_match_the_per_line_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k6.json"
    _k6_file(path)
    monkeypatch.setattr(k6, "BLOCK_BYTES", 64 << 10)  # a dozen blocks, one read line by line (the blank line)
    m = k6.read_k6_json(path)
    chunks = [c.requests for c in k6._chunks(path, [])]
    assert len(chunks) > 5
    _both_paths(m, chunks)
    # the per-line meaning, row by row: method stripped and upper-cased, name templated, k6's verdicts
    expected: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        obj = json.loads(line) if line else {}
        if obj.get("metric") == "http_req_duration":
            tags = obj["data"]["tags"]
            key = f"{tags['method'].strip().upper()} {route_of(tags['name'])}"
            exp = tags.get("expected_response")
            error = exp != "true" if exp is not None else tags["status"] in ("0", "500")
            counts = expected.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += error
    assert {e.endpoint.key: [e.count, e.errors] for e in m.endpoints} == expected
    gz = tmp_path / "k6.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    packed = k6.read_k6_json(gz)
    assert [(e.endpoint, e.count, e.errors, e.latency) for e in packed.endpoints] == [
        (e.endpoint, e.count, e.errors, e.latency) for e in m.endpoints
    ]


def test_k6_crlf_lines_take_the_fast_path_and_read_as_lf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A k6 file with CRLF line ends (written or copied on Windows) is parsed block-wise like LF (not line by line),
    with the same requests and the same line numbers in messages; a lone CR still takes the per-line reading."""
    lf, crlf = tmp_path / "lf.json", tmp_path / "crlf.json"
    _k6_file(lf)
    crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))
    monkeypatch.setattr(k6, "BLOCK_BYTES", 64 << 10)
    want, got = k6.read_k6_json(lf), k6.read_k6_json(crlf)
    assert_same_measurement(replace(got, source=want.source), want)
    block = b"".join(line for line in crlf.read_bytes().splitlines(keepends=True)[:200] if line.strip())
    rows = k6._fast_rows(block, 1, block.count(b"\n"))
    assert rows is not None
    assert len(rows.lines) > 50
    point = b'"http_req_duration", "type": "Point", "data": {"time": "2026-03-02T10:00:50.000Z"'
    line = lf.read_bytes().split(point)[0].count(b"\n") + 1
    for name, data in (("bad-lf.json", lf.read_bytes()), ("bad-crlf.json", crlf.read_bytes())):
        bad = tmp_path / name
        bad.write_bytes(data.replace(point, point.replace(b"2026", b"1900"), 1))
        with pytest.raises(BadInput, match=rf"line {line}: time: "):
            k6.read_k6_json(bad)
    lone = tmp_path / "lone-cr.json"
    lone.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\r", 1))  # the first line ends with CR alone
    assert k6._fast_rows(lone.read_bytes()[:4096].rsplit(b"\n", 1)[0] + b"\n", 1, 1) is None
    assert_same_measurement(replace(k6.read_k6_json(lone), source=want.source), want)


def _jtl_rows(n: int = 3000) -> list[tuple[int, int, str, str, str, str]]:
    rng = np.random.default_rng(11)
    labels = ["GET /api/users/{}", "POST http://h/api/orders/{}", "Login", " get /x/{} "]
    rows = []
    for i in range(n):
        code = ["200", "500", "Non HTTP response code: java.net.ConnectException"][int(rng.integers(0, 3))]
        message = "Number of samples in transaction : 2" if i % 97 == 0 else ("OK" if code == "200" else "Bad")
        rows.append(
            (
                round((T0 + i * 0.05) * 1000),
                int(rng.integers(0, 900)),
                labels[i % 4].format(i % 40),
                code,
                message,
                "true" if code == "200" else "false",
            )
        )
    return rows


def test_jtl_csv_chunks_fold_as_rows_and_match_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.jtl"
    lines = ["timeStamp,elapsed,label,responseCode,responseMessage,success,failureMessage"]
    for ts, ms, label, code, message, ok in _jtl_rows():
        failure = "" if ok == "true" else "two\nlines"
        lines.append(f'{ts},{ms},{label},{code},"{message}",{ok},"{failure}"')
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(jmeter, "CSV_BLOCK_BYTES", 16 << 10)
    m = jmeter.read_jtl_csv(path)
    fast = [c.requests for c in jmeter._csv_chunks(path, ",", jmeter._Checked(), [0])]
    assert len(fast) > 5
    _both_paths(m, fast)
    slow = [c.requests for c in jmeter._pandas_chunks(path, ",", jmeter._Checked(), [0])]
    _both_paths(m, slow)  # pyarrow in blocks and pandas whole: the same requests
    assert "31 Transaction Controller line(s) skipped" in m.source.description


def _cut_jtl(path: Path, cut: str, newline: str = "\n") -> None:
    """A JTL CSV whose last line is cut short (JMeter killed while writing it): ``cut`` names where."""
    lines = ["timeStamp,elapsed,label,responseCode,responseMessage,success,failureMessage"]
    for ts, ms, label, code, message, ok in _jtl_rows():
        lines.append(f'{ts},{ms},{label},{code},"{message}",{ok},"{"" if ok == "true" else "two lines"}"')
    last = lines.pop()
    fields = last.split(",")
    ends = {
        "in timeStamp": 5,
        "after label": len(",".join(fields[:3])) + 1,
        "in responseMessage": len(",".join(fields[:4])) + 3,  # an open quote: the whole-file reading decides
        "in success": len(",".join(fields[:5])) + 3,
        "after success": len(",".join(fields[:6])) + 1,
        "whole, no line end": len(last),
    }
    path.write_bytes((newline.join(lines) + newline + last[: ends[cut]]).encode())


def _exact_reading(path: Path) -> tuple[Measurement | None, str, int]:
    """(measurement or None, message or "", Transaction Controller lines skipped) of the whole-file pandas reading
    (the exact one, which read every file with a cut-short last line before)."""
    skipped = [0]
    try:
        folded = fold_requests(path, jmeter._pandas_chunks(path, ",", jmeter._Checked(), skipped))
    except BadInput as exc:
        return None, str(exc), skipped[0]
    return folded.measurement(source=Source(SourceKind.JMETER), labels={"format": "jmeter-csv"}), "", skipped[0]


@pytest.mark.parametrize(
    ("cut", "newline"),
    [("in timeStamp", "\n"), ("after label", "\n"), ("in responseMessage", "\n"), ("in success", "\r\n"),
     ("after success", "\n"), ("after success", "\r\n"), ("whole, no line end", "\n")],
)  # fmt: skip
def test_jtl_csv_cut_short_streams_and_reads_as_the_whole_file_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str, newline: str
) -> None:
    """JMeter killed mid-run leaves a last line cut short: its complete lines are still read by pyarrow in blocks
    (memory bounded) and only the cut line by the exact reading, with the same result or message as the whole-file
    pandas reading gives the whole file."""
    path = tmp_path / "cut.jtl"
    _cut_jtl(path, cut, newline)
    monkeypatch.setattr(jmeter, "CSV_BLOCK_BYTES", 16 << 10)
    want, message, skipped = _exact_reading(path)
    if want is None:
        with pytest.raises(BadInput) as got:
            jmeter.read_jtl_csv(path)
        assert str(got.value) == message
    else:
        m = jmeter.read_jtl_csv(path)
        assert_same_measurement(replace(m, source=want.source), want)
        assert f"{skipped} Transaction Controller line(s) skipped" in m.source.description
    if cut != "in responseMessage":
        blocks = 0
        try:  # the complete lines in blocks: _Unreadable (the whole-file reading) would fail the test here
            for _ in jmeter._csv_chunks(path, ",", jmeter._Checked(), [0]):
                blocks += 1
        except BadInput:
            pass
        assert blocks > 5


def test_jtl_xml_chunks_fold_as_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.xml"
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<testResults version="1.2">']
    for ts, ms, label, code, message, ok in _jtl_rows():
        out.append(
            f'<httpSample t="{ms}" ts="{ts}" s="{ok}" lb="{label}" rc="{code}" rm="{message}">'
            f'<httpSample t="1" ts="{ts}" s="true" lb="nested" rc="200"/></httpSample>'
        )
    out.append("</testResults>")
    path.write_text("\n".join(out) + "\n")
    monkeypatch.setattr(jmeter, "XML_CHUNK_SAMPLES", 500)
    monkeypatch.setattr(jmeter, "_XML_READ_BYTES", 16 << 10)
    m = jmeter.read_jtl_xml(path)
    chunks = [c.requests for c in jmeter._xml_chunks(path, jmeter._Checked(), [0])]
    assert len(chunks) > 5
    _both_paths(m, chunks)
    assert sum(e.count for e in m.endpoints) == 3000 - 31
    assert {e.endpoint.key for e in m.endpoints} == {
        split_label(lb).__getitem__(0) + (" " if split_label(lb)[0] else "") + split_label(lb)[1]
        for _, _, lb, *_ in _jtl_rows()
    } - {"nested"}


@pytest.mark.parametrize(("field", "row"), [("elapsed", "1772445600000,0x10,GET /a,true"),
                                            ("timeStamp", "0x19CAD6E8D00,12,GET /a,true")])  # fmt: skip
def test_jtl_hex_numbers_are_bad_input_as_pandas_reads_them(tmp_path: Path, field: str, row: str) -> None:
    """pyarrow casts ``0x10`` to 16 where pandas (the reading the messages come from) sees no number: a hex value
    is a bad value in both JTL formats, not a silently different time."""
    path = tmp_path / "hex.jtl"
    path.write_text(f"timeStamp,elapsed,label,success\n1772445600000,5,GET /a,true\n{row}\n")
    with pytest.raises(BadInput, match=f"line 3: {field}: expected .*got '0x"):
        jmeter.read_jtl_csv(path)
    ts, ms = row.split(",")[:2]
    xml = tmp_path / "hex.xml"
    xml.write_text(
        f'<testResults version="1.2">\n<httpSample t="5" ts="1772445600000" s="true" lb="GET /a"/>\n'
        f'<httpSample t="{ms}" ts="{ts}" s="true" lb="GET /a"/>\n</testResults>\n'
    )
    with pytest.raises(BadInput, match=f"line 3: {field}: expected .*got '0x"):
        jmeter.read_jtl_xml(xml)


def test_too_many_endpoints_is_bad_input_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The aggregator's endpoint limit (2**20 distinct labels: a label holding a unique id per sample) ends the
    reading with a one-line BadInput naming the file, not a ValueError traceback."""
    from parity.sources import aggregate

    monkeypatch.setattr(aggregate, "MAX_ENDPOINTS", 3)
    path = tmp_path / "many.jtl"
    rows = "".join(f"{1772445600000 + i},5,Request {i},true\n" for i in range(5))
    path.write_text("timeStamp,elapsed,label,success\n" + rows)
    with pytest.raises(BadInput, match=r"many\.jtl: more than 3 distinct endpoints"):
        jmeter.read_jtl_csv(path)


def test_k6_lone_surrogate_escape_is_bad_input(tmp_path: Path) -> None:
    """JSON lets a string hold ``\\ud800`` (half of a surrogate pair, no character): a name or time holding one is
    a bad line named by the reader (exit 2), not a UnicodeEncodeError traceback (exit 1, as a regression)."""
    good = {"time": "2026-03-02T10:00:00Z", "value": 12.0, "tags": {"method": "GET", "name": "/a", "status": "200"}}
    for field in ("name", "time"):
        bad = json.loads(json.dumps(good))
        if field == "name":
            bad["tags"]["name"] = "/a\ud800"
        else:
            bad["time"] = "2026-03-02T10:00:01\ud800Z"
        path = tmp_path / f"{field}.json"
        path.write_text(
            "\n".join(json.dumps({"type": "Point", "metric": "http_req_duration", "data": d}) for d in (good, bad))
            + "\n"
        )
        with pytest.raises(BadInput, match=r"line 2: http_req_duration: .*surrogate"):
            k6.read_k6_json(path)
