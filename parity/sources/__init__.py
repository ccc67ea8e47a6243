"""Sources: each turns one kind of input into a Measurement. ``load_measurement`` picks by content.

The formats ``parity compare`` (and ``calibrate``, ``ab``, ``nightly`` …) accept are the rows of ``FORMATS``:
a name, a ``sniff(head)`` that looks at the first ``HEAD_CHARS`` characters of the file (a byte-order mark
skipped) and a reader. The first row whose sniff says yes reads the file. ``RECOGNISED_ONLY`` lists files that
are recognised but cannot be read on their own; a refusal names what was seen and how to get an accepted file.
To add a source, add one ``Format`` row (keep sniffs cheap and specific: a header, not a guess).

A directory (or a quoted glob such as ``'logs/requests-*.csv'``) is one side made of several Locust request
logs — one per Locust process, ``*.csv`` or ``*.csv.gz`` — merged into one Measurement (see
``parity.sources.locust_csv``). A request log may be gzip-compressed (recognised by its magic bytes).
"""

from __future__ import annotations

import csv
import glob
import gzip
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from parity import measurement_json
from parity.errors import BadInput, reading
from parity.model import Measurement

__all__ = [
    "FORMATS",
    "HEAD_CHARS",
    "LOCUST_CSV_COLUMNS",
    "RECOGNISED_ONLY",
    "Format",
    "load_measurement",
    "load_measurements",
]

#: Characters of a file read to recognise its format.
HEAD_CHARS = 4096
#: The header of a Locust request CSV (``parity.sources.locust_csv`` reads it; that module imports pandas,
#: so it is loaded only when a CSV is read).
LOCUST_CSV_COLUMNS = (
    "timestamp",
    "request_type",
    "name",
    "response_time_ms",
    "response_length",
    "status_code",
    "exception",
)


@dataclass(frozen=True)
class Format:
    """One accepted input: ``sniff(head)`` is True when the file's first characters look like it; ``read(path)``
    returns its Measurement (BadInput on bad content). ``name`` is shown in refusals."""

    name: str
    sniff: Callable[[str], bool]
    read: Callable[[Path], Measurement]


@dataclass(frozen=True)
class Recognised:
    """A file recognised by ``sniff`` that is not accepted on its own; ``hint`` says what to pass instead."""

    name: str
    sniff: Callable[[str], bool]
    hint: str


def header(head: str) -> tuple[str, ...]:
    """The first line of ``head`` split as CSV, each field stripped (``()`` for an empty head)."""
    first = head.splitlines()[0] if head.strip() else ""
    try:
        return tuple(f.strip() for f in next(csv.reader([first]), []))
    except csv.Error:
        return ()


def _has(head: str, *columns: str) -> bool:
    """True when the CSV header of ``head`` holds every one of ``columns`` (case-insensitive)."""
    seen = {c.lower() for c in header(head)}
    return all(c.lower() in seen for c in columns)


def _read_json(p: Path) -> Measurement:
    return measurement_json.read(p)


def _read_request_log(p: Path) -> Measurement:
    from parity.sources.locust_csv import read_locust_csv

    return read_locust_csv(p)


def _read_locust_stats(p: Path) -> Measurement:
    from parity.sources.locust_stats import read_locust_stats

    return read_locust_stats(p)


def _read_locust_history(p: Path) -> Measurement:
    from parity.sources.locust_stats import read_locust_stats_history

    return read_locust_stats_history(p)


def _is_stats(head: str) -> bool:
    """Locust ``--csv`` ``_stats.csv`` (1.0+: "Request Count") or its 0.x ``_requests.csv`` ("# requests")."""
    h = header(head)
    if not h or "timestamp" in {c.lower() for c in h}:
        return False
    return _has(head, "Name", "Requests/s") and (_has(head, "Request Count") or _has(head, "# requests"))


def _is_history(head: str) -> bool:
    """Locust ``--csv`` ``_stats_history.csv``."""
    return _has(head, "Timestamp", "User Count", "Name", "Total Request Count")


#: Accepted inputs, first match wins. (A k6 NDJSON file also starts with "{": put its row before the JSON one.)
FORMATS: list[Format] = [
    Format("a Measurement file (JSON)", lambda head: head.lstrip().startswith("{"), _read_json),
    Format(
        "a Locust request log (CsvRequestLogger CSV, or a directory of them)",
        lambda head: header(head) == LOCUST_CSV_COLUMNS,
        _read_request_log,
    ),
    Format("Locust --csv PREFIX_stats.csv", _is_stats, _read_locust_stats),
    Format(
        "Locust --csv PREFIX_stats_history.csv",
        _is_history,
        _read_locust_history,
    ),
]

#: Recognised, not accepted on their own.
RECOGNISED_ONLY: list[Recognised] = [
    Recognised(
        "a Locust failures CSV (--csv PREFIX_failures.csv)",
        lambda head: _has(head, "Method", "Name", "Error", "Occurrences"),
        "pass the PREFIX_stats.csv next to it (its failures are read from there)",
    ),
    Recognised(
        "a Locust exceptions CSV (--csv PREFIX_exceptions.csv)",
        lambda head: _has(head, "Count", "Message", "Traceback"),
        "pass the PREFIX_stats.csv next to it",
    ),
    Recognised(
        "a Locust 0.x distribution CSV (PREFIX_distribution.csv)",
        lambda head: _has(head, "Name", "# requests", "50%") and not _has(head, "Requests/s"),
        "pass the PREFIX_requests.csv next to it",
    ),
]


