"""Whether a Measurement holds its whole run, read from its labels and its generator's health. Pure.

A replay labels what kept it from finishing (``parity/replay/locustfile.py`` ``_labels`` and the signal
handling): ``complete=no`` when it stopped before its planned end, ``aborted=<reason>`` when a safety rail
aborted it, ``failed=<reason>`` when a worker lane failed, ``stopped=<reason>`` when a signal stopped it,
``lost_lanes=<lanes>`` when worker lanes were lost (``lost`` is read too). The labels are read generically: any
of :data:`PARTIAL_LABELS` with a value other than a "no" word (:data:`NO_WORDS`) marks the side partial, and so
does ``complete`` with a "no" word. A side without such labels (Datadog, access logs, request logs,
older replays) is complete.

Generator health: a replay whose generator could not even start a large part of its schedule before the run
ended (``GeneratorHealth.unsent`` above :data:`MAX_UNSENT_SHARE` of the planned requests — sent + dropped +
unsent — and above :data:`MIN_UNSENT` requests) offered less load than planned: it is partial too. A few unsent
requests at the very end of a run are normal and do not count. Requests dropped by the max-RPS cap are the
user's own rail, reported elsewhere, and do not make a side partial.

A replay that sent a large part of its requests *late* (``GeneratorHealth.late_sends`` — started more than
``late_after_ms`` after their planned time, because every sender was waiting on the target — above
:data:`MAX_LATE_SHARE` of the requests sent and above :data:`MIN_LATE`) did not deliver its schedule: the load the
target saw is not the planned one, and latency measured under that back-pressure can hide a regression inside a
tolerance relative to seconds (seen: a concurrent A/B pair of two targets in one overloaded process, +30 ms
planted, 1,352 of 2,016 sends late, both sides at 1–5 s: PASS). It is treated as partial: a pass becomes
inconclusive, a fail stays a fail (intended-time latency already carries the lateness).

A concurrent A/B pair replays one schedule against both targets, but each target has its own senders: when one
target's senders are all busy (a slow target, or a held-back generator) its dispatcher falls behind, and what was
not handed out by the run's end is ``unsent`` on that side only. :func:`unequal_sides` says when the two sides
were not sent the same requests (different sends, unsent, dropped or in-flight counts, or different per-endpoint
counts); the replay then labels both sides ``complete = no`` and ``unequal_sides = <that line>``
(:data:`PARTIAL_LABELS`). The judge does not gate the throughput of a pair whose generators' sends differ
(:func:`unequal_sends`; sides without a generator record, e.g. server-side figures, are gated as before: there
fewer requests served is the target's).
"""

from __future__ import annotations

import json

from parity.model import LABEL_WITHOUT_BODY, Measurement

__all__ = [
    "MAX_LATE_SHARE",
    "MAX_UNSENT_SHARE",
    "MIN_LATE",
    "MIN_UNSENT",
    "NO_WORDS",
    "PARTIAL_LABELS",
    "UNEQUAL_SIDES",
    "partial_reasons",
    "unequal_sends",
    "unequal_sides",
    "without_body",
]

