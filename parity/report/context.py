"""``build_context(result, meta, charts, measurements=...)``: the view-model the HTML report renders. Pure: no I/O.

Like Locust's ``html.py``, every figure is formatted here; the template only loops and prints strings, and
the page's script only places the strings of ``data`` (the endpoint table, as JSON) and charts its numbers.
:func:`explain` puts the statistics behind each metric's verdict in plain words.
Numbers use :func:`parity.judge.compare.format_value`; ratios read ``x1.23``; deltas are signed in the
metric's unit (``+12.3 ms``, ``-0.20 req/s``), error-rate deltas in percentage points (``+0.40 pp``).
A missing figure prints as ``n/a`` (never as zero). Verdicts carry a CSS class derived from the
:class:`~parity.judge.result.Verdict` value (``verdict-fail``…); colours live in the template's CSS.
A metric that does not count towards its endpoint's verdict (``MetricResult.gated`` False) is labelled by why
(:func:`gate_label`: ``shown``, ``incomparable``, ``off`` or ``left-out``) instead of looking like a grey
inconclusive one.

The formatting helpers are shared with :mod:`parity.report.ci` so every renderer prints the same figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parity.judge import completeness
from parity.judge.compare import INTENDED, describe_looks_worse, format_value
from parity.judge.policy import METRICS
from parity.judge.result import (
    Bottleneck,
    Change,
    ComparisonMode,
    Direction,
    EndpointResult,
    EstimateKind,
    GeneratorInfo,
    Incomparability,
    MetricResult,
    ParityResult,
    SaturationKnee,
    SideInfo,
    Statistics,
    Verdict,
)
from parity.judge.stats import format_p
from parity.model import LatencyKind, Measurement
from parity.report.charts import CDF_GRID, clock_axes, rounded
from parity.report.explain import Explanations
from parity.report.explain import detail as explain_detail
from parity.report.explain import why as explain_why

__all__ = [
    "GATE_INCOMPARABLE",
    "GATE_LEFT_OUT",
    "GATE_OFF",
    "GATE_SHOWN",
    "METRIC_LABELS",
    "MISSING",
    "NEEDS_QUOTED_MAX",
    "TABLE_METRICS",
    "THROUGHPUT_METRIC",
    "TOP_BOTTLENECKS",
    "VERDICT_ORDER",
    "RunMeta",
    "basis_words",
    "build_context",
    "explain",
    "explain_parts",
    "format_count",
    "format_delta",
    "format_duration",
    "format_extra_errors",
    "format_extra_time",
    "format_ratio",
    "format_time",
    "gate_label",
    "gate_title",
    "incomparability_reasons",
    "iso_utc",
    "latency_judged",
    "latency_recorded",
    "load_factors",
    "mode_label",
    "needs_text",
    "other_reasons",
    "oversampled_text",
    "partial_sides",
    "plain_parts",
    "plain_sentence",
    "split_remedy",
    "verdict_css",
    "verdict_label",
    "without_body",
]

#: What a missing figure prints as.
MISSING = "n/a"

#: Verdicts worst first (the order counts and legends are listed in).
VERDICT_ORDER: tuple[Verdict, ...] = tuple(sorted(Verdict, key=lambda v: -v.severity))

#: Short column label per metric name (``avg``, ``p95``, ``error rate``…).
METRIC_LABELS: dict[str, str] = {m.name: m.label or m.name for m in METRICS}

_MODE_LABELS = {
    ComparisonMode.CONCURRENT: "concurrent A/B",
    ComparisonMode.BEFORE_AFTER: "before/after",
}
_MODE_EXPLANATIONS = {
    ComparisonMode.CONCURRENT: "both sides were measured at the same time under the same load",
    ComparisonMode.BEFORE_AFTER: (
        "the sides were measured at different times and loads: differences may come from the load "
        "as well as the environment"
    ),
}


@dataclass(frozen=True)
class RunMeta:
    """Facts about the harness run that produced a report (not about the measurements).

    ``generated_at`` must carry a time zone; reports print it in UTC. ``config`` is the path of the config
    file used (None: defaults only); ``command`` the command line, when known.
    """

    harness_version: str
    commit: str | None
    generated_at: datetime
    config: str | None
    command: str | None

    def __post_init__(self) -> None:
        if self.generated_at.tzinfo is None:
            raise ValueError("RunMeta.generated_at must carry a time zone")


# --- formatting helpers (shared by every renderer) -------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def verdict_label(verdict: Verdict) -> str:
    """``PASS``, ``MARGINAL``, ``FAIL``, ``INCONCLUSIVE``."""
    return verdict.value.upper()


def verdict_css(verdict: Verdict) -> str:
    """CSS class of a verdict: ``verdict-`` + the enum value (``verdict-fail``)."""
    return f"verdict-{verdict.value}"


def mode_label(mode: ComparisonMode) -> str:
    """``concurrent A/B`` or ``before/after``."""
    return _MODE_LABELS[mode]


def format_ratio(ratio: float | None) -> str:
    """``x1.23``; ``n/a`` when missing or not finite."""
    ratio = _finite(ratio)
    return MISSING if ratio is None else f"x{ratio:.2f}"


def _signed(value: float, digits: int) -> str:
    rounded = round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:+.{digits}f}"


def format_delta(delta: float | None, unit: str) -> str:
    """Signed difference in the metric's unit: ``+12.3 ms``, ``-0.40 pp`` (a ratio unit prints in
    percentage points), ``+1.25 req/s``; ``n/a`` when missing."""
    delta = _finite(delta)
    if delta is None:
        return MISSING
    if unit == "ratio":
        return f"{_signed(delta * 100, 2)} pp"
    if unit == "req/s":
        return f"{_signed(delta, 2)} req/s"
    return f"{_signed(delta, 1)} {unit}"


def format_extra_time(ms_per_min: float) -> str:
    """Extra server time per minute: ``+850 ms/min`` below a second, else ``+3.2 s/min``."""
    if ms_per_min < 1000:
        return f"+{ms_per_min:.0f} ms/min"
    return f"+{ms_per_min / 1000:.1f} s/min"


def format_extra_errors(per_min: float) -> str:
    """Extra errors per minute: ``+1.5 errors/min``."""
    return f"+{per_min:.1f} errors/min"


def format_count(n: int | None) -> str:
    """``12,345``; ``n/a`` when unknown."""
    return MISSING if n is None else f"{n:,}"


def format_share(share: float | None) -> str:
    """``12.3%`` of traffic; ``n/a`` when unknown."""
    share = _finite(share)
    return MISSING if share is None else f"{share:.1%}"


def iso_utc(dt: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix: ``2026-01-01T12:00:00Z``."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_time(dt: datetime) -> str:
    """``2026-01-01 12:00:00 UTC``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min 30 s``, ``3 h 05 min``."""
    total = round(seconds)
    if total < 120:
        return f"{seconds:.3g} s" if total < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _text(value: object | None) -> str:
    return "—" if value is None or value == "" else str(value)


# --- what the judge could not judge, and why (shared by every renderer) ----------------------------

#: Name of the per-endpoint throughput metric (the one the judge only shows under unequal offered load).
THROUGHPUT_METRIC = "rps"
#: :func:`gate_label` of throughput shown, not judged (closed-loop load, or different offered loads).
GATE_SHOWN = "shown"
#: :func:`gate_label` of latency whose kind differs between the sides (server vs client side).
GATE_INCOMPARABLE = "incomparable"
#: :func:`gate_label` of a metric whose gate is off in the config (reported only).
GATE_OFF = "off"
#: :func:`gate_label` of a metric the judge left out of the verdict for its data (its requests were replayed
#: without their body: not the baseline's requests), not for the config.
GATE_LEFT_OUT = "left-out"

_REMEDY = re.compile(r"^(?P<command>.*?\S)\s{2,}\((?P<why>[^()]*)\)$", re.S)


def split_remedy(remedy: str) -> tuple[str, str]:
    """``(command, why)`` of one of the judge's remedies (``parity ab … --out DIR   (replay old and new at
    once: …)``): the command line to copy, and the parenthesised explanation after it (empty when there is
    none)."""
    match = _REMEDY.match(remedy.strip())
    if match is None:
        return remedy.strip(), ""
    return match["command"], match["why"]


def incomparability_reasons(inc: Incomparability) -> tuple[str, str]:
    """The two run reasons the judge writes for an incomparable run (``latency not comparable: <reason>`` and
    ``for a latency verdict: <best remedy>``). Renderers that show the incomparability as a block of its own,
    with every remedy, leave these two out of the reasons they list."""
    return f"latency not comparable: {inc.reason}", f"for a latency verdict: {inc.remedies[0] if inc.remedies else ''}"


def other_reasons(result: ParityResult) -> list[str]:
    """The run's reasons without the ones :func:`incomparability_reasons` names (all of them when the latencies
    are comparable)."""
    if result.incomparable is None:
        return list(result.reasons)
    own = incomparability_reasons(result.incomparable)
    return [r for r in result.reasons if r not in own]


def gate_label(m: MetricResult, throughput_gated: bool) -> str | None:
    """Why a metric does not count towards its endpoint's verdict: :data:`GATE_INCOMPARABLE` (latency of
    different kinds), :data:`GATE_SHOWN` (throughput under unequal or closed-loop load: ``throughput_gated`` is
    the run's :attr:`~parity.judge.result.ParityResult.throughput_gated`), :data:`GATE_OFF` (its gate is off in
    the config), :data:`GATE_LEFT_OUT` (left out for its data, e.g. replayed without a body); None for a metric
    that counts (gated), whatever its verdict."""
    if m.gated:
        return None
    if not m.comparable:
        return GATE_INCOMPARABLE
    if m.metric == THROUGHPUT_METRIC and not throughput_gated:
        return GATE_SHOWN
    return GATE_OFF if "(gate off)" in m.reason else GATE_LEFT_OUT


def gate_title(label: str, result: ParityResult) -> str:
    """One sentence on a :func:`gate_label`, for a tooltip or a legend."""
    if label == GATE_INCOMPARABLE:
        reason = result.incomparable.reason if result.incomparable is not None else "the sides' latency kinds differ"
        return f"latency not comparable, neither passed nor failed: {reason}"
    if label == GATE_SHOWN:
        return f"throughput shown, not judged: {result.throughput_note or 'the sides saw different offered loads'}"
    if label == GATE_LEFT_OUT:
        return "left out of the verdict: its figures are not parity (e.g. requests replayed without their body)"
    return "reported only: this metric's gate is off in the config"


#: Requests per side above which :func:`needs_text` stops quoting the estimate: a change that small against its
#: noise is not going to be decided by running longer (the estimate grows without bound as the change seen
#: shrinks towards nothing).
NEEDS_QUOTED_MAX = 10_000_000


def needs_text(needs: int | None, have: int | None) -> str | None:
    """``about 180 more requests per side would decide it`` from the requests per side that would decide an
    undecided metric or endpoint (``needs``, in total) and the requests the smaller side has (``have``; None:
    unknown, the total is given instead); None when nothing is known. Above :data:`NEEDS_QUOTED_MAX` it says
    so instead of quoting a number no run will reach."""
    if needs is None:
        return None
    if needs > NEEDS_QUOTED_MAX:
        return f"more than {NEEDS_QUOTED_MAX:,} requests per side: the change seen is within noise"
    if have is not None and needs > have:
        return f"about {needs - have:,} more requests per side would decide it"
    return f"about {needs:,} requests per side would decide it"


def load_factors(measurements: tuple[Measurement, Measurement] | None) -> dict[str, tuple[float, float]]:
    """Endpoint key → (baseline, candidate) ``load_factor`` for the endpoints a replay oversampled on either
    side (a missing side counts 1.0); empty without the Measurements."""
    if measurements is None:
        return {}
    base, cand = ({e.endpoint.key: e.load_factor for e in m.endpoints} for m in measurements)
    keys = [k for k in {**base, **cand} if base.get(k, 1.0) != 1.0 or cand.get(k, 1.0) != 1.0]
    return {k: (base.get(k, 1.0), cand.get(k, 1.0)) for k in keys}


#: Badge and tooltip of an endpoint a replay sent without its request body (``LABEL_WITHOUT_BODY``).
WITHOUT_BODY_TEXT = (
    "sent without its body",
    "a write endpoint replayed with no request body (no body template; --allow-empty-bodies): the server likely "
    "answered with a fast error or a no-op, so this verdict is not parity — give it a template with --bodies DIR",
)


def without_body(measurements: tuple[Measurement, Measurement] | None) -> frozenset[str]:
    """Endpoint keys either Measurement's ``LABEL_WITHOUT_BODY`` lists (a JSON array of keys; a label that is not
    one is ignored); empty without the Measurements."""
    return frozenset().union(*(completeness.without_body(m) for m in measurements or ()))


def oversampled_text(factors: tuple[float, float] | None) -> str | None:
    """``oversampled ×4`` (both sides alike), ``oversampled ×4 (candidate)`` or ``oversampled ×2 baseline, ×4
    candidate``; None when neither side was oversampled."""
    if factors is None:
        return None
    base, cand = factors
    if base == cand:
        return None if base == 1.0 else f"oversampled ×{base:.3g}"
    sides = [(name, f) for name, f in (("baseline", base), ("candidate", cand)) if f != 1.0]
    if len(sides) == 1:
        return f"oversampled ×{sides[0][1]:.3g} ({sides[0][0]})"
    return "oversampled " + ", ".join(f"×{f:.3g} {name}" for name, f in sides)


_KIND_SIDE = {kind.value: "client-side" if kind.client_side else "server-side" for kind in LatencyKind}


def latency_recorded(kind: str) -> str:
    """``service-time (client-side)``: a side's latency kind and which side of the wire measured it."""
    side = _KIND_SIDE.get(kind)
    return f"{kind} ({side})" if side else kind


