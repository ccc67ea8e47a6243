"""Text from the data (endpoint names, file names, reasons) made safe for where it is shown. Pure.

Endpoint names come from traffic and logs: anyone who can send a request can choose one. They may hold lone
surrogates (from bytes that were not UTF-8), control characters (terminal escape sequences, line breaks that
would forge a line of output), Markdown or HTML, ``@mentions`` that would notify people when a summary is
posted as a pull-request comment or a Datadog event, and they may be very long. Every renderer passes such
text through these helpers (HTML is escaped by Jinja's autoescape and :func:`parity.report.html.json_for_script`;
XML by ElementTree plus :func:`parity.report.ci.junit_xml`'s invalid-character filter).
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_NAME_CHARS",
    "ZWSP",
    "cut",
    "encodable",
    "no_mentions",
    "one_line",
]

#: An endpoint name is shown up to this many characters in summaries (the rest as ``…``): a GitHub comment
#: holds at most 65,536 characters and a terminal line should stay readable.
MAX_NAME_CHARS = 200
#: Zero-width space: breaks ``@name`` and ``#123`` so GitHub and Datadog do not link or notify, invisibly.
ZWSP = "\u200b"

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 control characters and DEL (terminal escapes, line breaks, form feeds ...).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# @user, @org/team, @slack-channel (GitHub and Datadog notify on these); #123 and owner/repo#123 (GitHub links
# and cross-references them).
_MENTION = re.compile(r"([@#])(?=[\w-])")
# What GitHub turns into a link on its own (bare URLs and www. hosts).
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=\bwww)(?=\.)")


def encodable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it always encodes as UTF-8 (a name read from
    bytes that were not UTF-8 must never keep a report from being written)."""
    return _SURROGATE.sub("\ufffd", text)


def one_line(text: str) -> str:
    """``text`` on one line for a terminal: lone surrogates and control characters (escape sequences, line
    breaks, tabs) become U+FFFD, so data can neither forge a line nor move the cursor."""
    return _CONTROL.sub("\ufffd", encodable(text))


def no_mentions(text: str) -> str:
    """``text`` with a zero-width space after every ``@`` or ``#`` that starts a name or number, and inside
    ``://`` and ``www.``: GitHub (and Datadog's ``@`` notifications) then neither notify, cross-reference nor
    link, while it reads the same."""
    return _AUTOLINK.sub(ZWSP, _MENTION.sub(rf"\1{ZWSP}", text))


def cut(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
