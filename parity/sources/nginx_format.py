"""nginx ``log_format`` → one compiled regular expression that reads the lines that format writes.

Input (:func:`compile_log_format`): the format string as nginx keeps it (``$remote_addr - [$time_local]
"$request" …``), the whole directive as pasted from nginx.conf (``log_format main escape=json '…' '…';``:
nginx concatenates the quoted strings; ``\\"``, ``\\'``, ``\\\\``, ``\\n``, ``\\t``, ``\\r`` are unescaped as
nginx's config reader does), or ``combined`` (nginx's predefined format).

Output (:class:`LogFormat`): one regex that must match a whole line, with a group for each variable the
access-log reader uses (time, request, status, latency); every other variable is matched and ignored, and
the literal text between variables must be there as written. What a variable's value may contain:

- known shapes: ``$time_local``, ``$time_iso8601``, ``$msec``, ``$status``, ``$request_time``, byte counts,
  and every ``$upstream_*`` variable as nginx's list (``0.010, 0.020 : 0.030``: ``, `` between the servers
  of one upstream group, `` : `` between groups) — except the upstream's header values
  (``$upstream_http_NAME``, ``$upstream_cookie_NAME``, ``$upstream_trailer_NAME``), which are free text like
  any other value below;
- a quoted value (``"$http_user_agent"``) runs to the closing quote: nginx escapes ``"`` inside values
  (``\\xHH`` by default, ``\\"`` with ``escape=json``; with ``escape=none`` the value may hold quotes and is
  matched lazily);
- any other value runs up to the first character of the literal text after it (an unquoted user agent with
  spaces followed by a space does not match: quote such variables in the format).

A variable nginx could not find is logged as ``-`` (``escape=json``: empty); both are accepted everywhere.
Refused (:class:`parity.errors.BadInput`, one line): an empty or unparseable format or directive, an invalid
variable name, an unknown ``escape=``, a format without a time variable, without a request, or without
``$status``, and a ``latency_field`` not among :data:`LATENCY_FIELDS` or not in the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parity.errors import BadInput

__all__ = ["COMBINED", "ESCAPES", "LATENCY_FIELDS", "TIME_VARIABLES", "LogFormat", "compile_log_format"]

#: nginx's predefined ``combined`` format (``--log-format combined``).
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
)
#: ``escape=`` values of the ``log_format`` directive (nginx 1.11.8+; ``default`` when absent).
ESCAPES = ("default", "json", "none")
#: Variables that can hold a request's latency, in seconds with ms resolution; the first is the default.
LATENCY_FIELDS = ("request_time", "upstream_response_time", "upstream_header_time", "upstream_connect_time")
#: Variables that time a line, most precise first (the first present is used). All are the log write's time.
TIME_VARIABLES = ("msec", "time_iso8601", "time_local")

_OPTION = "--log-format"
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_SECONDS = r"\d+\.\d+"
_UPSTREAM_LIST = r"[^\s,]+(?:(?:, | : )[^\s,]+)*"
#: ``$upstream_*`` variables that hold a header's text (``text/html; charset=utf-8``), not a list of numbers.
_UPSTREAM_HEADERS = ("upstream_http_", "upstream_cookie_", "upstream_trailer_")
_SHAPES = {
    "time_local": r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}",
    "time_iso8601": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:\d{2}|Z)",
    "msec": _SECONDS,
    "status": r"\d{3}",
    "request_time": _SECONDS,
    "body_bytes_sent": r"\d+",
    "bytes_sent": r"\d+",
    "request_length": r"\d+",
    "connection": r"\d+",
    "connection_requests": r"\d+",
    "pid": r"\d+",
    "is_args": r"\??",
    "uri": r'[^?\s"]*',
    "document_uri": r'[^?\s"]*',
}
#: Variables the reader uses (each gets a group in the regex).
_USED = frozenset(
    {*TIME_VARIABLES, *LATENCY_FIELDS, "status", "request", "request_method", "request_uri", "uri", "args"}
)


@dataclass(frozen=True)
class LogFormat:
    """A compiled nginx ``log_format``.

    ``pattern`` matches one whole line (``fullmatch``); ``groups`` maps each used variable (no ``$``) to its
    group number. ``time_variable``: the one that times a line (see :data:`TIME_VARIABLES`). ``request``:
    ``("request",)``, ``("request_method", "request_uri")`` or ``("request_method", "uri"[, "args"])``.
    ``latency_variable``: the variable read as the latency (seconds), None when the format has none (every
    request is then recorded without latency). ``escape``: how nginx escaped values (one of :data:`ESCAPES`).
    """

    text: str
    escape: str
    name: str | None
    variables: tuple[str, ...]
    pattern: re.Pattern[str]
    groups: dict[str, int]
    time_variable: str
    request: tuple[str, ...]
    latency_variable: str | None

    def describe(self) -> str:
        """``log_format main`` or ``--log-format``, for sources and messages."""
        return f"log_format {self.name}" if self.name else "--log-format"


def compile_log_format(text: str, latency_field: str | None = None) -> LogFormat:
    """Compile a format string, a whole ``log_format`` directive, or ``combined`` (see the module docstring).

    ``latency_field``: one of :data:`LATENCY_FIELDS` (a leading ``$`` is allowed), None for
    ``request_time`` when the format has it (else no latency). BadInput (one line) for what is refused.
    """
    latency = _latency_choice(latency_field)
    stripped = text.strip()
    name: str | None = None
    escape = "default"
    if stripped == "combined":
        fmt, name = COMBINED, "combined"
    elif re.match(r"log_format\s", stripped):
        name, escape, fmt = _directive(stripped)
    else:
        fmt = text
    if not fmt.strip():
        raise BadInput(f"{_OPTION}: the format is empty")
    literals, variables = _split(fmt)
    if not variables:
        raise BadInput(f"{_OPTION}: no $variable in the format {_short(fmt)}")
    present = set(variables)
    time_variable = next((v for v in TIME_VARIABLES if v in present), None)
    if time_variable is None:
        raise BadInput(f"{_OPTION}: the format has no time variable ($time_local, $time_iso8601 or $msec)")
    request = _request_variables(present)
    if "status" not in present:
        raise BadInput(f"{_OPTION}: the format has no $status (errors could not be counted)")
    latency_variable = _latency_variable(latency, latency_field, present)
    pattern, groups = _regex(literals, variables, escape)
    return LogFormat(
        text=fmt,
        escape=escape,
        name=name,
        variables=tuple(variables),
        pattern=pattern,
        groups=groups,
        time_variable=time_variable,
        request=request,
        latency_variable=latency_variable,
    )


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _latency_choice(latency_field: str | None) -> str:
    if latency_field is None:
        return LATENCY_FIELDS[0]
    chosen = latency_field.strip().removeprefix("$")
    if chosen not in LATENCY_FIELDS:
        raise BadInput(f"--latency-field: {latency_field!r} is not one of {', '.join(LATENCY_FIELDS)}")
    return chosen


def _latency_variable(chosen: str, asked: str | None, present: set[str]) -> str | None:
    if chosen in present:
        return chosen
    if asked is None:
        return None  # no $request_time and nothing asked: requests without latency
    has = [f"${v}" for v in LATENCY_FIELDS if v in present]
    it_has = f"it has {', '.join(has)}" if has else "it has no latency variable"
    raise BadInput(f"--latency-field: ${chosen} is not in the log_format ({it_has})")


def _request_variables(present: set[str]) -> tuple[str, ...]:
    if "request" in present:
        return ("request",)
    if "request_method" in present:
        if "request_uri" in present:
            return ("request_method", "request_uri")
        if "uri" in present:
            return ("request_method", "uri", "args") if "args" in present else ("request_method", "uri")
    raise BadInput(
        f"{_OPTION}: the format has no request ($request, or $request_method with $request_uri or $uri [$args])"
    )


def _split(fmt: str) -> tuple[list[str], list[str]]:
    """Literals and variables in order: ``literals[i]`` precedes ``variables[i]``; one more literal ends it."""
    literals: list[str] = []
    variables: list[str] = []
    at = 0
    for m in _VARIABLE.finditer(fmt):
        literals.append(fmt[at : m.start()])
        variables.append(m.group(1) or m.group(2))
        at = m.end()
    literals.append(fmt[at:])
    for literal in literals:
        if "$" in literal:
            where = literal[literal.index("$") :]
            raise BadInput(f"{_OPTION}: invalid variable name at {_short(where)}")
    return literals, variables


def _value_pattern(variable: str, before: str, after: str, last: bool, escape: str) -> str:
    """Regex for one variable's value: its known shape, else from the literal text around it.

    ``before`` / ``after``: the literal text just before and after the variable (``after`` empty: the format
    ends there when ``last``, else another variable follows at once)."""
    quoted = before.endswith('"') and after.startswith('"')
    if variable in _SHAPES:
        shape = _SHAPES[variable]
    elif variable.startswith("upstream_") and not variable.startswith(_UPSTREAM_HEADERS):
        shape = _UPSTREAM_LIST
    elif variable == "request" and not quoted:
        shape = r"[^ ]+ [^ ]+(?: [^ ]+)?"  # METHOD TARGET [VERSION], unquoted
    elif quoted:
        shape = {"default": r'[^"]*', "json": r'[^"\\]*(?:\\.[^"\\]*)*', "none": r".*?"}[escape]
    elif after:
        shape = f"[^{re.escape(after[0])}]*"
    else:
        shape = ".*" if last else r"\S*?"
    return f"(?:{shape}|-|)" if escape == "json" else f"(?:{shape}|-)"


def _regex(literals: list[str], variables: list[str], escape: str) -> tuple[re.Pattern[str], dict[str, int]]:
    """One regex for a whole line, and the group number of each used variable (its first occurrence)."""
    parts: list[str] = []
    groups: dict[str, int] = {}
    last = len(variables) - 1
    for i, variable in enumerate(variables):
        parts.append(re.escape(literals[i]))
        pattern = _value_pattern(variable, literals[i], literals[i + 1], i == last, escape)
        if variable in _USED and variable not in groups:
            groups[variable] = len(groups) + 1
            parts.append(f"({pattern})")
        else:
            parts.append(pattern)
    parts.append(re.escape(literals[-1]))
    try:
        return re.compile("".join(parts)), groups
    except re.error as exc:  # not expected: every part is escaped or built here
        raise BadInput(f"{_OPTION}: cannot compile the format: {exc}") from None


# --- the log_format directive ------------------------------------------------------------------------------

_CONF_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _directive(text: str) -> tuple[str, str, str]:
    """``log_format NAME [escape=…] STRING…;`` → (name, escape, the concatenated format)."""
    tokens = _conf_tokens(text)
    words = [value for value, _quoted in tokens[1:]]
    if not words:
        raise BadInput(f"{_OPTION}: the log_format directive has no name")
    name, rest = words[0], tokens[2:]
    escape = "default"
    if rest and not rest[0][1] and rest[0][0].startswith("escape="):
        escape = rest[0][0].removeprefix("escape=")
        if escape not in ESCAPES:
            raise BadInput(f"{_OPTION}: escape={escape} is not one of {', '.join(ESCAPES)}")
        rest = rest[1:]
    if not rest:
        raise BadInput(f"{_OPTION}: the log_format directive {name!r} has no format string")
    return name, escape, "".join(value for value, _quoted in rest)


def _conf_tokens(text: str) -> list[tuple[str, bool]]:
    """Tokens of one nginx directive (value, quoted); stops at ``;`` (nothing but comments may follow)."""
    tokens: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            i = _line_end(text, i)
        elif ch == ";":
            tail = _strip_comments(text[i + 1 :])
            if tail:
                raise BadInput(f"{_OPTION}: text after the log_format directive's ';': {_short(tail)}")
            return tokens
        elif ch in "'\"":
            value, i = _quoted(text, i)
            tokens.append((value, True))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in ";'\"":
                i += 1
            tokens.append((text[start:i], False))
    return tokens  # a missing ';' is tolerated


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The string quoted at ``text[start]`` (unescaped as nginx's config reader does) and the index after it."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _CONF_ESCAPES:
            out.append(_CONF_ESCAPES[text[i + 1]])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise BadInput(f"{_OPTION}: unterminated {quote} string in the log_format directive")


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines()).strip()
