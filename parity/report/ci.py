"""Machine- and CI-facing renderers: ``parity.json``, JUnit XML and a Markdown step summary. Pure: no I/O.

- :func:`parity_json` follows the user-facing contract in the GUIDE (format ``parity-result``, version 1):
  JSON-safe (non-finite numbers become ``null``), enums as their values, times ISO-8601 UTC with ``Z``.
- :func:`junit_xml`: one ``<testcase>`` per endpoint; fail → ``<failure>``, inconclusive → ``<skipped>``,
  marginal → passes with its reasons in ``<system-out>``.
- :func:`summary_md`: GitHub-flavoured Markdown for a job step summary or a PR comment.

Each leads with what keeps a verdict from being trusted: latency that is not comparable (server vs client side,
with the commands that get a comparable side), endpoints not judged that look worse (with the requests that
would decide them), throughput shown rather than judged.
"""

from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from parity.judge.compare import describe_looks_worse, format_value
from parity.judge.result import EndpointResult, MetricResult, ParityResult, Statistics, Verdict
from parity.model import Endpoint
from parity.report.context import (
    GATE_INCOMPARABLE,
    VERDICT_ORDER,
    RunMeta,
    format_count,
    format_extra_errors,
    format_extra_time,
    format_ratio,
    iso_utc,
    mode_label,
    other_reasons,
    split_remedy,
    verdict_label,
)
from parity.report.explain import why as explain_why
from parity.report.text import MAX_NAME_CHARS, cut, encodable, no_mentions, one_line

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SUMMARY_MAX_ROWS",
    "json_value",
    "junit_xml",
    "parity_json",
    "summary_md",
]

#: ``format`` and ``version`` fields of parity.json.
FORMAT = "parity-result"
FORMAT_VERSION = 1

#: Rows of the regressions table in summary.md (the rest is counted, not listed).
SUMMARY_MAX_ROWS = 10

#: Inconclusive endpoints named in summary.md before "and N more".
SUMMARY_MAX_INCONCLUSIVE = 5


# --- parity.json -----------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """JSON-safe form of a result field: enums → values, datetimes → ISO Z, endpoints → keys,
    tuples → lists, dataclasses → dicts, NaN/inf → None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Endpoint):
        return value.key
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _metric_json(m: MetricResult) -> dict[str, Any]:
    return {
        "baseline": json_value(m.baseline),
        "candidate": json_value(m.candidate),
        "ratio": json_value(m.ratio),
        "delta": json_value(m.delta),
        "unit": m.unit,
        "direction": m.direction.value,
        "change": m.change.value,
        "verdict": m.verdict.value,
        "reason": m.reason,
        "tolerance": json_value(m.tolerance),
        "min_delta": json_value(m.min_delta),
        "min_samples": m.min_samples,
        "samples": {"baseline": m.samples[0], "candidate": m.samples[1]},
        "statistics": None if m.statistics is None else _statistics_json(m.statistics),
        "gated": m.gated,
        "comparable": m.comparable,
        "looks_worse": m.looks_worse,
        "needs": m.needs,
    }


def _statistics_json(s: Statistics) -> dict[str, Any]:
    return {
        "method": s.method,
        "tested": s.tested,
        "estimate": json_value(s.estimate),
        "estimate_kind": s.estimate_kind.value,
        "interval": None if s.interval is None else [json_value(x) for x in s.interval],
        "confidence": s.confidence,
        "p_value": json_value(s.p_value),
        "adjusted_p": json_value(s.adjusted_p),
        "alpha": s.alpha,
        "family_size": s.family_size,
        "details": {k: json_value(v) for k, v in s.details},
    }


def _endpoint_json(e: EndpointResult) -> dict[str, Any]:
    return {
        "endpoint": e.endpoint.key,
        "method": e.endpoint.method,
        "route": e.endpoint.route,
        "verdict": e.verdict.value,
        "reasons": list(e.reasons),
        "baseline_count": e.baseline_count,
        "candidate_count": e.candidate_count,
        "traffic_share": json_value(e.traffic_share),
        "latency_basis": e.latency_basis,
        "critical": e.critical,
        "needs": e.needs,
        "looks_worse": describe_looks_worse(e) or None,
        "metrics": {m.metric: _metric_json(m) for m in e.metrics},
    }


