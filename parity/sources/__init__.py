"""Sources: each turns one kind of input into a Measurement. ``load_measurement`` picks by content."""

from __future__ import annotations

from pathlib import Path

from parity import measurement_json
from parity.errors import BadInput, reading
from parity.model import Measurement

__all__ = ["LOCUST_CSV_COLUMNS", "load_measurement"]

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


def load_measurement(path: str | Path) -> Measurement:
    """A Measurement file (JSON) or a Locust request CSV, recognised by content (a leading byte-order mark is
    skipped); BadInput otherwise."""
    p = Path(path)
    with reading(p, "a Measurement file or a Locust request CSV"), p.open(encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(4096)  # utf-8-sig: a byte-order mark is skipped
    # k6 and JMeter result files: each module recognises its own formats (before the JSON check: k6 writes JSON)
    from parity.sources import jmeter, k6

    for sniff in (k6.sniff, jmeter.sniff):
        reader = sniff(p, head)
        if reader is not None:
            return reader(p)
    if head.lstrip().startswith("{"):
        return measurement_json.read(p)
    first = head.splitlines()[0] if head else ""
    if tuple(c.strip() for c in first.strip().split(",")) == LOCUST_CSV_COLUMNS:
        from parity.sources.locust_csv import read_locust_csv

        return read_locust_csv(p)
    raise BadInput(
        f"{p}: not a Measurement file (JSON), a Locust request CSV, k6 JSON output / summary export, or a JMeter JTL"
    )
