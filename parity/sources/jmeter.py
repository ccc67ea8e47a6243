"""Source: JMeter JTL result files (CSV with its header line, or XML) → request-level Measurement.

**CSV** (JMeter's default, "CSV Log format"): a header line naming the saved fields
(``timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,
sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect`` by default; the set and the delimiter follow
``jmeter.save.saveservice.*``). Needed: ``timeStamp`` (epoch ms: ``timestamp_format=ms``, the default),
``elapsed`` (ms), ``label`` and ``success``; ``responseCode`` is used when present. A file without the header
(``print_field_names=false``) is refused, naming the setting.

**XML** ("XML Log format 2.1"): ``<testResults version="1.2">`` holding ``<httpSample>`` (HTTP) and ``<sample>``
(other samplers) elements with attributes ``t`` (elapsed ms), ``ts`` (epoch ms), ``s`` (success), ``lb`` (label),
``rc`` (response code). Samples nested in a sample (redirects, embedded resources, a Transaction Controller's
children under its parent sample) are not counted: only the samples directly under ``testResults``. A DOCTYPE
or entity declaration is refused.

Per sample: send time = ``timeStamp`` (JMeter's default ``sampleresult.timestamp.start=true``: the start of the
sample), latency = ``elapsed`` (client-side service time; JMeter's ``Latency`` field is time to first byte and is
not used), error = JMeter's own verdict (``success`` false: by default a 4xx/5xx or no response, plus any failed
assertion). A response code ``Non HTTP response code: java.net.ConnectException`` (and the like) means
no response: an error with no latency. Endpoint = the label: ``GET /api/users/42`` gives method and templated route,
a URL or path label its templated route, any other label (``Login``) stays as it is. A CSV line a Transaction
Controller wrote for its transaction (``responseMessage`` "Number of samples in transaction : ...") is skipped
(its requests are on their own lines) and counted in the source description; so is an XML ``<sample>`` directly
under ``testResults`` whose ``rm`` says the same (the same Transaction Controller, XML format). JMeter thread
groups are closed loop (see ``SourceKind.closed_loop``). Times must lie between 1970 and 2100, elapsed between 0 and
``parity.bounds.MAX_LATENCY_MS``.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.parsers import expat

import numpy as np
import numpy.typing as npt

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput, reading
from parity.model import Measurement, Source, SourceKind
from parity.sources.load_tool import PY_WHITESPACE, LinedChunk, RequestChunk, endpoint_codes, fold_requests

__all__ = ["REQUIRED_CSV_FIELDS", "read_jtl_csv", "read_jtl_xml", "sniff"]

#: CSV fields the reader needs (``responseCode`` and ``responseMessage`` are used when present).
REQUIRED_CSV_FIELDS = ("timeStamp", "elapsed", "label", "success")
#: Start of the responseMessage of a Transaction Controller's own sample (JMeter ``TransactionController``).
TRANSACTION_MESSAGE = "Number of samples in transaction"
#: Start of the response code JMeter records when no response came (connection refused, timeout, ...).
NO_RESPONSE_CODE = "Non HTTP response code"
_HEADERLESS = re.compile(r"^\d{10,13}[,;\t|]\d+[,;\t|]")
_SAMPLE_TAGS = frozenset({"httpSample", "sample"})
_XML_READ_BYTES = 1 << 20

Reader = Callable[[Path], Measurement]


def sniff(path: Path, head: str) -> Reader | None:
    """The reader for a JTL file, recognised by content (``head``: the file's first characters), or None.
    A JTL CSV without its header line is refused, naming the JMeter setting that writes it."""
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.startswith("timeStamp") and "elapsed" in first:
        return read_jtl_csv
    if "<testResults" in head[:1024]:
        return read_jtl_xml
    if _HEADERLESS.match(first):
        raise BadInput(
            f"{path}: looks like a JMeter JTL CSV without its header line: set "
            "jmeter.save.saveservice.print_field_names=true (accepted: JTL CSV with header, JTL XML)"
        )
    return None


#: Checks of the sample columns, in the order their failures are reported (the first bad value of the first
#: failed check in the file wins, wherever it is).
_CHECKS = ("timeStamp", "elapsed", "success", "label")
#: Samples per chunk (XML) / bytes per block (CSV): memory is bounded by these, not by the file.
XML_CHUNK_SAMPLES = 200_000
CSV_BLOCK_BYTES = 16 << 20
#: Longest cut-short last line of a JTL CSV read apart from the rest (longer: the whole file is read by pandas).
_MAX_TAIL_BYTES = 1 << 20


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


_EXPECTED = {
    "timeStamp": "epoch milliseconds between 1970 and 2100 (jmeter.save.saveservice.timestamp_format=ms)",
    "elapsed": f"a time in ms (0 to {MAX_LATENCY_MS:g})",
    "success": "true or false",
    "label": "a sampler label",
}


class _Checked:
    """Sample columns → chunks of requests, remembering the first bad value of each check across chunks
    (reported at the end in ``_CHECKS`` order, as a whole-file check would)."""

    def __init__(self) -> None:
        self.bad: dict[str, tuple[int, str]] = {}

    def error(self, path: Path) -> BadInput | None:
        """The BadInput of the first failed check, None when every value so far was good."""
        for column in _CHECKS:
            if column in self.bad:
                line, text = self.bad[column]
                return BadInput(f"{path}: line {line}: {column}: expected {_EXPECTED[column]}, got {text!r}")
        return None

    def _note(self, column: str, bad: npt.NDArray[np.bool_], lines: npt.NDArray[np.int64], shown: Any) -> None:
        if column not in self.bad and bad.any():
            i = int(bad.argmax())
            self.bad[column] = (int(lines[i]), _shown(shown[i].as_py() if hasattr(shown, "type") else shown[i]))

    def chunk(self, *, ts: Any, elapsed: Any, success: Any, codes: Any, labels: Any,
              lines: npt.NDArray[np.int64]) -> LinedChunk | None:  # fmt: skip
        """Per-sample text columns (pyarrow string arrays, one entry per sample) → a chunk; None when a value
        is bad (noted for the message) or an earlier chunk had one."""
        ts_ms = _numbers(ts)
        with np.errstate(invalid="ignore"):
            self._note(
                "timeStamp",
                ~(np.isfinite(ts_ms) & (ts_ms >= MIN_UNIX_S * 1000) & (ts_ms <= MAX_UNIX_S * 1000)),
                lines,
                ts,
            )
            ms = _numbers(elapsed)
            self._note("elapsed", ~(np.isfinite(ms) & (ms >= 0) & (ms <= MAX_LATENCY_MS)), lines, elapsed)
        flags, flag_index = _encode(success)
        verdict = [str(f).strip().lower() for f in flags]
        good = np.asarray([v in ("true", "false") for v in verdict] + [True], dtype=np.bool_)
        self._note("success", ~good[flag_index], lines, success)
        import pyarrow.compute as pc

        names, label_index = _encode(labels, listed=False)
        filled = np.append(
            pc.greater(pc.utf8_length(pc.utf8_trim(names, characters=PY_WHITESPACE)), 0).to_numpy(zero_copy_only=False),
            True,
        )
        self._note("label", ~filled[label_index], lines, labels)
        if self.bad:
            return None
        errors = np.asarray([v != "true" for v in verdict] + [False], dtype=np.bool_)[flag_index]
        if codes is not None:
            unanswered = pc.fill_null(pc.starts_with(codes, NO_RESPONSE_CODE), False).to_numpy(zero_copy_only=False)
            ms = np.where(unanswered, np.nan, ms)
        keys, endpoint = endpoint_codes([""], np.zeros(len(label_index), dtype=np.int64), names, label_index,
                                        labels=True)  # fmt: skip
        return LinedChunk(
            RequestChunk(keys, endpoint, np.asarray(ts_ms / 1000.0, dtype=np.float64),
                         np.asarray(ms, dtype=np.float64), errors),
            lines,
        )  # fmt: skip


def _encode(column: Any, *, listed: bool = True) -> tuple[Any, npt.NDArray[np.int64]]:
    """(distinct values, index of each row's value) of a pyarrow string column; the distinct values as a list, or
    as a pyarrow array when not ``listed``."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    if hasattr(encoded, "combine_chunks"):
        encoded = encoded.combine_chunks()
    distinct = encoded.dictionary.to_pylist() if listed else encoded.dictionary
    return distinct, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _numbers(column: Any) -> npt.NDArray[np.float64]:
    """Numbers of a text column, as ``pandas.to_numeric(errors="coerce")`` reads them (NaN: not a number): plain
    integers are cast at C speed, anything else goes through pandas (pyarrow also casts hex, ``0x10`` → 16, which
    pandas reads as no number)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        numbers = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
        if pc.any(pc.or_(pc.starts_with(column, "0x"), pc.starts_with(column, "0X"))).as_py():
            raise pa.ArrowInvalid("hex")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import pandas as pd  # heavy: imported only when a file is read

        values = pd.Series(column.to_pylist(), dtype=object)
        return np.asarray(pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(), dtype=np.float64)
    return np.asarray(numbers, dtype=np.float64)


def _pandas_frame(source: Path | io.BytesIO, delimiter: str) -> Any:
    """The CSV read whole by pandas as text (the exact reading); pandas' own exceptions pass through."""
    import pandas as pd  # heavy: imported only when a file is read

    return pd.read_csv(
        source, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", quotechar='"'
    )


def _read_csv_pandas(p: Path, delimiter: str, checked: _Checked) -> tuple[Iterator[LinedChunk], int]:
    """The whole-file pandas reading (the exact messages for a file pyarrow cannot read: a row with more or
    fewer fields, text that is not UTF-8, ...): (chunks, Transaction Controller lines skipped)."""
    import pandas as pd  # heavy: imported only when a file is read

    try:
        frame = _pandas_frame(p, delimiter)
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable JTL CSV: {str(exc).splitlines()[0]}") from None
    _check_fields(p, list(frame.columns))
    return _frame_chunks(frame, 2, checked)


def _frame_chunks(frame: Any, first_line: int, checked: _Checked) -> tuple[Iterator[LinedChunk], int]:
    """(chunks, Transaction Controller lines skipped) of a pandas frame of text whose first row is on line
    ``first_line`` (one row per line, as the pandas reading always counted)."""
    import pyarrow as pa

    lines = np.arange(first_line, len(frame) + first_line, dtype=np.int64)
    skipped = 0
    if "responseMessage" in frame.columns:
        transaction = frame["responseMessage"].str.startswith(TRANSACTION_MESSAGE).to_numpy(dtype=bool)
        skipped = int(transaction.sum())
        frame, lines = frame[~transaction], lines[~transaction]
    if frame.empty:
        return iter(()), skipped

    def text(column: str) -> Any:
        return pa.array(frame[column].astype(str).tolist(), pa.string())

    chunk = checked.chunk(
        ts=text("timeStamp"), elapsed=text("elapsed"), success=text("success"),
        codes=text("responseCode") if "responseCode" in frame.columns else None,
        labels=text("label"), lines=lines,
    )  # fmt: skip
    return iter(() if chunk is None else (chunk,)), skipped


def _check_fields(p: Path, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_CSV_FIELDS if c not in columns]
    if missing:
        raise BadInput(
            f"{p}: JMeter JTL CSV without field(s) {', '.join(missing)} (needed: {', '.join(REQUIRED_CSV_FIELDS)}; "
            "enable them with jmeter.save.saveservice.*)"
        )


class _Unreadable(Exception):
    """pyarrow cannot read the CSV as pandas would: the whole file is read by pandas instead."""


class _Prefix(io.RawIOBase):
    """The first ``size`` bytes of an open binary file, as a stream (the complete lines of a file whose last line
    is cut short, for pyarrow)."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        super().__init__()
        self._fh, self._left = fh, size

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _cut_tail(p: Path) -> tuple[int, bytes, bytes] | None:
    """(bytes of the complete lines, header line, the last line) of a CSV whose last line has no line end (as when
    JMeter was killed while writing it); None when the file ends with a line end, or when its last line is
    not one short piece after a complete header line and lines that end in "\\n" (then pyarrow reads the whole
    file)."""
    with p.open("rb") as fh:
        header = fh.readline()
        size = fh.seek(0, io.SEEK_END)
        start = max(size - _MAX_TAIL_BYTES, 0)
        fh.seek(start)
        end = fh.read()
    cut = end.rfind(b"\n")
    tail = end[cut + 1 :]
    if not tail or cut < 0 or start + cut + 1 <= len(header) or b"\r" in tail.rstrip(b"\r"):
        return None
    return start + cut + 1, header, tail


def _csv_batches(p: Path, delimiter: str, size: int | None = None) -> tuple[list[str], Iterator[Any]]:
    """(header fields, record batches of the needed columns as text) by pyarrow's streaming CSV reader, of the
    file's first ``size`` bytes (None: all); _Unreadable (now or while iterating) where the pandas reading has to
    decide."""
    import pyarrow as pa
    import pyarrow.csv as pv

    parse = pv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True, newlines_in_values=True)
    try:
        with p.open("rb") as fh:
            head = fh.readline()
        names = pv.read_csv(io.BytesIO(head), parse_options=parse).column_names
    except (pa.ArrowInvalid, OSError):
        raise _Unreadable from None
    wanted = [c for c in (*REQUIRED_CSV_FIELDS, "responseCode", "responseMessage") if c in names]
    if len(set(names)) != len(names) or any(c not in names for c in REQUIRED_CSV_FIELDS):
        raise _Unreadable  # pandas renames duplicates; a missing field is reported after pandas' own checks
    stack = contextlib.ExitStack()
    try:
        reader = pv.open_csv(
            p if size is None else _Prefix(stack.enter_context(p.open("rb")), size),
            read_options=pv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=True),
            parse_options=parse,
            convert_options=pv.ConvertOptions(
                column_types={c: pa.string() for c in names}, include_columns=wanted, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError):
        stack.close()
        raise _Unreadable from None

    def batches() -> Iterator[Any]:
        with stack:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, UnicodeDecodeError, OSError):
                    raise _Unreadable from None
                yield batch

    return names, batches()


def _csv_chunks(p: Path, delimiter: str, checked: _Checked, skipped: list[int]) -> Iterator[LinedChunk]:
    """Chunks of a JTL CSV read by pyarrow in blocks; Transaction Controller lines counted in ``skipped``.
    _Unreadable where the pandas reading has to decide."""
    import pyarrow.compute as pc

    cut = _cut_tail(p)
    names, batches = _csv_batches(p, delimiter, None if cut is None else cut[0])
    row, kept = 2, 0
    for raw in batches:
        batch = raw
        lines = np.arange(row, row + batch.num_rows, dtype=np.int64)
        row += batch.num_rows
        if "responseMessage" in names:
            transaction = pc.starts_with(batch.column("responseMessage"), TRANSACTION_MESSAGE)
            skipped[0] += pc.sum(transaction).as_py() or 0
            keep = pc.invert(transaction)
            batch, lines = batch.filter(keep), lines[keep.to_numpy(zero_copy_only=False)]
        kept += batch.num_rows
        if batch.num_rows:
            chunk = checked.chunk(
                ts=batch.column("timeStamp"), elapsed=batch.column("elapsed"), success=batch.column("success"),
                codes=batch.column("responseCode") if "responseCode" in names else None,
                labels=batch.column("label"), lines=lines,
            )  # fmt: skip
            if chunk is not None:
                yield chunk
    if cut is not None:
        tail, tail_kept = _tail_chunk(cut[1] + cut[2], delimiter, row, checked, skipped)
        kept += tail_kept
        if tail is not None:
            yield tail
    if not kept:
        raise BadInput(f"{p}: JMeter JTL CSV without samples")
    error = checked.error(p)
    if error is not None:
        raise error


def _tail_chunk(
    text: bytes, delimiter: str, first_line: int, checked: _Checked, skipped: list[int]
) -> tuple[LinedChunk | None, int]:
    """(chunk or None, samples kept) of the header line and the cut-short last line (``text``) read by pandas as
    the whole-file reading reads that line, numbered ``first_line``; Transaction Controller lines added to
    ``skipped``. _Unreadable when pandas cannot read it (its message names a place in the whole file)."""
    import pandas as pd  # heavy: imported only when a file is read

    try:
        frame = _pandas_frame(io.BytesIO(text), delimiter)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        raise _Unreadable from None
    if not isinstance(frame.index, pd.RangeIndex):  # more fields than the header: pandas made them an index
        raise _Unreadable
    chunks, tail_skipped = _frame_chunks(frame, first_line, checked)
    skipped[0] += tail_skipped
    return next(chunks, None), len(frame) - tail_skipped


def _pandas_chunks(p: Path, delimiter: str, checked: _Checked, skipped: list[int]) -> Iterator[LinedChunk]:
    """The chunk of a JTL CSV read whole by pandas (the reading of a file pyarrow cannot take as pandas does)."""
    chunks, skipped[0] = _read_csv_pandas(p, delimiter, checked)
    found = next(chunks, None)
    if found is None and not checked.bad:
        raise BadInput(f"{p}: JMeter JTL CSV without samples")
    error = checked.error(p)
    if error is not None:
        raise error
    if found is not None:
        yield found


def read_jtl_csv(path: str | Path) -> Measurement:
    """Read a JMeter JTL CSV (with its header line) in blocks; see the module docstring. BadInput naming the
    file, line and field for a missing field or a bad value."""
    p = Path(path)
    with reading(p, "a JMeter JTL file"), p.open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    delimiter = header[len("timeStamp")] if header.startswith("timeStamp") and len(header) > 9 else ","
    skipped = [0]
    with reading(p, "a JMeter JTL file"):
        try:
            folded = fold_requests(p, _csv_chunks(p, delimiter, _Checked(), skipped))
        except _Unreadable:
            skipped = [0]
            folded = fold_requests(p, _pandas_chunks(p, delimiter, _Checked(), skipped))
    note = f"; {skipped[0]} Transaction Controller line(s) skipped" if skipped[0] else ""
    return folded.measurement(
        source=Source(
            SourceKind.JMETER, description=f"JMeter JTL CSV {p.name} (request level, closed-loop thread groups{note})"
        ),
        labels={"format": "jmeter-csv"},
    )


class _Refused(Exception):
    """Raised inside expat handlers; turned into BadInput with the parser's line."""


class _XmlSamples:
    """expat handlers gathering the attributes of the samples directly under ``testResults`` column-wise."""

    def __init__(self, parser: Any, skipped: list[int]) -> None:
        self.parser = parser
        self.skipped = skipped
        self.depth = 0
        self.rows: dict[str, list[Any]] = {"t": [], "ts": [], "s": [], "rc": [], "lb": [], "line": []}
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartDoctypeDeclHandler = self.no_entities
        parser.EntityDeclHandler = self.no_entities

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 2 and name in _SAMPLE_TAGS:
            if attrs.get("rm", "").startswith(TRANSACTION_MESSAGE):
                self.skipped[0] += 1  # a Transaction Controller's own sample: its requests are samples of their own
                return
            missing = [a for a in ("t", "ts", "s", "lb") if a not in attrs]
            if missing:
                raise _Refused(
                    f"<{name}> without attribute(s) {', '.join(missing)} (enable them with jmeter.save.saveservice.*)"
                )
            rows = self.rows
            for key in ("t", "ts", "s", "lb"):
                rows[key].append(attrs[key])
            rows["rc"].append(attrs.get("rc") or "")
            rows["line"].append(self.parser.CurrentLineNumber)
        elif self.depth == 1 and name != "testResults":
            raise _Refused(f"root element <{name}>, expected <testResults> (JMeter JTL XML)")

    def end(self, _name: str) -> None:
        self.depth -= 1

    def no_entities(self, *_args: Any) -> None:
        raise _Refused("DOCTYPE/entity declarations are not accepted in a JTL file")

    def take(self, checked: _Checked) -> LinedChunk | None:
        """The samples gathered so far as a chunk (None when a value is bad), forgotten here."""
        import pyarrow as pa

        text = {k: pa.array(v, pa.string()) for k, v in self.rows.items() if k != "line"}
        lines = np.asarray(self.rows["line"], dtype=np.int64)
        for column in self.rows.values():
            column.clear()
        return checked.chunk(
            ts=text["ts"], elapsed=text["t"], success=text["s"], codes=text["rc"], labels=text["lb"], lines=lines
        )


def _xml_chunks(p: Path, checked: _Checked, skipped: list[int]) -> Iterator[LinedChunk]:
    """Chunks of a JTL XML file: expat fed a block at a time; the samples' attributes gathered column-wise and
    handed on every ``XML_CHUNK_SAMPLES`` samples (nothing else is kept: memory bounded by a chunk)."""
    parser = expat.ParserCreate()
    samples = _XmlSamples(parser, skipped)
    count = 0
    try:
        with p.open("rb") as fh:
            while True:
                data = fh.read(_XML_READ_BYTES)
                parser.Parse(data, not data)
                pending = len(samples.rows["line"])
                if pending >= XML_CHUNK_SAMPLES or (not data and pending):
                    count += pending
                    chunk = samples.take(checked)
                    if chunk is not None:
                        yield chunk
                if not data:
                    break
    except _Refused as exc:
        raise BadInput(f"{p}: line {parser.CurrentLineNumber}: {exc}") from None
    except expat.ExpatError as exc:
        raise BadInput(f"{p}: line {exc.lineno}: not well-formed XML: {expat.errors.messages[exc.code]}") from None
    if not count:
        raise BadInput(f"{p}: JMeter JTL XML without samples")
    error = checked.error(p)
    if error is not None:
        raise error


def read_jtl_xml(path: str | Path) -> Measurement:
    """Read a JMeter JTL XML file (streamed: expat, samples folded a chunk at a time); see the module docstring.
    BadInput naming the file and line for malformed XML, a missing attribute or a bad value."""
    p = Path(path)
    skipped = [0]
    with reading(p, "a JMeter JTL file"):
        folded = fold_requests(p, _xml_chunks(p, _Checked(), skipped))
    note = f"; {skipped[0]} Transaction Controller sample(s) skipped" if skipped[0] else ""
    return folded.measurement(
        source=Source(
            SourceKind.JMETER,
            description=(
                f"JMeter JTL XML {p.name} (request level, closed-loop thread groups; nested samples not counted{note})"
            ),
        ),
        labels={"format": "jmeter-xml"},
    )
