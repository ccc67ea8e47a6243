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

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.parsers import expat

import numpy as np
import numpy.typing as npt

from parity.bounds import MAX_LATENCY_MS, MAX_UNIX_S, MIN_UNIX_S
from parity.errors import BadInput, reading
from parity.model import Measurement, Source, SourceKind
from parity.sources.load_tool import request_measurement, split_label

__all__ = ["REQUIRED_CSV_FIELDS", "read_jtl_csv", "read_jtl_xml", "sniff"]

#: CSV fields the reader needs (``responseCode`` and ``responseMessage`` are used when present).
REQUIRED_CSV_FIELDS = ("timeStamp", "elapsed", "label", "success")
#: Start of the responseMessage of a Transaction Controller's own sample (JMeter ``TransactionController``).
TRANSACTION_MESSAGE = "Number of samples in transaction"
#: Start of the response code JMeter records when no response came (connection refused, timeout, ...).
NO_RESPONSE_CODE = "Non HTTP response code"
_HEADERLESS = re.compile(r"^\d{10,13}[,;\t|]\d+[,;\t|]")
_SAMPLE_TAGS = frozenset({"httpSample", "sample"})

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


def _bad_row(
    path: Path, bad: npt.NDArray[np.bool_], lines: npt.NDArray[np.int64], column: str, what: str, shown: Any
) -> None:
    if bad.any():
        i = int(bad.argmax())
        text = str(shown[i])
        text = text if len(text) <= 40 else text[:37] + "..."
        raise BadInput(f"{path}: line {lines[i]}: {column}: expected {what}, got {text!r}")


def _columns(
    path: Path,
    *,
    ts: Any,
    elapsed: Any,
    success: Any,
    codes: Any,
    labels: list[str],
    lines: npt.NDArray[np.int64],
    description: str,
    fmt: str,
) -> Measurement:
    """Checked per-sample columns (text or numbers, one entry per sample) → Measurement."""
    import pandas as pd  # heavy: imported only when a file is read

    ts_ms = pd.to_numeric(pd.Series(ts, dtype=object), errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(ts_ms) & (ts_ms >= MIN_UNIX_S * 1000) & (ts_ms <= MAX_UNIX_S * 1000))
    _bad_row(
        path, bad, lines, "timeStamp",
        "epoch milliseconds between 1970 and 2100 (jmeter.save.saveservice.timestamp_format=ms)", ts,
    )  # fmt: skip
    ms = pd.to_numeric(pd.Series(elapsed, dtype=object), errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(ms) & (ms >= 0) & (ms <= MAX_LATENCY_MS))
    _bad_row(path, bad, lines, "elapsed", f"a time in ms (0 to {MAX_LATENCY_MS:g})", elapsed)
    flags = pd.Series(success, dtype=object).astype(str).str.strip().str.lower()
    bad = ~flags.isin(["true", "false"]).to_numpy()
    _bad_row(path, bad, lines, "success", "true or false", list(success))
    empty = np.asarray([not label.strip() for label in labels], dtype=np.bool_)
    _bad_row(path, empty, lines, "label", "a sampler label", labels)
    if codes is not None:
        unanswered = pd.Series(codes, dtype=object).astype(str).str.startswith(NO_RESPONSE_CODE).to_numpy(dtype=bool)
        ms = np.where(unanswered, np.nan, ms)
    split = [split_label(label) for label in labels]
    return request_measurement(
        path,
        source=Source(SourceKind.JMETER, description=description),
        methods=[m for m, _ in split],
        routes=[r for _, r in split],
        sent_s=np.asarray(ts_ms / 1000.0, dtype=np.float64),
        latency_ms=np.asarray(ms, dtype=np.float64),
        errors=(flags != "true").to_numpy(),
        lines=lines,
        labels={"format": fmt},
    )


