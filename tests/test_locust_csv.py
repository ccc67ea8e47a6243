"""Locust request logs read in blocks: the fast (pyarrow) and exact (pandas) paths, damaged files refused naming
the line whatever the block boundaries, gzip, and the same Measurement as the row-at-a-time recorder."""

from __future__ import annotations

import gzip
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity.errors import BadInput
from parity.model import LatencyKind, Source, SourceKind
from parity.replay.recorder import timeline_interval
from parity.sources import load_measurement, locust_csv
from parity.sources.aggregate import RequestAggregator, RequestChunk
from parity.sources.locust_csv import (
    COLUMNS,
    WINDOW_TAIL_S,
    _Block,
    _blocks,
    _exact_chunk,
    _fast_chunk,
    _header,
    _quotes_regular,
    _quotes_regular_many,
    read_locust_csv,
    request_chunks,
)
from tests.aggregate_support import assert_same_measurement, row_path_measurement

HEADER = ",".join(COLUMNS)
#: Block sizes (bytes) that cut the small test files into many blocks (and one smaller than a record).
SMALL_BLOCKS = [None, 61, 700]


def _rows(n: int, seed: int = 7) -> list[str]:
    """``n`` varied rows: two methods (one with a stray space), 12 names, no-response rows, and exceptions with
    commas, doubled quotes and line breaks (quoted, as csv.writer writes them)."""
    rng = random.Random(seed)
    exceptions = ["", "", "", "boom", "\"HTTPError('500, x')\"", '"multi\nline, ""quoted"""']
    rows = []
    for i in range(n):
        status = rng.choice([200, 200, 201, 500, 0])
        rows.append(
            f"{1_800_000_000 + i * 0.37 + rng.random():.6f},{rng.choice(['GET', 'POST', ' GET'])},"
            f"/api/{rng.randrange(12)}/{{id}},{rng.lognormvariate(3, 1):.2f},12,{status},{rng.choice(exceptions)}"
        )
    return rows


def _write(path: Path, rows: list[str], newline: str = "\n", bom: bool = False) -> Path:
    text = ("\ufeff" if bom else "") + newline.join([HEADER, *rows]) + newline
    path.write_bytes(text.encode("utf-8"))
    return path


def test_blocks_through_the_aggregator_equal_the_recorder_row_by_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "requests.csv", _rows(400), newline="\r\n", bom=True)
    whole = read_locust_csv(path)
    assert whole.total_count == 400
    chunks = list(request_chunks([path], block_bytes=700))
    assert len(chunks) > 10  # many blocks, each parsed on its own
    sent = np.concatenate([c.sent_s for c in chunks])
    start = datetime.fromtimestamp(float(sent.min()), UTC)
    end = datetime.fromtimestamp(float(sent.max()) + WINDOW_TAIL_S, UTC)
    kw: dict[str, Any] = {
        "source": Source(SourceKind.LOCUST_CSV, description="Locust request log requests.csv"),
        "start": start,
        "end": end,
        "latency_kind": LatencyKind.SERVICE_TIME,
    }
    aggregator = RequestAggregator()
    for chunk in chunks:
        aggregator.add(chunk)
    interval = timeline_interval((end - start).total_seconds())
    assert_same_measurement(aggregator.to_measurement(**kw), row_path_measurement(chunks, interval, **kw))
    assert_same_measurement(whole, aggregator.to_measurement(**kw))  # one block or many: the same
    by = whole.by_key()
    assert set(by) == {f"{m} /api/{i}/{{id}}" for m in ("GET", "POST") for i in range(12)}  # " GET" stripped


def _same_requests(a: RequestChunk, b: RequestChunk) -> None:
    assert [a.keys[i] for i in a.endpoint] == [b.keys[i] for i in b.endpoint]
    np.testing.assert_array_equal(a.sent_s, b.sent_s)
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)
    np.testing.assert_array_equal(a.errors, b.errors)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fast_and_exact_paths_read_a_block_alike(tmp_path: Path, newline: str) -> None:
    rows = [*_rows(60), "1800000100,GET,\u00a0/odd\u2003,1.5,0,200,\u00a0", "1800000101,NA,NULL,2,0,0,nan"]
    path = _write(tmp_path / "r.csv", rows, newline=newline)
    first = next(_blocks(path, 1 << 20))
    header, names = _header(first)
    block = _Block(first.buf, first.start + len(header), first.end)
    fast = _fast_chunk(block, names, quoted=True)
    assert fast is not None
    chunk, newlines = fast
    assert newlines == block.count(b"\n")
    _same_requests(chunk, _exact_chunk(header, block.tobytes(), path, 2))
    assert chunk.keys.count(("", "")) == 0
    assert ("GET", "/odd") in chunk.keys
    assert ("NA", "NULL") in chunk.keys  # text is text: no "not available" guessing
    assert chunk.errors[-1]  # "nan" is an exception's text


_GOOD = "1800000001,GET,/a,1,1,200,"


