"""``render_html(result, meta, measurements=None) -> str``: the self-contained HTML report. Pure: returns
text, writes nothing (it reads only the package's own template and vendored script).

The page is one file with no external resource: inline CSS, the vendored Chart.js (``static/``, MIT, its
licence banner kept), the report's data as JSON in a ``<script type="application/json">`` block, and a page
script that builds the endpoint table from that JSON (sorting, filtering) and draws an endpoint's charts only
when its detail is opened — so 1,000 endpoints stay a few MB and load fast. It is rendered by Jinja2 from
``templates/report.html`` with ``autoescape=True`` and ``StrictUndefined``; figures come pre-formatted from
:func:`parity.report.context.build_context`. Endpoint names and reasons are data: escaped in the markup,
and in the JSON every ``<``, ``>`` and ``&`` is written as a ``\\u00XX`` escape, so no name can close the
script block; the page script only ever puts them into the DOM as text.

Without ``measurements`` (the two Measurements the result was computed from) the report has no latency
distribution or over-time charts; the percentile and latency-vs-load charts come from the result itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup

from parity.judge.result import ParityResult
from parity.model import Measurement
from parity.report.charts import chart_data
from parity.report.context import RunMeta, build_context

__all__ = ["CHART_JS", "TEMPLATE", "json_for_script", "load_template", "render_html"]

#: Package-relative path of the report template.
TEMPLATE = "templates/report.html"
#: Package-relative path of the vendored Chart.js (UMD build; defines ``window.Chart``).
CHART_JS = "static/chart.umd.min.js"

_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def json_for_script(value: Any) -> Markup:
    """``value`` as compact JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` are
    ``\\u`` escapes (``JSON.parse`` reads them back), so the text can never contain ``</script`` or
    ``<!--``. Raises ValueError on NaN or infinity."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # the same as text.translate(_SCRIPT_ESCAPES), ~50x faster on the ~1 MB of chart data of 300 endpoints
    for char, escape in _SCRIPT_ESCAPES.items():
        text = text.replace(chr(char), escape)
    return Markup(text)  # escaped for a script element above


@cache
def load_template(package: str, name: str) -> jinja2.Template:
    """The Jinja template ``name`` shipped in ``package`` (autoescaped, strict about undefined names)."""
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.from_string(files(package).joinpath(name).read_text(encoding="utf-8"))


def _template() -> jinja2.Template:
    return load_template("parity.report", TEMPLATE)


@cache
def _chart_js() -> Markup:
    """The vendored library, checked to be safe to inline in a ``<script>`` element."""
    text = files("parity.report").joinpath(CHART_JS).read_text(encoding="utf-8")
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ValueError(f"{CHART_JS} cannot be inlined: it contains '</script' or '<!--'")
    return Markup(text)  # the package's own vendored file, checked above


def render_html(
    result: ParityResult,
    meta: RunMeta,
    measurements: tuple[Measurement, Measurement] | None = None,
    explanations: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The report page for ``result`` as one self-contained HTML document; ``measurements`` = (baseline,
    candidate), the sides ``result`` compares, adds the distribution and over-time charts and marks the endpoints
    a replay oversampled; ``explanations`` (endpoint key → explain.json entry) adds each one's why line, stacked
    bar and changed components."""
    charts = None if measurements is None else chart_data(result, *measurements)
    context = build_context(result, meta, charts, measurements=measurements, explanations=explanations)
    context["data_json"] = json_for_script(context.pop("data"))
    context["chart_js"] = _chart_js()
    return _template().render(context)
