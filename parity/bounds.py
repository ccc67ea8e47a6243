"""What a number or a text read from a file may be: the bounds every reader checks at the edge.

A reader that lets a NaN, an infinity, a negative count, a timestamp in year 40,000 or a lone surrogate
through hands the core something it cannot judge or print (a NaN tolerance makes every comparison pass;
``1e400`` parses as infinity; a sketch offset of 10^8 asks for a value of 1.02^(10^8) ms). The readers
check with these helpers and raise ``ValueError`` (turned into a one-line ``BadInput`` naming the file and
field) or ``BadInput`` directly. The bounds are generous: real data is far inside them; they exist so that
what lies beyond cannot crash, hang or exhaust memory.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from parity.errors import BadInput

__all__ = [
    "MAX_COUNT",
    "MAX_JSON_DEPTH",
    "MAX_LATENCY_MS",
    "MAX_UNIX_S",
    "MIN_UNIX_S",
    "check_count",
    "check_number",
    "check_text",
    "check_unix_s",
    "is_finite_number",
    "load_json",
    "strip_bom",
]

#: Largest latency accepted, ms (about 116 days: far beyond any request, small enough to stay finite in sums).
MAX_LATENCY_MS = 1e10
#: Largest request count accepted (2^53: every count below it is exact as a float).
MAX_COUNT = 2**53
#: Timestamps (Unix s) accepted: 1970-01-01 to 2100-01-01 UTC.
MIN_UNIX_S = 0.0
MAX_UNIX_S = 4102444800.0
#: Deepest nesting of arrays/objects accepted in a JSON input (a Measurement needs 7; request bodies a few more).
MAX_JSON_DEPTH = 64

_BOM = "\ufeff"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def strip_bom(text: str) -> str:
    """``text`` without a leading UTF-8 byte-order mark (editors on Windows write one)."""
    return text[1:] if text.startswith(_BOM) else text


def is_finite_number(value: int | float) -> bool:
    """A finite float, or an integer within 64 bits (TOML's range; larger ones overflow a float). TOML allows
    ``nan`` and ``inf``: every config number is checked with this."""
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= 2**63


def check_number(
    value: Any, where: str, *, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False
) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); ValueError naming
    ``where`` otherwise (NaN, ±inf, a bool, a string, out of range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {_show(value)}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{where}: number out of range: {_show(value)}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: expected a finite number, got {_show(value)}")
    if x < lo or (lo_open and x == lo) or x > hi:
        above = f"> {lo:g}" if lo_open else f">= {lo:g}"
        wanted = f"a number {above}" if hi == math.inf else f"a number {above} and <= {hi:g}"
        raise ValueError(f"{where}: expected {wanted}, got {_show(value)}")
    return x


def check_count(value: Any, where: str) -> int:
    """``value`` as an integer count in ``[0, MAX_COUNT]``; ValueError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{where}: expected a whole number, got {_show(value)}")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{where}: count {_show(value)} is out of range [0, 2^53]")
    return int(value)


def check_unix_s(value: Any, where: str) -> float:
    """``value`` as a Unix time in seconds between 1970 and 2100; ValueError naming ``where`` otherwise."""
    return check_number(value, where, lo=MIN_UNIX_S, hi=MAX_UNIX_S)


def check_text(value: str, where: str) -> str:
    """``value`` unchanged when it is valid Unicode (encodable as UTF-8); ValueError naming ``where`` when
    it holds a lone surrogate (``"\\ud800"`` in JSON), which no file, terminal or report could write."""
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            raise ValueError(
                f"{where}: lone surrogate U+{ord(found.group()):04X} at character {found.start()} (not valid Unicode)"
            )
    return value


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 160:
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"number {text[:40]} is out of range")
    return x


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _walk(data: Any, name: str, check_strings: bool) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and (with ``check_strings``) lone surrogates in any string
    or key; iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth >= MAX_JSON_DEPTH:
                raise BadInput(f"{name}: {path or '(top level)'}: nested more than {MAX_JSON_DEPTH} levels deep")
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if check_strings:
                    _text(key, name, where)
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1, where))
                elif check_strings and isinstance(value, str):
                    _text(value, name, where)
        elif isinstance(node, list):
            if depth >= MAX_JSON_DEPTH:
                raise BadInput(f"{name}: {path or '(top level)'}: nested more than {MAX_JSON_DEPTH} levels deep")
            for i, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1, f"{path}[{i}]"))
                elif check_strings and isinstance(value, str):
                    _text(value, name, f"{path}[{i}]")
        elif check_strings and isinstance(node, str):
            _text(node, name, path or "(top level)")


def _text(value: str, name: str, where: str) -> None:
    try:
        check_text(value, where[:80])
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from None


def load_json(text: str, name: str) -> Any:
    """Parse a JSON input: a leading byte-order mark is skipped; ``NaN``, ``Infinity`` and numbers beyond the
    float range (``1e400``) are refused, as are nesting deeper than MAX_JSON_DEPTH and lone surrogates in
    strings. BadInput (one line naming ``name``) for anything that is not such JSON."""
    text = strip_bom(text)
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadInput(f"{name}: not valid JSON: nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (json.JSONDecodeError, ValueError) as exc:  # ValueError: also integers beyond 4300 digits
        raise BadInput(f"{name}: not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    _walk(data, name, check_strings=bool(_SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text)))
    return data