@pytest.mark.parametrize("block", SMALL_BLOCKS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("1800000001,GET,/,4.96,585,200,1800000002,GET,/,6.02,585,200,", "line 43: 13 fields, expected 7; several"),
        ("9,585,200,", "line 43: 4 fields, expected 7"),
        ("", "line 43: 1 fields, expected 7"),  # a blank line (pyarrow would skip it)
        (f"{_GOOD}\r{_GOOD}", "line 43: 13 fields, expected 7"),  # a lone CR (pyarrow would end a row there)
        ('1800000001,GET,/a"b,1,1,200,', "line 43: 4 fields, expected 7"),  # a quote mid-field toggles
        (HEADER, "line 43: the header again, mid-file"),
        ("1800000001,GET,/a,abc,1,200,", "line 43: response_time_ms: expected a latency in ms (0 to 1e+10), got 'abc'"),
        ("1800000001,GET,/a,-1,1,200,", "line 43: response_time_ms"),
        ("1800000001,GET,/a,1,1,", "line 43: 6 fields"),
        ("1800000001,GET,/a,1,1,1000,", "line 43: status_code"),
        ("1800000001,GET,/a,1,1,NA,", "line 43: status_code"),
        ("1800000001,,/a,1,1,200,", "line 43: request_type: empty"),
        ("1800000001,GET, ,1,1,200,", "line 43: name: empty"),
        ("inf,GET,/a,1,1,200,", "line 43: timestamp: expected a Unix time"),
    ],
)
def test_damage_anywhere_names_its_line_whatever_the_blocks(
    tmp_path: Path, block: int | None, bad: str, message: str
) -> None:
    rows = [*(f"{1_800_000_000 + i},GET,/a,{i},1,200," for i in range(20)), '1800000020,GET,/b,1,1,0,"x,\ny"']
    rows += [f"{1_800_000_030 + i},GET,/a,{i},1,200," for i in range(19)]  # lines 2-42: the header, 41 records
    path = _write(tmp_path / "requests.csv", [*rows, bad, *rows[:30]])
    with pytest.raises(BadInput) as err:
        list(request_chunks([path], block_bytes=block))
    assert str(err.value).startswith(f"{path}: {message}")


def test_nul_bytes_and_bad_utf8_name_their_line(tmp_path: Path) -> None:
    head = (HEADER + "\n" + "".join(f"{_GOOD}\n" for _ in range(5))).encode()
    hole = tmp_path / "hole.csv"
    hole.write_bytes(head + b"\0\0\0,GET,/,1,1,200,\n" + f"{_GOOD}\n".encode())
    text = tmp_path / "latin1.csv"
    text.write_bytes(head + b"1800000001,GET,/a,1,1\xfe,200,\n")
    for block in SMALL_BLOCKS:
        with pytest.raises(BadInput, match=r"hole.csv: line 7: NUL bytes"):
            list(request_chunks([hole], block_bytes=block))
        with pytest.raises(BadInput, match=r"latin1.csv: line 7: not a readable CSV: not UTF-8 text"):
            list(request_chunks([text], block_bytes=block))


def test_gzip_logs_read_as_streams_alone_and_in_a_directory(tmp_path: Path) -> None:
    rows = _rows(200, seed=3)
    plain = _write(tmp_path / "plain.csv", rows)
    logs = tmp_path / "logs"
    logs.mkdir()
    packed = logs / "requests-1.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    (logs / "requests-0.csv").write_text(HEADER + "\n")  # the master's header-only file
    alone = load_measurement(packed)
    assert_same_measurement(replace(read_locust_csv(plain), source=alone.source), alone)
    assert load_measurement(logs).total_count == 200
    chunks = list(request_chunks([packed], block_bytes=500))
    assert sum(len(c) for c in chunks) == 200
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(packed.read_bytes()[:-200])
    with pytest.raises(BadInput, match=r"broken.csv.gz: gzip data broken"):
        read_locust_csv(broken)


@pytest.mark.parametrize(
    ("text", "regular", "inside"),
    [
        (b'1,"a,b",2\n3,"x\ny",4\r\n', True, 1),
        (b'1,"a""b",2\n"""",3\n', True, 0),
        (b'1,"",2\n', True, 0),
        (b'1,a"b,2\n', False, 0),  # a quote mid-field
        (b'1,"ab"c,2\n', False, 0),  # text after a closing quote
        (b'1,"ab"\rc\n', False, 0),  # a lone CR after a closing quote
        (b'1,"ab,2\n', False, 0),  # never closed
    ],
)
def test_quote_checks_one_by_one_and_vectorised_agree(text: bytes, regular: bool, inside: int) -> None:
    block = _Block(bytearray(b"xx" + text), 2, 2 + len(text))
    assert _quotes_regular(block)[0] is regular
    assert _quotes_regular_many(block)[0] is regular
    if regular:
        assert _quotes_regular(block) == _quotes_regular_many(block) == (True, inside)


def test_many_quotes_take_the_vectorised_checks_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "requests.csv", _rows(300, seed=5))
    torn = _write(tmp_path / "torn.csv", [*_rows(40, seed=6), '1800000001,GET,/a"b,1,1,200,', *_rows(20)])
    measurement = read_locust_csv(path)
    expected = [list(request_chunks([path], block_bytes=b)) for b in (None, 700)]
    with pytest.raises(BadInput) as one_by_one:
        list(request_chunks([torn], block_bytes=700))
    monkeypatch.setattr(locust_csv, "_FEW_QUOTES", 2)  # every block counts as having many quotes
    assert_same_measurement(read_locust_csv(path), measurement)
    for block, chunks in zip((None, 700), expected, strict=True):
        again = list(request_chunks([path], block_bytes=block))
        assert len(again) == len(chunks)
        for a, b in zip(again, chunks, strict=True):
            _same_requests(a, b)
    with pytest.raises(BadInput) as vectorised:
        list(request_chunks([torn], block_bytes=700))
    assert str(vectorised.value) == str(one_by_one.value)