#: How a latency kind reads where a verdict's basis is named.
_KIND_WORDS = {"server": "server time", "service-time": "service time", INTENDED: "intended time"}


def basis_words(basis: str) -> str:
    """An endpoint's ``latency_basis`` as the latency each side was judged on: ``intended time (baseline and
    candidate, from each request's planned send time)``, ``service time (candidate) vs server time (baseline)``;
    ``none`` for an empty basis (a side missing)."""
    if not basis:
        return "none"
    if basis == INTENDED:
        return "intended time (baseline and candidate, from each request's planned send time)"
    kinds = basis.split("/")
    if len(kinds) == 2 and kinds[0] != kinds[1]:
        base, cand = (_KIND_WORDS.get(k, k) for k in kinds)
        return f"{cand} (candidate) vs {base} (baseline)"
    return f"{_KIND_WORDS.get(kinds[0], kinds[0])} (baseline and candidate)"


def latency_judged(result: ParityResult) -> str:
    """Which latency the verdicts rest on, read from each endpoint's ``latency_basis`` (what the judge actually
    compared, which can differ from the latency a side recorded first: a replay records service time and intended
    time): none when the kinds are not comparable; else per basis the endpoints judged on it (``intended time
    (baseline and candidate, …) on 5 endpoint(s); service time (candidate) vs service time (baseline) on 2``)."""
    if result.incomparable is not None:
        inc = result.incomparable
        return (
            f"none: {latency_recorded(inc.baseline_kind)} on the baseline, {latency_recorded(inc.candidate_kind)} "
            "on the candidate are not comparable"
        )
    bases: dict[str, int] = {}
    for e in result.endpoints:
        if e.latency_basis:
            bases[e.latency_basis] = bases.get(e.latency_basis, 0) + 1
    if not bases:
        return "none: no endpoint was measured on both sides"
    return "; ".join(f"{basis_words(b)} on {n:,} endpoint(s)" for b, n in sorted(bases.items(), key=lambda x: -x[1]))