def read_jtl_csv(path: str | Path) -> Measurement:
    """Read a JMeter JTL CSV (with its header line); see the module docstring. BadInput naming the file, line
    and field for a missing field or a bad value."""
    import pandas as pd  # heavy: imported only when a file is read

    p = Path(path)
    with reading(p, "a JMeter JTL file"), p.open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    delimiter = header[len("timeStamp")] if header.startswith("timeStamp") and len(header) > 9 else ","
    try:
        frame = pd.read_csv(
            p, sep=delimiter, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", quotechar='"'
        )
    except FileNotFoundError:
        raise BadInput(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{p}: not a readable JTL CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in REQUIRED_CSV_FIELDS if c not in frame.columns]
    if missing:
        raise BadInput(
            f"{p}: JMeter JTL CSV without field(s) {', '.join(missing)} (needed: {', '.join(REQUIRED_CSV_FIELDS)}; "
            "enable them with jmeter.save.saveservice.*)"
        )
    lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    skipped = 0
    if "responseMessage" in frame.columns:
        transaction = frame["responseMessage"].str.startswith(TRANSACTION_MESSAGE).to_numpy(dtype=bool)
        skipped = int(transaction.sum())
        frame, lines = frame[~transaction], lines[~transaction]
    if frame.empty:
        raise BadInput(f"{p}: JMeter JTL CSV without samples")
    note = f"; {skipped} Transaction Controller line(s) skipped" if skipped else ""
    return _columns(
        p,
        ts=frame["timeStamp"].to_numpy(),
        elapsed=frame["elapsed"].to_numpy(),
        success=frame["success"].to_numpy(),
        codes=frame["responseCode"].to_numpy() if "responseCode" in frame.columns else None,
        labels=frame["label"].astype(str).tolist(),
        lines=lines,
        description=f"JMeter JTL CSV {p.name} (request level, closed-loop thread groups{note})",
        fmt="jmeter-csv",
    )


class _Refused(Exception):
    """Raised inside expat handlers; turned into BadInput with the parser's line."""


def read_jtl_xml(path: str | Path) -> Measurement:
    """Read a JMeter JTL XML file; see the module docstring. BadInput naming the file and line for malformed
    XML, a missing attribute or a bad value."""
    p = Path(path)
    parser = expat.ParserCreate()
    depth = 0
    skipped = 0
    rows: dict[str, list[Any]] = {"t": [], "ts": [], "s": [], "rc": [], "lb": [], "line": []}

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, skipped
        depth += 1
        if depth == 1 and name != "testResults":
            raise _Refused(f"root element <{name}>, expected <testResults> (JMeter JTL XML)")
        if depth == 2 and name in _SAMPLE_TAGS and attrs.get("rm", "").startswith(TRANSACTION_MESSAGE):
            skipped += 1  # a Transaction Controller's own sample: its requests are samples of their own
        elif depth == 2 and name in _SAMPLE_TAGS:
            missing = [a for a in ("t", "ts", "s", "lb") if a not in attrs]
            if missing:
                raise _Refused(
                    f"<{name}> without attribute(s) {', '.join(missing)} (enable them with jmeter.save.saveservice.*)"
                )
            for key in ("t", "ts", "s", "lb"):
                rows[key].append(attrs[key])
            rows["rc"].append(attrs.get("rc"))
            rows["line"].append(parser.CurrentLineNumber)

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    def no_entities(*_args: Any) -> None:
        raise _Refused("DOCTYPE/entity declarations are not accepted in a JTL file")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = no_entities
    parser.EntityDeclHandler = no_entities
    try:
        with reading(p, "a JMeter JTL file"), p.open("rb") as fh:
            parser.ParseFile(fh)
    except _Refused as exc:
        raise BadInput(f"{p}: line {parser.CurrentLineNumber}: {exc}") from None
    except expat.ExpatError as exc:
        raise BadInput(f"{p}: line {exc.lineno}: not well-formed XML: {expat.errors.messages[exc.code]}") from None
    if not rows["line"]:
        raise BadInput(f"{p}: JMeter JTL XML without samples")
    codes = rows["rc"]
    note = f"; {skipped} Transaction Controller sample(s) skipped" if skipped else ""
    return _columns(
        p,
        ts=rows["ts"],
        elapsed=rows["t"],
        success=rows["s"],
        codes=["" if c is None else c for c in codes],
        labels=rows["lb"],
        lines=np.asarray(rows["line"], dtype=np.int64),
        description=(
            f"JMeter JTL XML {p.name} (request level, closed-loop thread groups; nested samples not counted{note})"
        ),
        fmt="jmeter-xml",
    )
