"""``render_html(result, meta) -> str``: the self-contained HTML report. Pure: returns text, writes nothing.

The page is one file — inline CSS and a few lines of inline JS for column sorting, no external resource —
rendered by Jinja2 from the package template ``parity/report/templates/report.html`` with
``autoescape=True`` and ``StrictUndefined``. All figures come pre-formatted from
:func:`parity.report.context.build_context`; endpoint names and reasons are data and always escaped.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import jinja2

from parity.judge.result import ParityResult
from parity.report.context import RunMeta, build_context

__all__ = ["TEMPLATE", "render_html"]

#: Package-relative path of the report template.
TEMPLATE = "templates/report.html"


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    source = files("parity.report").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(source)


def render_html(result: ParityResult, meta: RunMeta) -> str:
    """The report page for ``result`` as one self-contained HTML document."""
    return _template().render(build_context(result, meta))
