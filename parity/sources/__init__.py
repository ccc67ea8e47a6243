"""Sources: each turns one kind of input into a Measurement. ``load_measurement`` picks by content."""

from __future__ import annotations

from pathlib import Path

from parity import measurement_json
from parity.errors import BadInput, reading
from parity.model import Measurement
from parity.sources.locust_csv import looks_like_locust_csv, read_locust_csv

__all__ = ["load_measurement"]


def load_measurement(path: str | Path) -> Measurement:
    """A Measurement file (JSON) or a Locust request CSV, recognised by content; BadInput otherwise."""
    p = Path(path)
    with reading(p, "a Measurement file or a Locust request CSV"), p.open(encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith("{"):
        return measurement_json.read(p)
    if looks_like_locust_csv(head.splitlines()[0] if head else ""):
        return read_locust_csv(p)
    raise BadInput(f"{p}: not a Measurement file (JSON) or a Locust request CSV")
