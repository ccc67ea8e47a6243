"""The cutover's journal: ``<out>/journal.jsonl``, one JSON object a line, appended before the driver acts.

Every record has ``kind`` and ``at`` (Unix seconds of the driver's clock) and is written with one ``write``,
flushed and fsynced before the call returns: after a crash the file holds every record up to the last one
whose action may have begun. A record cut short by a kill (a last line without its newline, or not JSON) was
never acted on: readers drop it and :func:`repair` truncates it before new records are appended.

Kinds (fields besides ``kind`` and ``at``):

- ``start``: ``version``, ``settings`` (plain JSON, :func:`parity.cutover.settings.plain_settings`),
  ``endpoints`` (the judged family), ``live_weight`` (percent read before the first shift);
- ``shift``: ``phase`` (``intent`` | ``done`` | ``failed``), ``step``, ``weight``, ``previous`` (the weight
  before), ``reason`` (failed), ``resumed`` (done: found in effect on ``--resume``);
- ``check``: ``index`` (of the run), ``step``, ``window`` (``[start_s, end_s]``), ``data`` (the gate's
  :class:`Check` input) or ``missing`` (why APM gave nothing), ``unjudged`` (resources with hits outside the
  family), ``backfill`` (read late, after a ``--resume``);
- ``decision``: ``index`` (the check's), ``step``, the :class:`StepDecision`;
- ``rollback``: ``phase`` (``intent`` | ``done`` | ``failed``), ``weight``, ``reason``;
- ``interrupted``: ``signal``, ``weight`` (last verified; None when a shift was under way);
- ``end``: ``outcome``, ``final_weight``, ``reasons``, ``guardrail``;
- ``explain`` (after a STOPPED ``end`` only): ``file``, ``skipped``, ``endpoints`` (:func:`encode_explanation`);
  a journal without it (older, or killed while reading traces) was not explained.

Floats are written with ``repr`` (they read back exactly); infinities and NaN as the strings ``"inf"``,
``"-inf"``, ``"nan"`` (the file stays standard JSON).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from parity.cutover.model import StopExplanation, StopWhy
from parity.errors import BadInput
from parity.judge.sequential import (
    Action,
    Check,
    EndpointInterval,
    Finding,
    GuardrailBreach,
    IntervalSummary,
    MetricDecision,
    SplitCheck,
    StepDecision,
)

__all__ = [
    "JOURNAL_NAME",
    "Journal",
    "decode_check",
    "decode_decision",
    "decode_explanation",
    "encode_check",
    "encode_decision",
    "encode_explanation",
    "read_journal",
    "repair",
]

JOURNAL_NAME = "journal.jsonl"


def _num(value: float | None) -> float | str | None:
    """A float for JSON: finite as is (repr: exact), infinities and NaN as strings."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # "inf", "-inf", "nan" included


def _summary(s: IntervalSummary | None) -> dict[str, Any] | None:
    if s is None:
        return None
    out: dict[str, Any] = {"hits": int(s.hits), "errors": int(s.errors)}
    for f in fields(s)[2:]:
        value = getattr(s, f.name)
        if value is not None:
            out[f.name] = _num(value)
    return out


def _decode_summary(raw: Any) -> IntervalSummary | None:
    if raw is None:
        return None
    extra = {k: _float(v) for k, v in raw.items() if k not in ("hits", "errors")}
    return IntervalSummary(hits=int(raw["hits"]), errors=int(raw["errors"]), **extra)


def encode_check(check: Check) -> dict[str, Any]:
    """The gate's input of one check as plain JSON (missing sides and figures stay missing)."""
    return {
        "end_ms": check.end_ms,
        "endpoints": [
            {"endpoint": e.endpoint, "old": _summary(e.old), "new": _summary(e.new)} for e in check.endpoints
        ],
    }


def decode_check(raw: Mapping[str, Any]) -> Check:
    """Inverse of :func:`encode_check` (exact)."""
    return Check(
        end_ms=int(raw["end_ms"]),
        endpoints=tuple(
            EndpointInterval(e["endpoint"], _decode_summary(e["old"]), _decode_summary(e["new"]))
            for e in raw["endpoints"]
        ),
    )


def encode_decision(d: StepDecision) -> dict[str, Any]:
    """A decision with everything behind it (metrics with their bounds, guardrails, split) as plain JSON."""
    return {
        "action": d.action.value,
        "step_index": d.step_index,
        "weight_pct": d.weight_pct,
        "step_checks": d.step_checks,
        "reasons": list(d.reasons),
        "metrics": [
            {
                "endpoint": m.endpoint,
                "metric": m.metric,
                "finding": m.finding.value,
                "estimate": _num(m.estimate),
                "lower": _num(m.lower),
                "upper": _num(m.upper),
                "threshold": _num(m.threshold),
                "intervals": m.intervals,
                "reason": m.reason,
                "decidable": m.decidable,
            }
            for m in d.metrics
        ],
        "guardrails": [
            {
                "endpoint": g.endpoint,
                "kind": g.kind,
                "observed": _num(g.observed),
                "limit": _num(g.limit),
                "reason": g.reason,
            }
            for g in d.guardrails
        ],
        "split": {
            "weight_pct": d.split.weight_pct,
            "observed_pct": _num(d.split.observed_pct),
            "hits": d.split.hits,
            "matches": d.split.matches,
        },
    }