# --- statistics in plain words ----------------------------------------------------------------------


def _pct(x: float) -> str:
    """A percentage without its sign: one decimal below 10%, none above (9.96 reads 10, not 10.0)."""
    x = abs(x)
    return f"{x:.1f}" if round(x, 1) < 10 else f"{x:.0f}"


def _p(p: float) -> str:
    """``= 3e-6`` (two significant digits, no zero-padded exponent); ``< 1e-300`` when it underflowed: the
    judge's :func:`parity.judge.stats.format_p`, so reasons and words print p-values alike."""
    return format_p(p)


def _tolerance_text(m: MetricResult) -> str:
    """``5% / 2 ms``: the relative tolerance and the absolute floor in the metric's unit (pp for rates)."""
    floor = f"{m.min_delta * 100:g} pp" if m.unit == "ratio" else f"{m.min_delta:g} {m.unit}"
    return f"{m.tolerance * 100:g}% / {floor}"


def _effect_text(m: MetricResult, s: Statistics, label: str) -> str:
    """``p95 is 12% higher (95% CI 8–16%)`` from the test's estimate and interval (ratio: relative change;
    difference: in the metric's unit, pp for rates); falls back to the figures' own ratio."""
    estimate = _finite(s.estimate)
    kind = s.estimate_kind
    if estimate is None:
        estimate, kind = _finite(m.ratio), EstimateKind.RATIO
    if estimate is None:
        return f"{label}: {format_value(_finite(m.baseline), m.unit)} → {format_value(_finite(m.candidate), m.unit)}"
    if kind is EstimateKind.RATIO:
        change, scale, unit = estimate - 1.0, 100.0, "%"
        low_high = None if s.interval is None else (s.interval[0] - 1.0, s.interval[1] - 1.0)
    else:
        change, scale, unit = (
            estimate,
            (100.0 if m.unit == "ratio" else 1.0),
            (" pp" if m.unit == "ratio" else f" {m.unit}"),
        )
        low_high = s.interval

    digits = {" ms": 1, " pp": 2}.get(unit, 2)

    def amount(x: float) -> str:
        return _pct(x * scale) if unit == "%" else f"{abs(x * scale):.{digits}f}"

    if float(amount(change)) == 0:
        text = f"{label} is unchanged"
    else:
        text = f"{label} is {amount(change)}{unit} {'higher' if change > 0 else 'lower'}"
    if low_high is not None and all(math.isfinite(v) for v in low_high):
        low, high = low_high
        level = f"{s.confidence * 100:g}% CI"
        if change != 0 and low * change > 0 and high * change > 0:  # the whole interval on the estimate's side
            a, b = sorted((abs(low), abs(high)))
            text += f" ({level} {amount(a)}–{amount(b)}{unit})"
        else:
            signed = [f"{'−' if v < 0 else '+'}{amount(v)}{unit}" for v in (low, high)]
            text += f" ({level} {signed[0]} to {signed[1]})"
    return text


def explain_parts(m: MetricResult, alpha: float) -> tuple[str, str]:
    """:func:`explain` in two parts, ``(head, tail)``: the head holds this metric's own figures (effect,
    interval, p-values), the tail the rule it was held to (family size, significance, tolerance, verdict),
    which repeats across endpoints — the HTML report sends each distinct tail once. ``tail`` is empty for a
    metric that was not judged (the head is then the judge's reason)."""
    label = METRIC_LABELS.get(m.metric, m.metric)
    s = m.statistics
    if s is None or m.change is Change.UNKNOWN:
        return m.reason, ""
    head = _effect_text(m, s, label)
    beyond = m.change in (Change.WORSE, Change.BETTER)
    tolerance = f"the {_tolerance_text(m)} tolerance"
    where = f"beyond {tolerance}{' (better)' if m.change is Change.BETTER else ''}" if beyond else f"within {tolerance}"
    verdict = f" → {verdict_label(m.verdict)}"
    if not s.tested or s.p_value is None:
        return head, f": no significance test possible (summary figures only), {where}{verdict}"
    head += f", p {_p(s.p_value)}"
    rate = f"the run's {alpha * 100:g}% false-alarm rate"
    if s.adjusted_p is None:
        significant = False
        family = " (not adjusted: left out of the run's family of tests)"
    else:
        significant = s.adjusted_p <= alpha
        head += f", Holm-adjusted {_p(s.adjusted_p).removeprefix('= ')}"
        family = f" over {s.family_size:,} tests"
    sig = f"significant at {rate}" if significant else f"not significant at {rate}"
    return head, f"{family}: {sig}, {'and' if significant == beyond else 'but'} {where}{verdict}"


