"""Source: Locust per-request CSV logs (``locust.contrib.csv_request_logger``) → Measurement.

Columns: timestamp (Unix s, send time), request_type, name, response_time_ms, response_length,
status_code (0 = no response), exception (empty = success). A row is an error when ``exception`` is set;
latency counts only for rows that got a response (status_code > 0). Endpoint = request_type + name.
The window runs from the first send to just after the last one; the latency is client-side service time.
A leading byte-order mark is skipped; a gzip-compressed log (recognised by its magic bytes) is read as a stream.
Timestamps must lie between 1970 and 2100 and within ``MAX_SPAN_S`` of each other, latencies between 0 and
``parity.bounds.MAX_LATENCY_MS``, status codes between 0 and 999; anything else (NaN, inf, negative) is BadInput
naming the line and column.

**Several Locust processes** (``--processes N``, master + workers): ``CsvRequestLogger(path)`` created at import
and registered in ``events.init`` opens ``path`` with mode "w" in *every* process after the fork: each
truncates the file and writes at its own offset, so rows overwrite each other (measured with Locust 2.47,
``--processes 2``: torn rows such as ``...,200,11796075209.06,GET,/,...``, rows lost). Such a file cannot be
repaired. It is refused: a record with a field count other than 7, a header repeated mid-file, or NUL bytes
(a hole left by a truncation) is BadInput naming the line. Rows that are only out of time order are fine.
Log one file per process instead (create the logger inside the ``init`` listener with the process id in its
name) and pass the directory, or a quoted glob, to ``parity compare``: :func:`read_locust_csvs` merges them
(a master's file with only a header adds nothing).

**Speed** (:func:`request_chunks`): a file is read (plain, or gzip as a stream) into one reused buffer in blocks of
about ``BLOCK_BYTES`` cut at a newline outside quotes; each block is parsed by ``pyarrow.csv`` (multithreaded,
column-wise, text dictionary-encoded) into one :class:`RequestChunk`, folded into a :class:`RequestAggregator`
while the next block is parsed in a thread: memory is bounded by the block size and the aggregator's bins, not by
the rows. The fast path takes a block only when pyarrow parsed 7 fields on every line, every value is in range and
no method or name is empty. That is the exact check's verdict when the block has no lone carriage return (pyarrow
ends a line at ``\r`` too, the exact check only at ``\n``: compared by counting newlines) and only regular CSV
quoting (checked quote by quote; the exact check toggles at every ``"``, a CSV parser only at a field's start and
end). Any other block (a pyarrow error, a NUL byte, irregular quotes, a value out of range, an empty name) is read
again by the exact path — the per-byte field count, pandas on string columns, the checks that name the line and
column — so results and messages are the exact path's by construction. Lines are physical lines (a quoted
exception with a line break counts its lines).
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import itertools
import queue
import threading
import zlib
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput
from parity.model import LatencyKind, Measurement, Source, SourceKind
from parity.sources import LOCUST_CSV_COLUMNS
from parity.sources.aggregate import RequestAggregator, RequestChunk

__all__ = ["BLOCK_BYTES", "COLUMNS", "read_locust_csv", "read_locust_csvs", "request_chunks"]

COLUMNS = LOCUST_CSV_COLUMNS
#: Added to the last send time to close the window (s), so a one-request log has a non-empty window.
WINDOW_TAIL_S = 0.001
#: Longest span of send times accepted, s: a log covers one run (mixed-up files would make a huge timeline).
MAX_SPAN_S = 31 * 86400.0
#: Bytes read per block (a block is cut at the last newline outside quotes, so it holds whole records): about
#: 500k rows; peak memory is a few times this (the block, pyarrow's columns, the chunk's arrays).
BLOCK_BYTES = 32 << 20
#: Longest record read (bytes): a quoted field running on further means quotes that never balance (torn rows).
MAX_RECORD_BYTES = 256 << 20
#: Said after every refusal of a damaged log: the usual cause and the fix.
SEVERAL_WRITERS = (
    "several Locust processes wrote this one file (--processes / workers) and their rows overwrote each other; "
    "log one file per process and pass their directory (README: Locust request logs)"
)
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
#: (column, lowest, highest, what is expected) of the numeric columns, checked in this order.
_NUMERIC = (
    ("timestamp", MIN_UNIX_S, MAX_UNIX_S, "a Unix time in seconds (1970 to 2100)"),
    ("response_time_ms", 0.0, MAX_LATENCY_MS, f"a latency in ms (0 to {MAX_LATENCY_MS:g})"),
    ("status_code", 0.0, 999.0, "an HTTP status code (0 = no response)"),
)
_TEXT = pa.dictionary(pa.int32(), pa.string())
_TYPES = {
    "timestamp": pa.float64(),
    "request_type": _TEXT,
    "name": _TEXT,
    "response_time_ms": pa.float64(),
    "response_length": pa.string(),  # not used: parsed so that its text is checked to be UTF-8, as pandas does
    "status_code": pa.float64(),
    "exception": pa.string(),  # mostly empty: read plainly, the few set values looked at once each (_failures)
}
#: Largest (methods × names) product mapped with a dense lookup table; beyond it endpoints are numbered by sorting.
_DENSE_KEYS = 1 << 22
#: Quotes in a block looked at one by one (more: with numpy) when checking that quoting is regular.
_FEW_QUOTES = 100_000


# --- reading blocks ----------------------------------------------------------------------------------------------


@contextmanager
def _binary(p: Path) -> Iterator[io.BufferedReader | gzip.GzipFile]:
    """``p`` opened for reading bytes, gzip-decompressed as a stream when it starts with gzip's magic bytes;
    BadInput when it cannot be opened."""
    try:
        fh = p.open("rb")
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read: {exc.strerror or exc}") from None
    with fh:
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        if compressed:
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                yield gz
        else:
            yield fh


class _Block:
    """Whole records: bytes ``start:end`` of ``buf``, a buffer the next block reuses (so use a block before
    asking for the next one, and keep no view of it)."""

    __slots__ = ("buf", "end", "start")

    def __init__(self, buf: bytearray, start: int, end: int) -> None:
        self.buf, self.start, self.end = buf, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def has(self, sub: bytes) -> bool:
        return self.buf.find(sub, self.start, self.end) >= 0

    def count(self, sub: bytes) -> int:
        return self.buf.count(sub, self.start, self.end)

    def endswith(self, sub: bytes) -> bool:
        return self.buf.endswith(sub, self.start, self.end)

    def view(self) -> memoryview:
        return memoryview(self.buf)[self.start : self.end]

    def tobytes(self) -> bytes:
        return bytes(self.buf[self.start : self.end])


def _quote_positions(buf: bytearray, start: int, end: int) -> list[int] | None:
    """Positions of the ``"`` in ``buf[start:end]`` (one memchr pass), or None when there are more than
    ``_FEW_QUOTES`` (then numpy is faster)."""
    found: list[int] = []
    at = buf.find(b'"', start, end)
    while at >= 0:
        if len(found) == _FEW_QUOTES:
            return None
        found.append(at)
        at = buf.find(b'"', at + 1, end)
    return found


def _cut(buf: bytearray, end: int) -> int:
    """Index just after the last newline of ``buf[:end]`` that lies outside quotes (``buf`` starts outside
    quotes; every ``"`` toggles, as in :func:`_records`), 0 when there is none."""
    nl = buf.rfind(b"\n", 0, end)
    quotes = _quote_positions(buf, 0, end) if nl >= 0 else []
    if quotes is None:  # many quotes: count them
        before = buf.count(b'"', 0, nl)
        while nl >= 0 and before % 2:
            prev = buf.rfind(b"\n", 0, nl)
            before -= buf.count(b'"', prev + 1, nl)
            nl = prev
        return nl + 1
    while nl >= 0 and bisect.bisect_left(quotes, nl) % 2:
        nl = buf.rfind(b"\n", 0, nl)
    return nl + 1


class _Unterminated(Exception):
    """A quoted field runs on for more than ``MAX_RECORD_BYTES``: the quotes never balance."""


def _fill(p: Path, fh: io.BufferedReader | gzip.GzipFile, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; the bytes read. BadInput when the file cannot be
    read (a broken gzip stream included)."""
    filled = 0
    try:
        while filled < len(view):
            n = fh.readinto(view[filled:])
            if not n:
                break
            filled += n
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BadInput(f"{p}: gzip data broken (truncated file?): {exc}") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read: {exc.strerror or exc}") from None
    return filled


def _blocks(p: Path, block_bytes: int) -> Iterator[_Block]:
    """The bytes of ``p`` (plain or gzip, a leading byte-order mark dropped) in blocks of whole records, read
    into one reused buffer: each block ends at a newline outside quotes (the last one where the file ends); a
    record longer than ``block_bytes`` makes the buffer longer. BadInput when the file cannot be read to the
    end; ``_Unterminated`` past ``MAX_RECORD_BYTES`` without a record end."""
    with _binary(p) as fh:
        buf = bytearray(block_bytes)
        kept = 0  # bytes of an unfinished record at the start of buf
        start = -1  # where the first block starts (after a byte-order mark), -1 before the first read
        while True:
            with memoryview(buf) as view:
                end = kept + _fill(p, fh, view[kept:])
            if start < 0:
                start = len(_BOM) if buf.startswith(_BOM, 0, end) else 0
            if end == kept:  # the file ended
                if end > start:
                    yield _Block(buf, start, end)
                return
            cut = _cut(buf, end) if end > start else 0
            if cut > start:
                yield _Block(buf, start, cut)
            keep_from = cut or start
            kept, start = end - keep_from, 0
            if keep_from:
                buf[:kept] = buf[keep_from:end]
            if not cut and end == len(buf):
                if len(buf) >= MAX_RECORD_BYTES:
                    raise _Unterminated
                buf = buf + bytearray(len(buf))  # a record longer than the buffer: double it


# --- the exact path: every check, naming the line -----------------------------------------------------------------


def _records(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Fields per CSV record of ``data`` and each record's first physical line (1-based), quote-aware and
    vectorised (a ``"`` toggles quoting; ``""`` inside quotes toggles twice). A final empty record is dropped."""
    b = np.frombuffer(data, dtype=np.uint8)
    quoted = np.cumsum(b == ord('"'), dtype=np.uint8) & 1  # parity survives the uint8 wrap-around
    newline = b == ord("\n")
    ends = np.flatnonzero(newline & (quoted == 0))
    starts = np.concatenate(([0], ends + 1))
    if starts[-1] >= len(b):
        starts = starts[:-1]
    commas = np.flatnonzero((b == ord(",")) & (quoted == 0))
    fields = np.bincount(np.searchsorted(starts, commas, side="right") - 1, minlength=len(starts)) + 1
    lines = np.cumsum(newline, dtype=np.int64)[np.maximum(starts - 1, 0)] * (starts > 0) + 1
    return fields.astype(np.int64), lines.astype(np.int64)


def _check_intact(data: bytes, p: Path, shift: int) -> npt.NDArray[np.int64]:
    """BadInput naming the first line damaged by concurrent writers: NUL bytes, or a record with a field count
    other than ``len(COLUMNS)`` (a torn or glued row). ``shift`` is added to line numbers in ``data``. Returns
    each record's first line (shifted)."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1 + shift
        raise BadInput(f"{p}: line {line}: NUL bytes (a hole left by a truncation); {SEVERAL_WRITERS}")
    fields, lines = _records(data)
    bad = fields != len(COLUMNS)
    if bad.any():
        i = int(bad.argmax())
        raise BadInput(f"{p}: line {lines[i] + shift}: {fields[i]} fields, expected {len(COLUMNS)}; {SEVERAL_WRITERS}")
    return lines + shift


def _stripped(values: Any) -> tuple[npt.NDArray[np.int64], list[str]]:
    """(per-row number of the stripped value, the distinct stripped values) of a column of strings: Python's
    ``str.strip`` on each distinct value, as the fast path does."""
    import pandas as pd

    codes, uniques = pd.factorize(values)
    seen: dict[str, int] = {}
    remap = np.asarray([seen.setdefault(str(u).strip(), len(seen)) for u in uniques], dtype=np.int64)
    return (remap[codes] if len(remap) else codes.astype(np.int64)), list(seen)


def _exact_chunk(header: bytes, body: bytes, p: Path, line: int) -> RequestChunk:
    """The records of ``body`` (whole records; its first byte is on line ``line`` of ``p``; ``header`` is the
    file's header line) read as strings by pandas and checked one column at a time: BadInput naming the first
    bad line (and column) of the block, else its requests."""
    import pandas as pd

    shift = line - 2  # the block is parsed after the header: its first record is line 2 of header + body
    data = header + body
    lines = _check_intact(data, p, shift)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1 + shift
        raise BadInput(f"{p}: line {line}: not a readable CSV: not UTF-8 text ({exc.reason})") from None
    try:
        frame = pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8", index_col=False
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{p}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")

    def line_of(row: int) -> int:
        """The line a row starts on (records after the header; by row number if pandas split them otherwise)."""
        return int(lines[row + 1]) if len(lines) == len(frame) + 1 else row + 2 + shift

    def first(codes: npt.NDArray[np.int64], values: list[str], value: str) -> int | None:
        return int(np.flatnonzero(codes == values.index(value))[0]) if value in values else None

    again = first(*_stripped(frame["timestamp"]), "timestamp")
    if again is not None:
        raise BadInput(f"{p}: line {line_of(again)}: the header again, mid-file; {SEVERAL_WRITERS}")
    numbers: list[npt.NDArray[np.float64]] = []
    for column, lo, hi, what in _NUMERIC:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & (values >= lo) & (values <= hi))
        if bad.any():
            row = int(bad.argmax())
            shown = str(frame[column].iloc[row])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise BadInput(f"{p}: line {line_of(row)}: {column}: expected {what}, got {shown!r}")
        numbers.append(values)
    (methods, method_names), (names, name_names) = (_stripped(frame[c]) for c in ("request_type", "name"))
    for column, (codes, distinct) in (("request_type", (methods, method_names)), ("name", (names, name_names))):
        empty = first(codes, distinct, "")
        if empty is not None:
            raise BadInput(f"{p}: line {line_of(empty)}: {column}: empty")
    exceptions, exception_names = _stripped(frame["exception"])
    failed = np.asarray([v != "" for v in exception_names], dtype=np.bool_)[exceptions]
    sent, latency, status = numbers
    return _chunk((methods, method_names), (names, name_names), failed, sent, latency, status)


def _chunk(
    method: tuple[npt.NDArray[np.int64], list[str]],
    name: tuple[npt.NDArray[np.int64], list[str]],
    failed: npt.NDArray[np.bool_],
    sent: npt.NDArray[np.float64],
    latency: npt.NDArray[np.float64],
    status: npt.NDArray[np.float64],
) -> RequestChunk:
    """A chunk from per-row numbers of stripped methods and names (each with its distinct values), failure flags
    (an exception was logged), send times (Unix s), latencies (ms) and status codes (0: no response, so no
    latency)."""
    n_names = max(len(name[1]), 1)
    endpoint, pairs = _endpoints(method[0], name[0], n_names, len(method[1]) * n_names)
    return RequestChunk(
        keys=tuple((method[1][int(k) // n_names], name[1][int(k) % n_names]) for k in pairs),
        endpoint=endpoint,
        sent_s=sent,
        latency_ms=np.where(status > 0, latency, np.nan),
        errors=failed,
    )


# --- the fast path ------------------------------------------------------------------------------------------------


def _text_codes(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], list[str]] | None:
    """A dictionary-encoded text column as (per-row number of its stripped value, the stripped values); None
    when a value is missing or strips to nothing (the exact path names the line)."""
    if column.null_count:
        return None
    column = column.unify_dictionaries()
    if not column.num_chunks:
        return np.zeros(0, dtype=np.int64), []
    values: list[str] = column.chunk(0).dictionary.to_pylist()
    seen: dict[str, int] = {}
    remap = np.asarray([seen.setdefault(v.strip(), len(seen)) for v in values], dtype=np.int64)
    if "" in seen:
        return None
    indices = np.concatenate([_numbers(c.indices, np.int32) for c in column.chunks])
    return remap[indices], list(seen)


def _failures(column: pa.ChunkedArray) -> npt.NDArray[np.bool_] | None:
    """Per row of a plain text column: the value is set (not empty once stripped, as ``str.strip`` strips);
    None when a value is missing. Only the non-empty values (an exception on a few rows) are looked at one by
    one, once per distinct value (dictionary-encoding the whole column cost more than parsing it)."""
    if column.null_count:
        return None
    parts = [np.asarray(_numbers(pc.binary_length(c), np.int32)) for c in column.chunks]
    failed: npt.NDArray[np.bool_] = (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)) > 0
    rows = np.flatnonzero(failed)
    if len(rows):
        # indices wrapped without pa.array, which imports pandas (0.3-0.5 s) to check the input type
        take = pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows.astype(np.int64))])
        encoded = column.take(take).combine_chunks().dictionary_encode()
        set_ = np.asarray([bool(v.strip()) for v in encoded.dictionary.to_pylist()], dtype=np.bool_)
        failed[rows] = set_[_numbers(encoded.indices, np.int32)]
    return failed


def _endpoints(
    methods: npt.NDArray[np.int64], names: npt.NDArray[np.int64], n_names: int, n_keys: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(per-row endpoint number, the (method, name) code pair of each endpoint as method * n_names + name) for
    per-row method and name numbers; ``n_keys`` bounds the pair codes."""
    pair = methods * n_names + names
    if n_keys <= _DENSE_KEYS:
        present = np.zeros(n_keys, dtype=np.bool_)
        present[pair] = True
        used = np.flatnonzero(present)
        lookup = np.zeros(n_keys, dtype=np.int64)
        lookup[used] = np.arange(len(used), dtype=np.int64)
        return lookup[pair], used.astype(np.int64)
    used, number = np.unique(pair, return_inverse=True)
    return number.astype(np.int64), used.astype(np.int64)


def _bytes_at(b: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """The byte of ``b`` at each position of ``at``; a newline for a position outside ``b``."""
    inside = (at >= 0) & (at < len(b))
    return np.where(inside, b[np.clip(at, 0, max(len(b) - 1, 0))], ord("\n")).astype(np.uint8)


def _quotes_regular(block: _Block) -> tuple[bool, int]:
    """(whether every ``"`` of ``block`` is regular CSV quoting, the newlines inside quotes). Regular: an even
    number of quotes; one that opens (an even number of quotes before it) starts a field (after ``,`` or a
    newline, or at the start) or follows the quote it doubles (``""``), and one that closes is followed by
    ``,``, a line end (``\n``, ``\r\n``) or the end, or by the quote that doubles it. Then the exact check's
    toggling (:func:`_records`) and a CSV parser agree on every field and record end. Few quotes (a log where
    some exceptions are quoted) are looked at one by one, many with numpy."""
    quotes = _quote_positions(block.buf, block.start, block.end)
    if quotes is None:
        return _quotes_regular_many(block)
    if len(quotes) % 2:
        return False, 0
    buf, end = block.buf, block.end
    fields, lines = b',\n"', b',\n"'
    inside = 0
    for opening, closing in zip(quotes[::2], quotes[1::2], strict=True):
        if opening > block.start and buf[opening - 1] not in fields:
            return False, 0
        after = buf[closing + 1] if closing + 1 < end else ord("\n")
        if after not in lines and not (after == ord("\r") and buf.startswith(b"\n", closing + 2, end)):
            return False, 0
        inside += buf.count(b"\n", opening, closing)
    return True, inside


def _quotes_regular_many(block: _Block) -> tuple[bool, int]:
    """:func:`_quotes_regular` for a block with many quotes, vectorised."""
    with block.view() as view:
        b = np.frombuffer(view, dtype=np.uint8)
        q = np.flatnonzero(b == ord('"'))
        if len(q) % 2:
            del b
            return False, 0
        before, after, second = _bytes_at(b, q - 1), _bytes_at(b, q + 1), _bytes_at(b, q + 2)
        newlines = np.flatnonzero(b == ord("\n"))
        del b  # the view's buffer is released only when nothing uses it
    opening = np.arange(len(q)) % 2 == 0
    starts_field = (before == ord(",")) | (before == ord("\n")) | (before == ord('"'))
    ends_field = (after == ord(",")) | (after == ord("\n")) | (after == ord('"'))
    ends_field |= (after == ord("\r")) & (second == ord("\n"))
    regular = bool(np.all(np.where(opening, starts_field, ends_field)))
    return regular, int(np.count_nonzero(np.searchsorted(q, newlines, side="right") % 2))


def _numbers(array: pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The values of a fixed-width pyarrow array without missing values, as a numpy view of its data buffer
    (``Array.to_numpy`` would import pandas: 0.4 s)."""
    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * size)


def _joined(column: pa.ChunkedArray, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A fixed-width column without missing values as one numpy array."""
    parts = [_numbers(c, dtype) for c in column.chunks]
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype=dtype)


def _fast_chunk(body: _Block, names: Sequence[str], quoted: bool) -> tuple[RequestChunk, int] | None:
    """(the requests of ``body``, its newline count) parsed by pyarrow, or None when the block needs the exact
    path: a parse error (a field count other than 7 on some line), irregular quoting, a missing value, a value
    out of range, an empty method or name, or a line ended by a lone carriage return."""
    inside = 0
    if quoted:
        regular, inside = _quotes_regular(body)
        if not regular:
            return None
    try:
        table = pv.read_csv(
            pa.BufferReader(pa.py_buffer(body.view())),
            read_options=pv.ReadOptions(column_names=list(names)),
            parse_options=pv.ParseOptions(newlines_in_values=inside > 0, ignore_empty_lines=False),
            convert_options=pv.ConvertOptions(column_types=_TYPES, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    rows = table.num_rows
    unterminated = not body.endswith(b"\n")
    if body.has(b"\r"):
        newlines = body.count(b"\n")
        if rows != newlines - inside + unterminated:
            return None  # a lone \r ended a line for pyarrow, not for the exact check
    else:
        newlines = rows + inside - unterminated  # pyarrow ended a row at each newline outside quotes
    numbers = []
    for column, lo, hi, _ in _NUMERIC:
        values = table.column(column)
        if values.null_count:
            return None
        array = _joined(values, np.float64)
        with np.errstate(invalid="ignore"):
            if not ((array >= lo) & (array <= hi)).all():
                return None
        numbers.append(array)
    method, name = (_text_codes(table.column(c)) for c in ("request_type", "name"))
    failed = _failures(table.column("exception"))
    if method is None or name is None or failed is None:
        return None
    sent, latency, status = numbers
    chunk = _chunk(method, name, failed, sent, latency, status)
    return chunk, newlines


def _header(first: _Block | None) -> tuple[bytes, tuple[str, ...]]:
    """(the header line with its newline, its fields) of a file's first block (``b"", ()`` for an empty file)."""
    if first is None:
        return b"", ()
    nl = first.buf.find(b"\n", first.start, first.end)
    line = bytes(first.buf[first.start : nl + 1 if nl >= 0 else first.end])
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    return line, tuple(next(csv.reader([text]), []))


def _file_chunks(p: Path, block_bytes: int) -> Iterator[RequestChunk]:
    """The requests of one log, one chunk per block (none for a file with only a header); BadInput naming the
    line of the first damaged record or bad value."""
    blocks = _blocks(p, block_bytes)
    line = 1
    try:
        first = next(blocks, None)
        header, names = _header(first)
        if first is None or len(names) != len(COLUMNS) or sorted(names) != sorted(COLUMNS):
            whole = b"".join([first.tobytes() if first else b"", *(b.tobytes() for b in blocks)])
            yield _exact_chunk(b"", whole, p, 2)  # a header pandas reads differently, or none: refused there
            return
        line = 2
        rest = _Block(first.buf, first.start + len(header), first.end)
        for body in itertools.chain([rest], blocks):
            if not len(body):
                continue
            fast = None if body.has(b"\0") else _fast_chunk(body, names, body.has(b'"'))
            if fast is None:
                chunk, newlines = _exact_chunk(header, body.tobytes(), p, line), body.count(b"\n")
            else:
                chunk, newlines = fast
            line += newlines
            if len(chunk):
                yield chunk
    except _Unterminated:
        raise BadInput(
            f"{p}: line {line}: a quoted field runs on for more than {MAX_RECORD_BYTES >> 20} MB (unbalanced "
            f"quotes); {SEVERAL_WRITERS}"
        ) from None


def request_chunks(paths: Sequence[Path], block_bytes: int | None = None) -> Generator[RequestChunk]:
    """The requests of Locust request logs (plain or gzip), file after file, in blocks of about ``block_bytes``;
    BadInput (file, line, column) on the first damaged record or bad value. Time order is not needed."""
    for p in paths:
        yield from _file_chunks(p, block_bytes or BLOCK_BYTES)


def _ahead(chunks: Generator[RequestChunk]) -> Iterator[RequestChunk]:
    """The chunks of ``chunks``, the next one parsed in a thread while the caller folds this one (pyarrow parses
    on every core; the fold is numpy on one: on 2 cores the two overlap). An error of the parse is raised here;
    when the caller stops early the thread stops after its block and closes ``chunks``."""
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand(("chunk", chunk)):
                    return
            hand(("end", None))
        except BaseException as exc:
            hand(("error", exc))
        finally:
            chunks.close()

    thread = threading.Thread(target=produce, name="locust-csv-parse", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def read_locust_csv(path: str | Path) -> Measurement:
    """Read a Locust request log; raises BadInput naming the file, line and column of a bad value."""
    return read_locust_csvs([Path(path)])


def read_locust_csvs(paths: Sequence[Path], name: str | None = None) -> Measurement:
    """Read the request logs of one run (one file per Locust process) as one Measurement; ``name`` describes
    them (default: the one file's name). BadInput names the file, line and column of a bad value; a file
    with a header and no rows (a master's) adds nothing, but the run as a whole needs a request."""
    where = name or (paths[0].name if len(paths) == 1 else f"{len(paths)} files")
    shown = Path(name) if name else paths[0]
    aggregator = RequestAggregator()
    for chunk in _ahead(request_chunks(paths)):
        try:
            aggregator.add(chunk)
        except ValueError as exc:  # beyond what the aggregator holds (e.g. over a million endpoints)
            raise BadInput(f"{shown}: {exc}") from None
        if aggregator.last_s - aggregator.first_s > MAX_SPAN_S:
            start, last = aggregator.first_s, aggregator.last_s
            raise BadInput(
                f"{shown}: timestamps span {(last - start) / 86400:.0f} days; a Locust request log covers one run "
                f"of at most {MAX_SPAN_S / 86400:.0f} days"
            )
    if not aggregator.count:
        raise BadInput(f"{shown}: no requests in the log")
    files = f" ({len(paths)} files, one per process)" if len(paths) > 1 else ""
    return aggregator.to_measurement(
        source=Source(SourceKind.LOCUST_CSV, description=f"Locust request log {where}{files}"),
        start=datetime.fromtimestamp(aggregator.first_s, UTC),
        end=datetime.fromtimestamp(aggregator.last_s + WINDOW_TAIL_S, UTC),
        latency_kind=LatencyKind.SERVICE_TIME,
    )