def parity_json(result: ParityResult, meta: RunMeta) -> dict[str, Any]:
    """The ``parity.json`` document (see the GUIDE's user-facing contract).

    Top level: ``format``, ``version``, ``verdict``, ``reasons``, ``mode``, ``notes``, ``counts`` (every
    verdict, zeros included), ``endpoints`` (worst first, each with its ``metrics`` keyed by metric name),
    ``bottlenecks`` (ranked), ``knees`` (saturation knees of staged replays), ``statistics`` (the run's
    false-alarm rate and the number of tests adjusted together), ``baseline``/``candidate`` (provenance)
    and ``meta`` (the harness run). Each metric carries the test behind its verdict under ``statistics``.
    Missing figures are ``null``, never 0. Serialises with ``json.dumps(..., allow_nan=False)``.

    What a verdict cannot rest on (additive to version 1): ``complete`` — False when a side holds only part of
    its run, listed in ``partial`` (``[{side, name, reasons}]``; empty when complete): the verdict is then never
    pass or marginal, and the first reason says so; ``incomparable`` — ``null``, or ``{baseline_kind,
    candidate_kind, reason, remedies}`` when the sides measured different kinds of latency (remedies: command
    lines, best first, placeholders in capitals); ``throughput`` — ``{gated, note}`` (``note``: why per-endpoint
    throughput is only shown); ``unjudged_looking_worse`` — ``[{endpoint, looks, needs}]``, the endpoints not
    judged whose point estimates look worse beyond tolerance (``looks``: in words; ``needs``: requests per side,
    in total, that would decide what is still open, or ``null``). Per endpoint ``needs`` (likewise) and
    ``looks_worse`` (the words, or ``null``); per metric ``gated`` (counts towards the endpoint's verdict),
    ``comparable`` (False: latency of a different kind than the other side's), ``looks_worse`` (point estimate
    beyond tolerance the bad way) and ``needs`` (requests per side that would decide it; ``null``: decided or
    unknown).
    """
    counts = result.counts()
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "verdict": result.verdict.value,
        "complete": result.complete,
        "partial": [{"side": p.side, "name": p.name, "reasons": list(p.reasons)} for p in result.partial],
        "reasons": list(result.reasons),
        "mode": result.mode.value,
        "notes": list(result.notes),
        "counts": {v.value: counts[v] for v in Verdict},
        "endpoints": [_endpoint_json(e) for e in result.endpoints],
        "incomparable": json_value(result.incomparable),
        "throughput": {"gated": result.throughput_gated, "note": result.throughput_note},
        "unjudged_looking_worse": [
            {"endpoint": e.endpoint.key, "looks": describe_looks_worse(e), "needs": e.needs}
            for e in result.unjudged_looking_worse
        ],
        "bottlenecks": [json_value(b) for b in result.bottlenecks],
        "knees": [json_value(k) for k in result.knees],
        "statistics": {
            "alpha": result.alpha,
            "tests": result.tests,
            "adjustment": "Holm (family-wise error rate over every test of the run)",
        },
        "baseline": json_value(result.baseline),
        "candidate": json_value(result.candidate),
        "meta": json_value(meta),
    }


# --- JUnit XML -------------------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (ElementTree would write them and produce an unparsable file).
# Lone surrogates cannot be encoded at all (the file would not be written).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def _classname(result: ParityResult) -> str:
    service = result.baseline.service or result.candidate.service
    return f"parity.{service or 'endpoints'}"