def explain(m: MetricResult, alpha: float) -> str:
    """The statistics behind a metric's verdict in plain words, e.g. ``p95 is 12% higher (95% CI 8–16%),
    p = 3e-6, Holm-adjusted 1e-3 over 340 tests: significant at the run's 1% false-alarm rate, and beyond the
    5% / 2 ms tolerance → FAIL``.

    The effect and its interval come from the test's estimate (a ratio reads as a relative change; a
    difference in the metric's unit, percentage points for rates). Significance is the Holm-adjusted p-value
    against the run's ``alpha``; "beyond" the tolerance means the judge found the change larger than both the
    relative tolerance and the absolute floor. A metric that was not judged (a side missing, too few
    samples, a saturated generator) gets the judge's own reason.
    """
    head, tail = explain_parts(m, alpha)
    return head + tail


# --- one plain sentence per metric -----------------------------------------------------------------

#: A ratio at least this far from 1 reads as a factor (``1.6× slower``), closer as a percentage (``12% slower``).
FACTOR_FROM = 1.5

_WORDS = {  # (direction words when the value rose, fell) per unit
    "ms": ("slower", "faster"),
    "req/s": ("higher", "lower"),
}


def _plain_label(m: MetricResult) -> str:
    return "typical latency" if m.metric == "shift" else METRIC_LABELS.get(m.metric, m.metric)


def _plain_amount(m: MetricResult) -> str | None:
    """How much the metric moved in words: ``1.6× slower``, ``12% faster``, ``+7.80 percentage points``,
    ``unchanged``; None when a figure is missing. A change judged beyond the tolerance is never ``unchanged``: too
    small for those digits, it keeps two significant ones (``+0.0040 percentage points``, ``0.030% slower``)."""
    base, cand = _finite(m.baseline), _finite(m.candidate)
    if base is None or cand is None:
        return None
    beyond = m.change in (Change.WORSE, Change.BETTER) and cand != base
    if m.unit == "ratio":
        points = (cand - base) * 100
        if abs(points) < 0.005:
            return f"{'+' if points > 0 else '-'}{abs(points):#.2g} percentage points" if beyond else "unchanged"
        return f"{_signed(points, 2)} percentage points"
    if base <= 0:
        return "unchanged" if cand == base else None
    ratio = cand / base
    if abs(ratio - 1) < 0.0005:
        if beyond:
            return f"{abs(ratio - 1) * 100:#.2g}% {_WORDS.get(m.unit, ('higher', 'lower'))[0 if ratio > 1 else 1]}"
        return "unchanged"
    up, down = _WORDS.get(m.unit, ("higher", "lower"))
    word = up if ratio > 1 else down
    factor = ratio if ratio > 1 else 1 / ratio
    if factor >= FACTOR_FROM:
        return f"{factor:.1f}× {word}"
    change = (ratio - 1) * 100 if ratio > 1 else (1 - ratio) * 100
    return f"{_pct(change)}% {word}"


def _plain_tolerance(m: MetricResult) -> str:
    """``the 5% / 2 ms tolerance`` (rates: the floor in percentage points)."""
    if m.min_delta <= 0:
        return f"the {m.tolerance * 100:g}% tolerance"
    floor = f"{m.min_delta * 100:g} percentage points" if m.unit == "ratio" else f"{m.min_delta:g} {m.unit}"
    return f"the {m.tolerance * 100:g}% / {floor} tolerance"


def _requests(m: MetricResult) -> str:
    return f"{m.samples[0]:,} / {m.samples[1]:,} requests"


def _left_out_why(m: MetricResult) -> str:
    """Why the judge did not judge ``m``, from its reason (``p95: not judged, <why>[: <cand> vs <base>]``); the
    whole reason when it is not of that form."""
    why = m.reason.split(": not judged, ", 1)[1] if ": not judged, " in m.reason else m.reason
    figures = f": {format_value(_finite(m.candidate), m.unit)} vs {format_value(_finite(m.baseline), m.unit)}"
    return why.removesuffix(figures)


def _unjudged(m: MetricResult, label: str, figures: str, gate: str | None) -> tuple[str, str] | None:
    """:func:`plain_parts` of a metric that does not count (``gate``) or was not judged; None for the others."""
    if gate == GATE_INCOMPARABLE:
        return (
            f"{label} was not compared",
            ": the two sides measured different kinds of latency (see the callout at the top).",
        )
    if gate == GATE_SHOWN:
        return figures, "; shown only, not judged: the two sides did not see the same offered load."
    why = _left_out_why(m)
    if gate == GATE_OFF:
        return figures, "; reported only: this metric does not count towards the verdict (its gate is off)."
    if gate == GATE_LEFT_OUT:
        return figures, f"; not judged: {why}."
    if m.change is not Change.UNKNOWN:
        return None
    if m.baseline is None or m.candidate is None or min(m.samples) < m.min_samples:
        # the judge's words may name its test: the counts say it plainly
        why = f"not enough data ({why if why and 'test' not in why else _requests(m)})"
    if m.baseline is None or m.candidate is None:
        return f"{label} was not judged", f": {why}."
    return figures, f"; not judged: {why}."