#: Load-tool result files, recognised by ``parity.sources.k6.sniff`` / ``parity.sources.jmeter.sniff`` (which look
#: at the bytes themselves: k6 writes gzip) before ``FORMATS``, since k6 writes JSON too.
LOAD_TOOL_FORMATS = (
    "k6 --out json NDJSON (plain or gzip)",
    "k6 --summary-export / handleSummary JSON",
    "a JMeter JTL (CSV with its header line, or XML)",
)


def accepted() -> str:
    """The accepted formats, for refusals."""
    return "; ".join([f.name for f in FORMATS] + list(LOAD_TOOL_FORMATS))


def _shown(text: str, limit: int = 80) -> str:
    text = text.replace("\t", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _seen(head: str) -> str:
    """What ``head`` looks like, in a few words."""
    for known in RECOGNISED_ONLY:
        if known.sniff(head):
            return f"looks like {known.name}; {known.hint}"
    first = head.splitlines()[0] if head.strip() else ""
    if not first.strip():
        return "an empty file"
    if "," in first:
        return f"unrecognised CSV header {_shown(first.strip())!r}"
    return f"unrecognised content, first line {_shown(first.strip())!r}"


def _refusal(p: Path, head: str) -> BadInput:
    """A one-line refusal naming what ``head`` looks like and what is accepted."""
    return BadInput(f"{p}: {_seen(head)}; accepted: {accepted()}")


def _head(p: Path) -> str:
    """The first ``HEAD_CHARS`` characters of ``p`` (a byte-order mark skipped), decompressed when it is gzip
    ("" when that fails: the k6 sniff names the broken stream)."""
    with reading(p, "an input file"), p.open("rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            try:
                with gzip.open(raw, "rt", encoding="utf-8-sig", errors="replace") as gz:
                    return gz.read(HEAD_CHARS)
            except (OSError, EOFError, zlib.error):
                return ""
    with reading(p, "an input file"), p.open(encoding="utf-8-sig", errors="replace") as fh:
        return fh.read(HEAD_CHARS)  # utf-8-sig: a byte-order mark is skipped


def _several(path: str) -> list[Path] | None:
    """The files of a directory or of a glob pattern (sorted), or None when ``path`` is one file's name."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith((".csv", ".csv.gz")))
    if not p.exists() and glob.has_magic(path):
        return sorted(Path(f) for f in glob.glob(path) if Path(f).is_file())  # noqa: PTH207 (absolute patterns)
    return None


def load_measurement(path: str | Path) -> Measurement:
    """The Measurement in ``path``, its format recognised by content (``FORMATS``); BadInput (one line: what was
    seen, what is accepted) otherwise. A directory or a glob pattern is several Locust request logs of one run
    (one per process), merged."""
    files = _several(str(path))
    if files is not None:
        return _load_request_logs(Path(path), files)
    p = Path(path)
    head = _head(p)
    if header(head) == LOCUST_CSV_COLUMNS:  # plain or gzip (k6's sniff refuses any other gzip file)
        return _read_request_log(p)
    from parity.sources import jmeter, k6

    for sniff in (k6.sniff, jmeter.sniff):
        reader = sniff(p, head)
        if reader is not None:
            return reader(p)
    for fmt in FORMATS:
        if fmt.sniff(head):
            return fmt.read(p)
    raise _refusal(p, head)


#: How often the main thread wakes while the sides are read, to run a pending SIGINT/SIGTERM handler (s).
SIGNAL_POLL_S = 0.1


def load_measurements(*paths: str | Path) -> list[Measurement]:
    """:func:`load_measurement` of each path, read side by side in threads (the big readers spend their time in
    pyarrow and numpy, which release the GIL, so two request logs are read on two cores in about the time of
    one); on bad input, the error of the first bad path in the given order."""
    if len(paths) < 2:
        return [load_measurement(p) for p in paths]
    # Daemon threads, not a pool: a pool's threads are joined on the way out, so a bad baseline or Ctrl-C
    # would wait for the other side's read to end (forever on a pipe nobody writes).
    outcomes: list[tuple[bool, object]] = [(False, None)] * len(paths)
    done = [threading.Event() for _ in paths]

    def read(i: int) -> None:
        try:
            outcomes[i] = (True, load_measurement(paths[i]))
        except BaseException as exc:  # handed to the caller, in path order
            outcomes[i] = (False, exc)
        finally:
            done[i].set()

    for i in range(len(paths)):
        threading.Thread(target=read, args=(i,), name=f"parity-read-{i}", daemon=True).start()
    measurements = []
    for i in range(len(paths)):
        # In short waits: a signal the kernel hands to a reading thread does not wake a main thread blocked on a
        # lock, so a wait without a timeout could sleep through Ctrl-C (Python runs handlers in the main thread)
        while not done[i].wait(SIGNAL_POLL_S):
            pass
        ok, value = outcomes[i]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        assert isinstance(value, Measurement)
        measurements.append(value)
    return measurements


def _load_request_logs(where: Path, files: list[Path]) -> Measurement:
    """Several Locust request logs (a directory's ``*.csv`` or a glob's matches) merged into one Measurement.
    Locust's own ``--csv`` files among them are skipped (they describe the same run); any other file is refused."""
    logs = []
    for f in files:
        head = _head(f)
        if header(head) == LOCUST_CSV_COLUMNS:
            logs.append(f)
        elif not (_is_stats(head) or any(k.sniff(head) for k in RECOGNISED_ONLY) or _is_history(head)):
            raise BadInput(
                f"{f}: not a Locust request log ({_seen(head)}); a directory or glob stands for the request logs "
                "of one run (CsvRequestLogger, one per process)"
            )
    if not logs:
        raise BadInput(f"{where}: no Locust request logs (CsvRequestLogger CSV) in it; accepted: {accepted()}")
    from parity.sources.locust_csv import read_locust_csvs

    return read_locust_csvs(logs, name=str(where))
