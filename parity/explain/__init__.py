"""``parity explain``: why an endpoint is slower, from APM traces of both environments.

- :mod:`parity.explain.spans` — the :class:`Span` model sources produce (ms inside, ids as strings).
- :mod:`parity.explain.breakdown` — pure: per trace, exclusive time and calls per component.
- :mod:`parity.explain.judge` — pure: old vs new per component, with intervals, and the "why" sentence.
"""

from __future__ import annotations

from parity.explain.spans import Span

__all__ = ["Span"]