def plain_parts(m: MetricResult, alpha: float, gate: str | None = None) -> tuple[str, str]:
    """:func:`plain_sentence` in two parts, ``(head, tail)``: the head holds this metric's figures (``p95 went
    from 437.0 ms to 702.0 ms, 1.6× slower``), the tail what they mean for the verdict (``; this is beyond the
    5% / 2 ms tolerance and not noise.``), which repeats across endpoints. No statistical term in either: the
    statistics behind it are :func:`explain`'s."""
    label = _plain_label(m)
    amount = _plain_amount(m)
    base, cand = format_value(_finite(m.baseline), m.unit), format_value(_finite(m.candidate), m.unit)
    figures = f"{label} went from {base} to {cand}" + (f", {amount}" if amount and amount != "unchanged" else "")
    if amount == "unchanged":
        figures = (
            f"{label} stayed at {cand}" if base == cand else f"{label} went from {base} to {cand}, about unchanged"
        )
    if (unjudged := _unjudged(m, label, figures, gate)) is not None:
        return unjudged
    tolerance = _plain_tolerance(m)
    s = m.statistics
    tested = s is not None and s.tested and s.p_value is not None
    certain = tested and s is not None and s.adjusted_p is not None and s.adjusted_p <= alpha
    if m.change is Change.WORSE:
        if m.verdict is Verdict.INCONCLUSIVE:
            if tested and not certain:
                return figures, f"; this is beyond {tolerance} but could be noise: more requests are needed to tell."
            return figures, f"; this is beyond {tolerance}, but too few requests to decide."
        if not tested:
            tail = f"; this is beyond {tolerance} (summary figures only: whether it is noise cannot be tested)"
        elif certain:
            tail = f"; this is beyond {tolerance} and not noise"
        else:
            tail = f"; this is beyond {tolerance} and probably, though not certainly, not noise"
        warns = m.verdict is Verdict.MARGINAL and (certain or not tested)
        return figures, tail + ("; this metric only warns." if warns else ".")
    if m.verdict is Verdict.INCONCLUSIVE:
        return figures, f"; this is within {tolerance} so far, but too few requests to be sure."
    if m.change is Change.BETTER:
        return figures, f"; an improvement beyond {tolerance}."
    return figures, f"; this is within {tolerance}."


def plain_sentence(m: MetricResult, alpha: float, gate: str | None = None) -> str:
    """One plain sentence on a metric's verdict, e.g. ``p95 went from 437.0 ms to 702.0 ms, 1.6× slower; this is
    beyond the 5% / 2 ms tolerance and not noise.`` — and the analogues for faster, within tolerance, could be
    noise, not enough data, error rates (in percentage points) and throughput. ``gate`` is the metric's
    :func:`gate_label` (a metric that does not count says why). No p-values or test names: "not noise" means
    significant at the run's ``alpha`` after the run's multiple-test adjustment (see :func:`explain`)."""
    head, tail = plain_parts(m, alpha, gate)
    return head + tail


# --- view-model ------------------------------------------------------------------------------------