def decode_decision(raw: Mapping[str, Any]) -> StepDecision:
    """Inverse of :func:`encode_decision` (exact)."""
    split = raw["split"]
    return StepDecision(
        action=Action(raw["action"]),
        step_index=int(raw["step_index"]),
        weight_pct=float(raw["weight_pct"]),
        step_checks=int(raw["step_checks"]),
        reasons=tuple(raw["reasons"]),
        metrics=tuple(
            MetricDecision(
                endpoint=m["endpoint"],
                metric=m["metric"],
                finding=Finding(m["finding"]),
                estimate=_float(m["estimate"]),
                lower=_float(m["lower"]),
                upper=_float(m["upper"]),
                threshold=float(m["threshold"]),
                intervals=int(m["intervals"]),
                reason=m["reason"],
                decidable=bool(m.get("decidable", True)),  # journals before it was recorded: decidable
            )
            for m in raw["metrics"]
        ),
        guardrails=tuple(
            GuardrailBreach(g["endpoint"], g["kind"], float(g["observed"]), float(g["limit"]), g["reason"])
            for g in raw["guardrails"]
        ),
        split=SplitCheck(
            float(split["weight_pct"]), _float(split["observed_pct"]), int(split["hits"]), split["matches"]
        ),
    )


def encode_explanation(explanation: StopExplanation) -> dict[str, Any]:
    """The explanation as plain JSON (the journal's ``explain`` record and cutover.json's ``explanation``)."""
    return {
        "file": explanation.file,
        "skipped": explanation.skipped,
        "endpoints": [
            {"endpoint": w.endpoint, "metrics": list(w.metrics), "sentence": w.sentence} for w in explanation.why
        ],
    }


def decode_explanation(raw: Mapping[str, Any]) -> StopExplanation:
    """Inverse of :func:`encode_explanation` (a journal record's fields); KeyError/TypeError when damaged."""
    return StopExplanation(
        tuple(
            StopWhy(str(e["endpoint"]), tuple(str(m) for m in e.get("metrics", ())), str(e["sentence"]))
            for e in raw.get("endpoints") or ()
        ),
        None if raw.get("file") is None else str(raw["file"]),
        None if raw.get("skipped") is None else str(raw["skipped"]),
    )


@dataclass(frozen=True)
class _Read:
    records: tuple[dict[str, Any], ...]
    good_bytes: int  # length of the file up to the end of the last whole record
    torn: bool  # a record cut short at the end was dropped


def _read(path: Path) -> _Read:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no journal here (nothing to resume)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    good = 0
    *whole, tail = data.split(b"\n")  # ``tail``: after the last newline; a record cut short by a kill, or b""
    for number, line in enumerate(whole, start=1):
        good += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or "kind" not in record:
            raise BadInput(f"{path}: line {number}: not a journal record (the journal is damaged)")
        records.append(record)
    return _Read(tuple(records), good, bool(tail))


def read_journal(path: Path) -> tuple[dict[str, Any], ...]:
    """The journal's whole records, in order (a record cut short at the end is dropped). BadInput when the
    file is missing, unreadable, or damaged before its last line."""
    return _read(path).records


def repair(path: Path) -> bool:
    """Truncate a record cut short at the end of the journal (so the next one starts on its own line);
    True when one was dropped."""
    read = _read(path)
    if read.torn:
        with path.open("r+b") as f:
            f.truncate(read.good_bytes)
            f.flush()
            os.fsync(f.fileno())
    return read.torn


class Journal:
    """Appends records to ``path`` (created with its directory at the first record: a run refused before it
    began leaves no file). ``clock``: Unix seconds for ``at``."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._file: BinaryIO | None = None
        self.records = 0

    def _open(self) -> BinaryIO:
        fresh = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("ab")
        except OSError as exc:
            raise BadInput(f"{self.path}: cannot write the journal: {exc.strerror or exc}") from None
        if fresh:
            _fsync_dir(self.path.parent)
        return handle

    def append(self, kind: str, **values: Any) -> dict[str, Any]:
        """Write one record (``kind``, ``at`` = now, ``values``), flushed and fsynced; returns it."""
        if self._file is None:
            self._file = self._open()
        record = {"kind": kind, "at": self._clock(), **values}
        line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
        try:
            self._file.write(line.encode("utf-8"))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:  # a full disk, an I/O error: nothing more may be done without its record
            self.close()
            raise BadInput(
                f"{self.path}: cannot write the journal ({exc.strerror or exc}): the cutover stopped before its "
                f"next action ({kind}); make room, then parity cutover --resume"
            ) from None
        self.records += 1
        return record

    def close(self) -> None:
        """Close the file; a write that failed is not retried (its record, cut short, is dropped on resume)."""
        handle, self._file = self._file, None
        if handle is not None:
            with suppress(OSError):
                handle.close()


@contextmanager
def open_journal(path: Path, clock: Callable[[], float]) -> Iterator[Journal]:
    """A :class:`Journal` closed at the end of the block."""
    journal = Journal(path, clock)
    try:
        yield journal
    finally:
        journal.close()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