def _skipped(e: EndpointResult, result: ParityResult) -> tuple[str, str]:
    """(message, text) of an inconclusive endpoint's ``<skipped>``: the message leads with the looks-worse
    words of an endpoint that looks worse, then says ``latency incomparable: …`` when the sides' latencies do
    not compare, else gives the first reason; the text holds every reason, one per line (and the best remedy
    for a latency verdict)."""
    inc = result.incomparable
    incomparable = inc is not None and any(not m.comparable for m in e.metrics)
    first = f"latency incomparable: {inc.reason}" if incomparable and inc is not None else None
    first = first or (e.reasons[0] if e.reasons else e.verdict.value)
    looks = describe_looks_worse(e)
    message = f"{looks}; {first}" if looks else first
    lines = list(e.reasons)
    if incomparable and inc is not None and inc.remedies:
        lines.append(f"for a latency verdict: {inc.remedies[0]}")  # every remedy: the suite's "remedies" property
    return message, "\n".join(lines)


def junit_xml(result: ParityResult, explanations: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """JUnit XML: ``<testsuites>`` holding one ``<testsuite name="parity">``, one testcase per endpoint.

    A failed endpoint carries ``<failure message="first reason" type="regression">`` with every reason,
    one per line; an inconclusive one ``<skipped>`` (its message leads with ``looks x1.90 slower (p95): needs
    ~120 more requests per side`` when it looks worse, and says ``latency incomparable: …`` when the sides'
    latencies do not compare; see :func:`_skipped`); a marginal one passes with its reasons in
    ``<system-out>``. The run verdict, its reasons and the mode go in the suite's ``<properties>``, with
    ``incomparable`` and ``remedies`` (one per line) when latency was not comparable and ``throughput`` when
    it was shown, not judged. A partial run (a side holds only part of its run) leads with a ``run complete``
    testcase (classname ``parity.run``) carrying ``<error type="partial">`` — counted in ``errors`` and
    ``tests``, so CI shows the run as broken even when every endpoint passed — and a ``partial`` property.
    ``explanations`` (endpoint key → explain.json entry): a failed, inconclusive or marginal endpoint's text ends
    with its ``why (sampled APM traces): …`` line (a pass stays an empty testcase).
    """
    counts = result.counts()
    totals = {
        "tests": str(len(result.endpoints) + bool(result.partial)),
        "failures": str(counts[Verdict.FAIL]),
        "errors": str(int(bool(result.partial))),
        "skipped": str(counts[Verdict.INCONCLUSIVE]),
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": "parity", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": "parity", **totals})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", result.verdict.value),
        *((("partial", result.partial_text()),) if result.partial else ()),
        ("mode", result.mode.value),
        ("reasons", "\n".join(result.reasons)),
        ("baseline", result.baseline.name),
        ("candidate", result.candidate.name),
        *(
            ()
            if result.incomparable is None
            else (("incomparable", result.incomparable.reason), ("remedies", "\n".join(result.incomparable.remedies)))
        ),
        *(() if result.throughput_gated else (("throughput", f"shown, not judged: {result.throughput_note}"),)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    classname = _xml(_classname(result))
    if result.partial:  # first, and an error: the run itself did not complete, whatever the endpoints show
        case = ET.SubElement(suite, "testcase", {"classname": "parity.run", "name": "run complete", "time": "0"})
        ET.SubElement(case, "error", {"message": _xml(result.partial_text()), "type": "partial"}).text = _xml(
            "\n".join(p.describe() for p in result.partial)
        )
    for e in result.endpoints:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _xml(e.endpoint.key), "time": "0"})
        w = explain_why((explanations or {}).get(e.endpoint.key))
        why = () if w is None else (f"why (sampled APM traces): {w}",)
        reasons = _xml("\n".join((*e.reasons, *why)))
        first = _xml(e.reasons[0]) if e.reasons else e.verdict.value
        if e.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", {"message": first, "type": "regression"}).text = reasons
        elif e.verdict is Verdict.INCONCLUSIVE:
            message, text = _skipped(e, result)
            text = "\n".join(t for t in (text, *why) if t)
            ET.SubElement(case, "skipped", {"message": _xml(message)}).text = _xml(text)
        elif e.verdict is Verdict.MARGINAL:
            ET.SubElement(case, "system-out").text = reasons
    ET.indent(root)
    # The declaration is written by hand: ElementTree's own names the locale's encoding for str output.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- Markdown summary ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


#: Characters of one piece of text (a reason, a note) shown in summary.md at most; endpoint names are cut at
#: :data:`parity.report.text.MAX_NAME_CHARS`.
SUMMARY_MAX_TEXT = 2000