#: The metrics the endpoint table shows as columns (the others, and every figure behind a cell, are in the
#: endpoint's detail and the cell's tooltip): what fits 1,280 px without scrolling sideways.
TABLE_METRICS = ("avg_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "rps")
#: Column headings where the metric's label is too long for a narrow column.
TABLE_LABELS = {"error_rate": "errors", "rps": "throughput"}

#: The overview lists at most this many bottlenecks (the endpoint table holds every endpoint).
TOP_BOTTLENECKS = 20


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {"value": verdict.value, "label": verdict_label(verdict), "css": verdict_css(verdict)}


def _sort_key(m: MetricResult) -> float | int | None:
    """Sort key of a metric cell, larger = worse: the ratio (inverted for higher-is-better metrics), the
    delta for error rates (their baseline is often 0); None when unknown. Four significant digits."""
    if m.unit == "ratio":
        value = _finite(m.delta)
    elif m.ratio is None or not math.isfinite(m.ratio) or m.ratio <= 0:
        value = None
    else:
        value = m.ratio if m.direction is Direction.LOWER_IS_BETTER else 1 / m.ratio
    return rounded(value, 4)


def _have(e: EndpointResult) -> int | None:
    """Requests on the endpoint's smaller side (None: a side missing)."""
    if e.baseline_count is None or e.candidate_count is None:
        return None
    return min(e.baseline_count, e.candidate_count)


def _cell(m: MetricResult, e: EndpointResult, run: _Run, strings: dict[str, dict[str, int]]) -> list[Any]:
    """One metric of one endpoint for the page (positional, see :func:`build_context`). Repeated text is
    interned: ``strings["methods"]`` and ``strings["rules"]`` map each distinct string to its index."""
    head, tail = explain_parts(m, run.alpha)
    method = (
        None if m.statistics is None else strings["methods"].setdefault(m.statistics.method, len(strings["methods"]))
    )
    # the verdict is stated once, by the plain sentence's badge: the rule behind it ends without it
    tail = tail.removesuffix(f" → {verdict_label(m.verdict)}")
    rule = strings["rules"].setdefault(tail, len(strings["rules"])) if tail else None
    gate = gate_label(m, run.throughput_gated)
    plain_head, plain_tail = plain_parts(m, run.alpha, gate)
    # the judge's own reason travels only where the page shows it: as an endpoint reason, or as the words
    reason = m.reason if (m.reason in e.reasons or not tail) else None
    if reason is not None and not m.comparable and run.incomparable is not None:
        # every latency metric of every endpoint repeats the run's incomparability: point to the callout instead
        reason = reason.replace(run.incomparable.reason, INCOMPARABLE_POINTER)
    undecided = m.gated and m.verdict is Verdict.INCONCLUSIVE
    return [
        format_value(_finite(m.baseline), m.unit),
        format_value(_finite(m.candidate), m.unit),
        format_ratio(m.ratio),
        format_delta(m.delta, m.unit),
        m.verdict.value,
        m.change.value,
        _sort_key(m),
        f"{m.samples[0]:,} / {m.samples[1]:,}",
        reason,
        head if tail else None,
        rule,
        method,
        gate,
        needs_text(m.needs, _have(e)) if undecided else None,
        plain_head,
        strings["says"].setdefault(plain_tail, len(strings["says"])),
    ]


#: What a latency metric's words say in place of the run's incomparability (the callout at the top explains it).
INCOMPARABLE_POINTER = "the two sides measured different kinds of latency (see the callout at the top)"

#: Percentiles of the "percentiles side by side" chart, by metric name.
_PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def _percentiles(e: EndpointResult) -> list[list[float | int | None]] | None:
    """``[[baseline p50, p95, p99, max], [candidate ...]]`` in ms (rounded), None when no latency metric."""
    metrics = [e.metric(name) for name in _PERCENTILES]
    if all(m is None for m in metrics):
        return None
    return [
        [None if m is None else rounded(m.baseline) for m in metrics],
        [None if m is None else rounded(m.candidate) for m in metrics],
    ]


def _load_curve(knee: SaturationKnee | None) -> list[list[Any]] | None:
    """``[[stage, load req/s, p95 ms | None, generator saturated], ...]`` of one side's stages."""
    if knee is None:
        return None
    return [[p.stage, rounded(p.load_rps), rounded(p.p95_ms), p.generator_saturated] for p in knee.points]


def _summary(e: EndpointResult, incomparable: Incomparability | None) -> str:
    """The first reason's headline (up to its first ``;``) for an endpoint that did not pass; else empty. The
    run's incomparability, which every endpoint repeats, reads as a short pointer to the callout."""
    if e.verdict is Verdict.PASS or not e.reasons:
        return ""
    first = e.reasons[0]
    if incomparable is not None and first.endswith(incomparable.reason):
        return (
            f"latency not comparable ({incomparable.baseline_kind} vs {incomparable.candidate_kind}): "
            "see the callout at the top"
        )
    return first.split(";", 1)[0]


@dataclass(frozen=True)
class _Run:
    """Run-wide facts the endpoint rows need: the run's alpha, whether throughput counted, the incomparability
    and the oversampled endpoints' (baseline, candidate) load factors."""

    alpha: float
    throughput_gated: bool
    incomparable: Incomparability | None
    factors: dict[str, tuple[float, float]]
    no_body: frozenset[str] = frozenset()
    extra_ms: dict[str, float] = field(default_factory=dict)


def _oversampled_title(factors: tuple[float, float]) -> str:
    return (
        "sent above its share of production traffic so that it can be judged (load factor "
        + " / ".join(f"{name} ×{f:.3g}" for name, f in zip(("baseline", "candidate"), factors, strict=True))
        + "): the replayed mix differs from production; throughput is compared per unit of its load"
    )


def _endpoint_row(
    index: int,
    e: EndpointResult,
    run: _Run,
    strings: dict[str, dict[str, int]],
    knees: dict[str, dict[str, SaturationKnee]],
    charts: dict[str, Any] | None,
    explanation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    by_name = {m.metric: m for m in e.metrics}
    cells = [None if (m := by_name.get(spec.name)) is None else _cell(m, e, run, strings) for spec in METRICS]
    reasons = list(e.reasons)
    cell_reasons = {c[8]: i for i, c in enumerate(cells) if c is not None and c[8] is not None}
    sides = knees.get(e.endpoint.key, {})
    row: dict[str, Any] = {
        "i": index,
        "k": e.endpoint.key,
        "v": e.verdict.value,
        "n": [format_count(e.baseline_count), format_count(e.candidate_count)],
        "ns": [e.baseline_count, e.candidate_count],
        "sh": format_share(e.traffic_share),
        # a reason that is a metric's own reason is sent once, as that metric's index
        "r": [cell_reasons.get(r, r) for r in reasons],
        "m": cells,
    }
    if e.critical:
        row["crit"] = True
    if (extra := run.extra_ms.get(e.endpoint.key, 0.0)) > 0:
        row["x"] = [format_extra_time(extra), rounded(extra, 4)]
    if e.latency_basis and any(not m.comparable for m in e.metrics):
        row["lb"] = f"none ({e.latency_basis.replace('/', ' vs ')}: not comparable)"
    elif e.latency_basis:
        row["lb"] = basis_words(e.latency_basis)
    if summary := _summary(e, run.incomparable):
        row["s"] = summary
    if looks := describe_looks_worse(e):
        row["lw"] = f"not judged, {looks}"
    if (needs := needs_text(e.needs, _have(e))) is not None:
        row["nd"] = f"Not decided yet: {needs}."
    factors = run.factors.get(e.endpoint.key)
    if (oversampled := oversampled_text(factors)) is not None and factors is not None:
        row["os"] = [oversampled, _oversampled_title(factors)]
    if e.endpoint.key in run.no_body:
        row["nb"] = list(WITHOUT_BODY_TEXT)
    if (pct := _percentiles(e)) is not None:
        row["pct"] = pct
    if sides:
        row["load"] = [_load_curve(sides.get("baseline")), _load_curve(sides.get("candidate"))]
    if charts is not None:
        row["ch"] = charts
    if explanation:
        row["ex"] = explain_detail(explanation)
    return row


def _knee_text(k: SaturationKnee | None) -> str:
    if k is None:
        return MISSING
    if k.stage is None or k.load_rps is None:
        return "none found"
    return f"{k.load_rps:,.0f} req/s ({k.stage})"


def _knees_by_key(knees: tuple[SaturationKnee, ...]) -> dict[str, dict[str, SaturationKnee]]:
    by_key: dict[str, dict[str, SaturationKnee]] = {}
    for k in knees:
        by_key.setdefault(k.endpoint.key, {})[k.side] = k
    return by_key


def _knee_rows(knees: tuple[SaturationKnee, ...]) -> list[dict[str, Any]]:
    """One row per endpoint with a knee on either side (endpoints in first-seen order)."""
    rows = []
    for key, sides in _knees_by_key(knees).items():
        base, cand = sides.get("baseline"), sides.get("candidate")
        earlier = (
            cand is not None
            and cand.load_rps is not None
            and (base is None or base.load_rps is None or cand.load_rps < base.load_rps)
        )
        rows.append(
            {
                "key": key,
                "baseline": _knee_text(base),
                "candidate": _knee_text(cand),
                "css": "verdict-fail" if earlier else "",
                "reasons": [f"{side}: {k.reason}" for side, k in sides.items()],
            }
        )
    return rows


def _bottleneck_row(b: Bottleneck, comparable: bool, why: str | None = None) -> dict[str, Any]:
    """One ranked bottleneck; its latency ratios read ``incomparable`` when the sides' latency kinds differ;
    ``why``: the explanation's line (None: no explain.json entry; then ``""``)."""
    ratio = format_ratio if comparable else (lambda _: GATE_INCOMPARABLE)
    return {
        "why": why or "",
        "rank": b.rank,
        "key": b.endpoint.key,
        "verdict": _verdict(b.verdict),
        "extra_time": format_extra_time(b.extra_ms_per_min) if b.extra_ms_per_min > 0 else "—",
        "extra_errors": format_extra_errors(b.extra_errors_per_min) if b.extra_errors_per_min > 0 else "—",
        "baseline_rpm": f"{b.baseline_rpm:,.1f} req/min",
        "avg_ratio": ratio(b.avg_ratio),
        "p95_ratio": ratio(b.p95_ratio),
        "failed_metrics": ", ".join(METRIC_LABELS.get(n, n) for n in b.failed_metrics) or "—",
    }


def _generator_text(g: GeneratorInfo | None) -> str | None:
    """One line on the load generator's health: processes, peak CPU, saturation, its own scheduling lag (when
    measured), late and dropped sends."""
    if g is None:
        return None
    cpu = "CPU not sampled" if g.peak_cpu_percent is None else f"peak CPU {g.peak_cpu_percent:.0f}%"
    parts = [f"{g.processes} process{'es' if g.processes != 1 else ''}", cpu]
    if g.saturated_share is not None:
        parts.append(f"saturated (> {g.saturation_percent:g}%) in {g.saturated_share:.0%} of intervals")
    if g.peak_lag_ms is not None:
        lag = f"lagged up to {g.peak_lag_ms:,.0f} ms behind its schedule"
        if g.lagged_share:
            lag += f" (> {g.lag_limit_ms:g} ms in {g.lagged_share:.0%} of intervals)"
        parts.append(lag)
    parts.append(f"{g.late_sends:,} of {g.sent:,} sends late")
    if g.dropped:
        parts.append(f"{g.dropped:,} dropped over the rate cap")
    if g.in_flight:
        parts.append(f"{g.in_flight:,} still in flight at the end (sent, not recorded)")
    text = ", ".join(parts)
    if not g.blamed_generator:
        return text
    why = " and ".join(w for w, on in (("CPU-saturated", g.saturated), ("lagging", g.lagging)) if on)
    return f"{text} — latency not judged ({why})"


def _health_word(g: GeneratorInfo) -> str:
    """The word for an impaired generator: what impaired it."""
    if g.saturated and g.lagging:
        return "saturated and lagging"
    return "lagging" if g.lagging else "saturated"


def _generator_rows(result: ParityResult) -> list[dict[str, Any]]:
    """Overview lines on each side's load generator (sides that had one of ours)."""
    rows = []
    for title, side in (("Baseline", result.baseline), ("Candidate", result.candidate)):
        g = side.generator
        if g is None:
            continue
        saturated = g.blamed_generator or bool(g.saturated_share) or bool(g.lagged_share)
        rows.append(
            {
                "side": title,
                "text": _generator_text(g) or "",
                "css": "verdict-fail" if g.blamed_generator else ("verdict-marginal" if saturated else "verdict-pass"),
                "health": _health_word(g) if g.blamed_generator else ("strained" if saturated else "healthy"),
            }
        )
    return rows


def _side(title: str, s: SideInfo, judged: str) -> dict[str, Any]:
    """One side's provenance rows; ``judged`` is :func:`latency_judged` (what the verdicts rest on, which can
    differ from the latency the side recorded first: a replay records service time and intended time)."""
    rows = [
        ("File", s.name),
        ("Source", s.source_kind),
        ("Description", s.description),
        ("Service", s.service),
        ("Environment", s.env),
        ("Target", s.target),
        ("Window", f"{format_time(s.window_start)} – {format_time(s.window_end)}"),
        ("Duration", format_duration(s.duration_s)),
        ("Requests", format_count(s.requests)),
        ("Errors", format_count(s.errors)),
        ("Endpoints", format_count(s.endpoints)),
        ("Latency recorded", latency_recorded(s.latency_kind)),
        ("Latency judged", judged),
        ("Rate scale", f"{s.rate_scale:g}"),
        ("Pair id", s.pair_id),
        ("Load generator", _generator_text(s.generator)),
    ]
    return {"title": title, "rows": [{"label": k, "value": _text(v)} for k, v in rows]}


def partial_sides(result: ParityResult) -> list[dict[str, Any]]:
    """The partial sides for the banner, each ``{side, name, reasons}`` (empty: both sides complete)."""
    return [{"side": p.side, "name": p.name, "reasons": list(p.reasons)} for p in result.partial]


def _title(result: ParityResult) -> str:
    service = result.candidate.service or result.baseline.service
    return f"Performance parity: {service}" if service else "Performance parity"


def _statistics_text(result: ParityResult) -> str:
    return (
        f"run-level false-alarm rate α = {result.alpha * 100:g}%, Holm-adjusted over {result.tests:,} test(s); "
        "a metric fails only when its change is significant and beyond its tolerance"
    )


def _incomparable(result: ParityResult) -> dict[str, Any]:
    """The incomparability callout: the reason, the two kinds, and each remedy as a command to copy with the
    explanation beside it (best first); empty when the latencies are comparable."""
    inc = result.incomparable
    if inc is None:
        return {}
    return {
        "reason": inc.reason,
        "kinds": f"baseline {latency_recorded(inc.baseline_kind)} vs candidate {latency_recorded(inc.candidate_kind)}",
        "remedies": [dict(zip(("command", "why"), split_remedy(r), strict=True)) for r in inc.remedies],
    }


def _more(needs: int | None, have: int | None) -> str | None:
    """``~2,785 more`` requests per side (``~N in all`` when ``have`` is unknown or already as many; ``over
    10,000,000: within noise`` past :data:`NEEDS_QUOTED_MAX`); None when unknown."""
    if needs is None:
        return None
    if needs > NEEDS_QUOTED_MAX:
        return f"over {NEEDS_QUOTED_MAX:,}: within noise"
    if have is not None and needs > have:
        return f"~{needs - have:,} more"
    return f"~{needs:,} in all"


def _decides(e: EndpointResult) -> list[str]:
    """The requests per side that would decide an endpoint that looks worse: per metric that looks worse, then
    (when more) every metric still open, e.g. ``p95: ~120 more``."""
    have = _have(e)
    lines = [
        f"{METRIC_LABELS.get(m.metric, m.metric)}: {text}"
        for m in e.looks_worse
        if (text := _more(m.needs, have)) is not None
    ]
    most = max((m.needs or 0 for m in e.looks_worse), default=0)
    if e.needs is not None and e.needs > most and (text := _more(e.needs, have)) is not None:
        lines.append(f"everything still open: {text}")
    return lines or ["unknown: nothing to estimate it from"]


def _looks_worse_rows(result: ParityResult) -> list[dict[str, Any]]:
    """The endpoints that could not be judged but look worse beyond tolerance, in the result's order."""
    return [
        {
            "key": e.endpoint.key,
            "looks": describe_looks_worse(e),
            "requests": f"{format_count(e.baseline_count)} / {format_count(e.candidate_count)}",
            "share": format_share(e.traffic_share),
            "decides": _decides(e),
        }
        for e in result.unjudged_looking_worse
    ]


def _throughput_text(result: ParityResult) -> str:
    if result.throughput_gated:
        return "judged: both sides saw the same offered load"
    return f"shown, not judged: {result.throughput_note}"


def build_context(
    result: ParityResult,
    meta: RunMeta,
    charts: Sequence[dict[str, Any] | None] | None = None,
    *,
    measurements: tuple[Measurement, Measurement] | None = None,
    explanations: Explanations | None = None,
) -> dict[str, Any]:
    """The HTML report's view-model: nested dicts, lists and pre-formatted strings only (numbers only where
    the page charts or sorts them).

    The overview (banner — led by ``partial``, the sides that hold only part of their run, see
    :func:`partial_sides` —, the incomparability callout — ``incomparable``: reason, kinds and ``remedies`` as
    ``{command, why}``, empty when the latencies compare —, ``looks_worse``: the endpoints not judged that look
    worse, counts, generators, top :data:`TOP_BOTTLENECKS` bottlenecks in rank order, knees, metadata with the
    latency judged and the throughput rule) is rendered by the template. The endpoint table is in ``data`` (JSON
    for the page's script, which builds the rows, sorts, filters and draws charts): ``data["rows"]`` keeps the
    result's order (worst first), one dict per endpoint with short keys — ``i`` position, ``k`` endpoint, ``v``
    verdict, ``crit`` critical, ``n`` formatted counts (baseline, candidate), ``ns`` raw counts (for sorting),
    ``sh`` traffic share, ``lb`` the latency judged in words (:func:`basis_words`; ``none (server vs service-time:
    not comparable)`` when the kinds differ), ``x`` ``[extra server time per minute, its sort key]`` of a
    bottleneck, ``s`` headline of the first reason, ``lw`` the looks-worse words
    of an endpoint not judged, ``nd`` the requests that would decide its undecided metrics in words, ``os``
    ``[badge, tooltip]`` of an oversampled endpoint (only with ``measurements``), ``nb`` ``[badge, tooltip]`` of
    an endpoint a replay sent without its request body (``without_body``), ``r`` reasons (an int is the
    index of the metric whose reason it is), ``m`` one cell per :data:`~parity.judge.policy.METRICS` entry
    (None: not reported) as ``[baseline, candidate, ratio, delta, verdict, change, sort key (larger = worse;
    None: unknown), samples, the judge's reason (None unless it is one of the endpoint's reasons or the metric
    was not judged), the statistics in plain words as a head (None: not judged) and the index of its tail in
    ``data["rules"]`` (see :func:`explain_parts`), the test's index in ``data["methods"]``, the
    :func:`gate_label` of a metric that does not count (None: it counts; ``data["gates"]`` holds each label's
    text and tooltip), the requests that would decide an undecided metric in words (None: decided), the plain
    sentence's head and the index of its tail in ``data["says"]`` (see :func:`plain_parts`: the detail's first line
    per metric)]``; ``data["table"]`` lists the indices of the metrics the table shows (:data:`TABLE_METRICS`),
    ``data["clock"]`` is :func:`parity.report.charts.clock_axes` (None without ``measurements``); ``pct``
    p50/p95/p99/max ms per side, ``load`` the latency-vs-load points per side (staged runs), ``ch`` the chart
    series of :func:`parity.report.charts.chart_data` (only when ``charts`` is given), ``ex`` the endpoint's
    explanation (:func:`parity.report.explain.detail`; only with ``explanations``: endpoint key → explain.json entry,
    whose why line also goes into the bottleneck table's ``why``).

    ``measurements`` = (baseline, candidate), the Measurements ``result`` compared: they tell which endpoints
    a replay oversampled (``EndpointStats.load_factor``).
    """
    counts = result.counts()
    explained = explanations or {}
    sides = (("Baseline", result.baseline), ("Candidate", result.candidate))
    strings: dict[str, dict[str, int]] = {"methods": {}, "rules": {}, "says": {}}
    knees = _knees_by_key(result.knees)
    factors = load_factors(measurements)
    extra = {b.endpoint.key: b.extra_ms_per_min for b in result.bottlenecks}
    run = _Run(result.alpha, result.throughput_gated, result.incomparable, factors, without_body(measurements), extra)
    rows = [
        _endpoint_row(
            i, e, run, strings, knees, None if charts is None else charts[i - 1], explained.get(e.endpoint.key)
        )
        for i, e in enumerate(result.endpoints, start=1)
    ]
    verdicts = {v.value: {**_verdict(v), "severity": v.severity} for v in VERDICT_ORDER}
    gates = {
        g: {"label": g.replace("-", " "), "title": gate_title(g, result)}
        for g in (GATE_SHOWN, GATE_INCOMPARABLE, GATE_OFF, GATE_LEFT_OUT)
    }
    return {
        "title": _title(result),
        "subtitle": f"{result.baseline.name} (baseline) → {result.candidate.name} (candidate)",
        "verdict": {**_verdict(result.verdict), "reasons": list(result.reasons)},
        "partial": partial_sides(result),
        "mode": {
            "value": result.mode.value,
            "label": mode_label(result.mode),
            "explanation": _MODE_EXPLANATIONS[result.mode],
        },
        "incomparable": _incomparable(result),
        "looks_worse": _looks_worse_rows(result),
        "counts": [{**_verdict(v), "count": counts[v]} for v in VERDICT_ORDER],
        "total_endpoints": len(result.endpoints),
        "notes": list(result.notes),
        "statistics": _statistics_text(result),
        "latency_judged": latency_judged(result),
        "throughput": _throughput_text(result),
        "generators": _generator_rows(result),
        "metric_columns": [
            {"name": m.name, "label": TABLE_LABELS.get(m.name, METRIC_LABELS[m.name]), "unit": m.unit}
            for m in METRICS
            if m.name in TABLE_METRICS
        ],
        "bottlenecks": [
            _bottleneck_row(b, result.incomparable is None, explain_why(explained.get(b.endpoint.key)))
            for b in result.bottlenecks[:TOP_BOTTLENECKS]
        ],
        "more_bottlenecks": max(len(result.bottlenecks) - TOP_BOTTLENECKS, 0),
        "knees": _knee_rows(result.knees),
        "sides": [_side(title, side, latency_judged(result)) for title, side in sides],
        "run": [
            {"label": "Harness version", "value": _text(meta.harness_version)},
            {"label": "Commit", "value": _text(meta.commit)},
            {"label": "Generated at", "value": format_time(meta.generated_at)},
            {"label": "Config", "value": _text(meta.config)},
            {"label": "Command", "value": _text(meta.command)},
            {"label": "Latency judged", "value": latency_judged(result)},
            {"label": "Throughput", "value": _throughput_text(result)},
            {"label": "Statistics", "value": _statistics_text(result)},
        ],
        "footer": f"parity {meta.harness_version} · generated {format_time(meta.generated_at)}",
        "data": {
            "columns": [{"name": m.name, "label": METRIC_LABELS[m.name], "unit": m.unit} for m in METRICS],
            "verdicts": verdicts,
            "gates": gates,
            "methods": list(strings["methods"]),
            "rules": list(strings["rules"]),
            "says": list(strings["says"]),
            "table": [i for i, m in enumerate(METRICS) if m.name in TABLE_METRICS],
            "grid": list(CDF_GRID),
            "charts": charts is not None,
            "clock": None if measurements is None else clock_axes(*measurements),
            "rows": rows,
        },
    }