#: Labels whose presence (with a value other than a "no" word) marks a side partial, and the words for each.
PARTIAL_LABELS: dict[str, str] = {
    "aborted": "aborted by a safety rail",
    "failed": "a worker lane failed",
    "stopped": "stopped by a signal",
    "lost": "lost worker(s)",
    "lost_lanes": "lost worker lane(s)",
    "incomplete": "incomplete",
    "partial": "partial",
    "unequal_sides": "the A/B targets were not sent the same requests",
}
#: The label of an A/B pair's sides that were not sent the same requests (see :func:`unequal_sides`).
UNEQUAL_SIDES = "unequal_sides"
#: Labels whose value is a list (``lost_lanes = "0,2"``): any value but an empty one marks the side partial, and is
#: always shown (lane 0 is not a "no").
LIST_LABELS = frozenset({"lost_lanes"})
#: Label values that mean "not so" (compared in lower case).
NO_WORDS = frozenset({"", "no", "false", "0", "none", "n"})
#: Unsent requests (planned, never started before the run ended) beyond this share of the planned ones make a
#: side partial ...
MAX_UNSENT_SHARE = 0.01
#: ... when they are also more than this many (a handful at the very end of a short run is normal).
MIN_UNSENT = 10
#: Sends started late beyond this share of the requests sent make a side partial (healthy runs here: 0-4 of ~2,000) ...
MAX_LATE_SHARE = 0.10
#: ... when they are also more than this many.
MIN_LATE = 20
#: Endpoints whose counts differ, named in :func:`unequal_sides`'s line at most.
MAX_UNEQUAL_NAMED = 3
#: A label value is quoted up to this many characters.
MAX_VALUE_CHARS = 200


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def partial_reasons(m: Measurement) -> tuple[str, ...]:
    """Why ``m`` holds only part of its run, one line each (empty: complete). See the module docstring."""
    labels = {str(k).lower(): str(v) for k, v in m.labels.items()}
    reasons = []
    if labels.get("complete", "yes").strip().lower() in NO_WORDS:
        reasons.append("stopped before its planned end (complete=no)")
    for key, words in PARTIAL_LABELS.items():
        value = labels.get(key)
        if value is None or (key not in LIST_LABELS and value.strip().lower() in NO_WORDS) or not value.strip():
            continue
        flag = key not in LIST_LABELS and value.strip().lower() in ("yes", "true", "1")
        shown = "" if flag else f": {_cut(value)}"
        reasons.append(f"{words}{shown}")
    g = m.generator
    if g is not None and g.unsent > 0:
        planned = g.sent + g.dropped + g.unsent
        if g.unsent > MIN_UNSENT and g.unsent > MAX_UNSENT_SHARE * planned:
            reasons.append(
                f"the load generator could not start {g.unsent:,} of {planned:,} planned requests "
                f"({g.unsent / planned:.1%}) before the run ended"
            )
    if g is not None and g.late_sends > MIN_LATE and g.late_sends > MAX_LATE_SHARE * g.sent:
        reasons.append(
            f"{g.late_sends:,} of {g.sent:,} requests ({g.late_sends / g.sent:.0%}) were sent more than "
            f"{g.late_after_ms:g} ms behind their schedule (every sender was waiting on the target): the load it "
            "got was not the planned one"
        )
    return tuple(reasons)


def without_body(m: Measurement) -> frozenset[str]:
    """Keys of the write endpoints ``m``'s replay sent WITHOUT their request body (``LABEL_WITHOUT_BODY``, a JSON
    array of endpoint keys); empty when the label is absent or is not such an array (a hand-edited label)."""
    try:
        listed = json.loads(m.labels.get(LABEL_WITHOUT_BODY, "[]"))
    except ValueError:
        return frozenset()
    return frozenset(k for k in listed if isinstance(k, str)) if isinstance(listed, list) else frozenset()


def unequal_sides(old: Measurement, new: Measurement, names: tuple[str, str] = ("old", "new")) -> str | None:
    """Why the two sides of a concurrent A/B pair were NOT sent the same requests, in one line (``old target: sent
    1,868, unsent 176; new target: sent 1,831, unsent 213; GET /health 390 vs 380``), or None when they were: the
    same generator totals (sent, unsent, dropped by the rate cap, in flight at the end) and the same request count
    per endpoint. A side without a generator record (not a replay) is compared on its counts only. ``names`` name
    the sides in the line."""
    totals = [_sends(old), _sends(new)]
    a, b = old.by_key(), new.by_key()
    counts = {
        k: (a[k].count if k in a else 0, b[k].count if k in b else 0) for k in [*a, *(k for k in b if k not in a)]
    }
    differ = [f"{k} {x:,} vs {y:,}" for k, (x, y) in counts.items() if x != y]
    if not differ and not unequal_sends(old, new):
        return None
    parts = []
    if None not in totals:
        for name, t in zip(names, totals, strict=True):
            assert t is not None
            extra = "".join(
                f", {what} {n:,}" for what, n in zip(("unsent", "dropped", "in flight"), t[1:], strict=True) if n
            )
            parts.append(f"{name} target: sent {t[0]:,}{extra}")
    if differ:
        more = f" (+{len(differ) - MAX_UNEQUAL_NAMED} more)" if len(differ) > MAX_UNEQUAL_NAMED else ""
        parts.append(", ".join(differ[:MAX_UNEQUAL_NAMED]) + more)
    return "; ".join(parts)


def _sends(m: Measurement) -> tuple[int, int, int, int] | None:
    g = m.generator
    return None if g is None else (g.sent, g.unsent, g.dropped, g.in_flight)


def unequal_sends(old: Measurement, new: Measurement) -> bool:
    """Both sides are replays (a generator record each) whose sends differ: sent, unsent, dropped by the rate cap
    or in flight at the end. False when either side has no generator record."""
    a, b = _sends(old), _sends(new)
    return a is not None and b is not None and a != b