def _md(text: str, limit: int = SUMMARY_MAX_TEXT) -> str:
    """Inline Markdown text that renders as itself and notifies nobody: cut to ``limit`` characters, line
    breaks as spaces, other control characters and lone surrogates as U+FFFD, HTML markup as entities,
    Markdown punctuation and table pipes backslash-escaped, ``@mentions``, ``#123`` references and bare links
    broken by a zero-width space (:func:`parity.report.text.no_mentions`)."""
    text = one_line(" ".join(cut(text, limit).splitlines()))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return no_mentions(text)


def _md_name(name: str) -> str:
    """An endpoint name in summary.md: :func:`_md`, cut at :data:`parity.report.text.MAX_NAME_CHARS`."""
    return _md(name, MAX_NAME_CHARS)


def _code(text: str) -> str:
    """An inline code span that shows ``text`` as it is (a fence longer than any run of backticks inside;
    line breaks as spaces)."""
    text = one_line(" ".join(encodable(text).splitlines()))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_link(target: str) -> str:
    return target.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _impact(extra_ms_per_min: float, extra_errors_per_min: float) -> str:
    parts = []
    if extra_ms_per_min > 0:
        parts.append(format_extra_time(extra_ms_per_min))
    if extra_errors_per_min > 0:
        parts.append(format_extra_errors(extra_errors_per_min))
    return ", ".join(parts) or "—"


def _p95(e: EndpointResult | None) -> tuple[str, str]:
    """(baseline → candidate, ratio) of the endpoint's p95; the ratio reads ``incomparable`` when the sides
    measured different kinds of latency."""
    m = None if e is None else e.metric("p95_ms")
    if m is None:
        return "n/a", "n/a"
    ratio = format_ratio(m.ratio) if m.comparable else GATE_INCOMPARABLE
    return f"{format_value(m.baseline, m.unit)} → {format_value(m.candidate, m.unit)}", ratio


def _incomparable_md(result: ParityResult) -> list[str]:
    """The incomparability in one line, then its remedies as a numbered list of code spans (best first)."""
    inc = result.incomparable
    if inc is None:
        return []
    lines = [
        f"**Latency not comparable** (baseline {_md(inc.baseline_kind)}, candidate {_md(inc.candidate_kind)}): "
        f"{_md(inc.reason)}. Latency was neither passed nor failed; for a latency verdict, run one of (best first):",
        "",
    ]
    for i, remedy in enumerate(inc.remedies, start=1):
        command, why = split_remedy(remedy)
        lines.append(f"{i}. {_code(command)}" + (f" — {_md(why)}" if why else ""))
    return [*lines, ""]


def _looks_worse_md(result: ParityResult) -> list[str]:
    """The endpoints not judged that look worse, one bullet each with the words and their requests."""
    looking = result.unjudged_looking_worse
    if not looking:
        return []
    lines = [f"**Not judged, looks worse ({len(looking)}):**", ""]
    for e in looking[:SUMMARY_MAX_ROWS]:
        requests = f"{format_count(e.baseline_count)} / {format_count(e.candidate_count)} requests"
        lines.append(f"- {_md_name(e.endpoint.key)}: {_md(describe_looks_worse(e))} ({requests})")
    more = len(looking) - SUMMARY_MAX_ROWS
    if more > 0:
        lines.append(f"- …and {more} more in the full report")
    return [*lines, ""]


def _without_body_md(result: ParityResult, keys: frozenset[str]) -> list[str]:
    """The endpoints a replay sent without their request body, each with its verdict (none: no lines)."""
    flagged = [e for e in result.endpoints if e.endpoint.key in keys]
    if not flagged:
        return []
    lines = [f"**Replayed without their request body ({len(flagged)}):** these verdicts are not parity", ""]
    lines += [f"- {_md_name(e.endpoint.key)}: **{verdict_label(e.verdict)}** (sent without its body)" for e in flagged]
    return [*lines, ""]


def summary_md(
    result: ParityResult,
    meta: RunMeta,
    report_link: str | None = None,
    *,
    without_body: frozenset[str] = frozenset(),
    explanations: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A short Markdown summary: verdict heading with a plain **FAIL**-style marker (``(partial run)`` after it
    when a side holds only part of its run; the first reason says which and why), reasons, the
    incomparability of latency with its remedies as code spans (when the sides' latencies do not compare),
    the endpoints not judged that look worse, mode, endpoint counts, notes (throughput shown not judged,
    oversampled endpoints …), the top ``SUMMARY_MAX_ROWS`` bottlenecks (endpoint, verdict, p95 baseline →
    candidate, p95 ratio, impact at baseline traffic), the inconclusive endpoints and the report link.
    ``without_body``: keys of endpoints a replay sent without their request body (``context.without_body``),
    listed with their verdicts after the reasons. ``explanations`` (endpoint key → explain.json entry): a "why" line
    per top regression that has one, under its table.
    The run reasons the incomparability block says in full are not repeated above it."""
    counts = result.counts()
    by_key = {e.endpoint.key: e for e in result.endpoints}
    partial = " (partial run)" if result.partial else ""
    lines = [f"## Performance parity: **{verdict_label(result.verdict)}**{partial}", ""]
    reasons = other_reasons(result)
    if reasons:
        lines += [f"- {_md(r)}" for r in reasons]
        lines.append("")
    lines += _incomparable_md(result)
    lines += _without_body_md(result, without_body)
    lines += _looks_worse_md(result)
    lines.append(
        f"**Mode:** {mode_label(result.mode)} · **baseline** {_md_name(result.baseline.name)} · "
        f"**candidate** {_md_name(result.candidate.name)}"
    )
    lines.append("")
    count_text = " · ".join(f"{counts[v]} {v.value}" for v in VERDICT_ORDER)
    lines.append(f"**Endpoints:** {len(result.endpoints)} ({count_text})")
    for note in result.notes:
        lines += ["", f"> Note: {_md(note)}"]
    if result.bottlenecks:
        lines += [
            "",
            "### Top regressions",
            "",
            "| # | Endpoint | Verdict | p95 baseline → candidate | p95 ratio | Impact at baseline traffic |",
            "|---:|---|---|---|---:|---|",
        ]
        for b in result.bottlenecks[:SUMMARY_MAX_ROWS]:
            e = by_key.get(b.endpoint.key)
            p95, ratio = _p95(e)
            verdict = verdict_label(b.verdict)
            impact = _impact(b.extra_ms_per_min, b.extra_errors_per_min)
            lines.append(f"| {b.rank} | {_md_name(b.endpoint.key)} | {verdict} | {p95} | {ratio} | {impact} |")
        whys = [
            (b.endpoint.key, w)
            for b in result.bottlenecks[:SUMMARY_MAX_ROWS]
            if (w := explain_why((explanations or {}).get(b.endpoint.key))) is not None
        ]
        if whys:
            lines += ["", "**Why** (from sampled APM traces, old vs new):", ""]
            lines += [f"- {_md_name(key)}: {_md(w)}" for key, w in whys]
        more = len(result.bottlenecks) - SUMMARY_MAX_ROWS
        if more > 0:
            lines += ["", f"…and {more} more regressed endpoint(s) in the full report."]
    inconclusive = [e.endpoint.key for e in result.endpoints if e.verdict is Verdict.INCONCLUSIVE]
    if inconclusive:
        shown = ", ".join(_md_name(k) for k in inconclusive[:SUMMARY_MAX_INCONCLUSIVE])
        rest = len(inconclusive) - SUMMARY_MAX_INCONCLUSIVE
        lines += [
            "",
            f"**Not judged ({len(inconclusive)}):** {shown}" + (f" and {rest} more" if rest > 0 else ""),
        ]
    if report_link:
        lines += ["", f"[Full HTML report]({_md_link(report_link)})"]
    lines += [
        "",
        f"<sub>parity {_md(meta.harness_version)}" + (f" · {_md(meta.commit)}" if meta.commit else "") + "</sub>",
    ]
    return "\n".join(lines) + "\n"
