"""Safety rails of a replay: which hosts may be targeted, a request-rate cap, a response-size cap and abort
rules. Pure: no I/O.

- **Targets:** loopback (127.0.0.0/8, ``localhost``, ``::1``, ``::ffff:127.x.y.z``) is always allowed; any
  other host must be allow-listed (``--allow-host`` or ``allow_hosts`` in ``[replay]`` of parity.toml). An
  entry is a host name or address, or ``*.example.com`` for every subdomain (not ``example.com`` itself).
  Hosts are compared after normalisation (:func:`normalise_host`): lower case, one trailing dot dropped,
  the host a URL really connects to (``http://127.0.0.1@evil.example`` goes to ``evil.example``), IPv6
  literals in their compressed form. Numeric IPv4 forms other than a plain dotted quad (``2130706433``,
  ``0x7f.1``, ``127.1``: the resolver accepts them) are decoded as the resolver would and allowed only when
  they are loopback; an allow-list entry never matches them. The replay checks every target at every test
  start, on the master and in every lane before it sends; a refused target gets no request at all.
- **Rate cap:** at most ``max_rps`` requests per second leave the generator (per target; all workers
  together): never more than ``max_rps`` sends in any one-second window, from the first second on
  (:class:`RateCap`, a sliding-window log; :meth:`RateCap.for_lane` splits the cap among lanes). Sends over
  the cap are dropped and counted.
- **Response size:** a response body longer than ``max_response_bytes`` is not read further; the request
  counts as an error (``DEFAULT_MAX_RESPONSE_BYTES``).
- **Abort rules:** over the last ``abort_window_s`` seconds, an error ratio above ``abort_error_ratio`` or
  a p99 above ``abort_p99_ms`` (ms) ends the run; what was recorded is written and the exit code is 4.
  A window with fewer than ``ABORT_MIN_REQUESTS`` requests never aborts (too little to judge).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from parity.bounds import is_finite_number

__all__ = [
    "ABORT_MIN_REQUESTS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Rails",
    "RateCap",
    "WindowStats",
    "abort_reason",
    "host_allowed",
    "normalise_host",
    "rails_from_mapping",
]

#: Requests a window needs before an abort rule may fire.
ABORT_MIN_REQUESTS = 20
#: Default length of the abort rules' sliding window, seconds.
ABORT_WINDOW_S = 30.0
#: Default cap on one response body, bytes (64 MiB): far above any API answer, far below the generator's memory.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Rails:
    """The replay's safety settings (see module docstring); None disables a rule."""

    allow_hosts: tuple[str, ...] = ()
    max_rps: float | None = None
    abort_error_ratio: float | None = None
    abort_p99_ms: float | None = None
    abort_window_s: float = ABORT_WINDOW_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # Request bodies (not a limit, but travels with the replay settings): the body-template directory
    # (``parity.replay.bodies``) and whether write endpoints without a template may be sent without a body.
    bodies: str | None = None
    allow_empty_bodies: bool = False

    @property
    def watches(self) -> bool:
        """True when an abort rule is set (the run must be watched while it goes)."""
        return self.abort_error_ratio is not None or self.abort_p99_ms is not None


@dataclass(frozen=True)
class WindowStats:
    """Requests, errors and p99 (ms; None without latencies) over an abort window."""

    requests: int
    errors: int
    p99_ms: float | None


class RateCap:
    """Sliding-window log: at most ``limit`` sends in any closed window of ``window_s`` seconds.

    ``RateCap(rps)`` never lets more than ``rps`` sends through in any one-second window, from the first
    second on (the token bucket it replaces started full and let about twice the rate through in its first
    second). A fractional rate rounds down (6.7 req/s: 6 in any second); a rate below 1 req/s allows one send
    per ``1 / rps`` seconds; a rate of 0 refuses every send. Memory: one float per send of the last window."""

    def __init__(self, rps: float) -> None:
        if not (rps >= 0 and math.isfinite(rps)):
            raise ValueError(f"rate cap must be a finite number >= 0 req/s, got {rps}")
        self.rps = rps
        self.window_s = 1.0 if rps >= 1 or rps == 0 else 1.0 / rps
        self.limit = math.floor(rps + 1e-9) if rps >= 1 else (1 if rps > 0 else 0)
        self._sends: deque[float] = deque()

    @classmethod
    def for_lane(cls, max_rps: float, lane: int, lanes: int) -> RateCap:
        """Lane ``lane``'s share (0-based, of ``lanes``) of a cap of ``max_rps`` req/s, such that the lanes
        together never exceed it in any one-second window: the cap's whole requests per second are dealt out
        (20 over 3 lanes: 7, 7, 6; a lane left without one sends nothing); below 1 req/s only lane 0 sends."""
        if lanes <= 1:
            return cls(max_rps)
        whole = math.floor(max_rps + 1e-9)
        if whole < 1:
            return cls(max_rps if lane == 0 else 0.0)
        return cls(float(whole // lanes + (1 if lane < whole % lanes else 0)))

    def take(self, now_s: float) -> bool:
        """Record a send at monotonic time ``now_s`` (s, non-decreasing) and return True, or return False
        when it would exceed the cap (nothing recorded)."""
        sends = self._sends
        while sends and sends[0] < now_s - self.window_s:
            sends.popleft()
        if len(sends) >= self.limit:
            return False
        sends.append(now_s)
        return True


#: Host forms the resolver reads as a number (inet_aton): 1 to 4 parts, decimal, 0x hex or 0 octal.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address the resolver (inet_aton) reads from a numeric host such as ``2130706433``,
    ``0x7f.1``, ``127.1`` or ``0177.0.0.1``; None when ``host`` is not such a form or out of range."""
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    parts = []
    for part in host.split("."):
        try:
            if part.startswith("0x"):
                parts.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                parts.append(int(part, 8))
            else:
                parts.append(int(part))
        except ValueError:  # e.g. 08: not octal
            return None
    *head, last = parts
    if any(p > 255 for p in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, p in enumerate(head):
        value += p << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def normalise_host(host: str) -> str:
    """A host name or address as the allow-list compares it: lower case, surrounding spaces, brackets and one
    trailing dot removed, an IP address in its canonical form (IPv6 compressed; an IPv4-mapped IPv6 address
    as its IPv4 address); numeric IPv4 forms other than a dotted quad become their dotted quad prefixed with
    ``numeric:`` (they match no allow-list entry). Empty for an empty host."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.removesuffix(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        numeric = _numeric_ipv4(host)
        return host if numeric is None else f"numeric:{numeric}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def _is_loopback(host: str) -> bool:
    """``host`` (normalised) is loopback: ``localhost``, 127.0.0.0/8 in any numeric form, ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("numeric:")).is_loopback
    except ValueError:
        return False


def _url_host(url: str) -> str:
    """The normalised host ``url`` connects to (after any userinfo); empty when it has none."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a port that is not a number makes the URL unusable
    except ValueError:
        return ""
    if "%" in host:  # an IPv6 zone (fe80::1%eth0) or an escape: nothing we can prove loopback or listed
        return host
    return normalise_host(host)


def host_allowed(url: str, allow_hosts: tuple[str, ...]) -> bool:
    """True when the host ``url`` connects to is loopback or matches an allow-list entry (``*.suffix`` for
    the suffix's subdomains); see the module docstring for the normalisation. An unparsable URL, an empty
    host or a numeric form of a non-loopback address is refused."""
    host = _url_host(url)
    if not host:
        return False
    if _is_loopback(host):
        return True
    if host.startswith("numeric:") or "%" in host:
        return False
    for raw in allow_hosts:
        entry = raw.strip().lower()
        if entry.startswith("*."):
            suffix = normalise_host(entry[2:])
            if suffix and host.endswith("." + suffix):
                return True
        elif entry and host == normalise_host(entry):
            return True
    return False


def abort_reason(stats: WindowStats, rails: Rails) -> str | None:
    """Why the run must stop now, or None (see module docstring)."""
    if stats.requests < ABORT_MIN_REQUESTS:
        return None
    window = f"over the last {rails.abort_window_s:g} s"
    if rails.abort_error_ratio is not None and stats.errors / stats.requests > rails.abort_error_ratio:
        return (
            f"error ratio {stats.errors / stats.requests:.1%} ({stats.errors} of {stats.requests} requests) "
            f"{window} is above the {rails.abort_error_ratio:.1%} abort limit"
        )
    if rails.abort_p99_ms is not None and stats.p99_ms is not None and stats.p99_ms > rails.abort_p99_ms:
        return f"p99 {stats.p99_ms:.0f} ms {window} is above the {rails.abort_p99_ms:g} ms abort limit"
    return None


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not is_finite_number(value) or not value > 0:
        raise ValueError(f"{where}: expected a finite number > 0, got {value!r}")
    return float(value)


def rails_from_mapping(data: Mapping[str, Any], where: str = "replay") -> Rails:
    """Build Rails from the ``[replay]`` table of parity.toml; unknown keys raise ValueError naming them.

    Keys: ``allow_hosts`` (list of strings), ``max_rps``, ``abort_error_ratio`` (0–1), ``abort_p99_ms``,
    ``abort_window_s``, ``max_response_bytes`` (a whole number of bytes >= 1), ``bodies`` (a directory of body
    templates; parity.config resolves it against the config file's directory), ``allow_empty_bodies`` (bool).
    """
    known = {"allow_hosts", "max_rps", "abort_error_ratio", "abort_p99_ms", "abort_window_s", "max_response_bytes"}
    known |= {"bodies", "allow_empty_bodies"}
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    hosts = data.get("allow_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip() for h in hosts):
        raise ValueError(f"{where}.allow_hosts: expected a list of host names")
    ratio = data.get("abort_error_ratio")
    if ratio is not None and (_positive(ratio, f"{where}.abort_error_ratio") > 1):
        raise ValueError(f"{where}.abort_error_ratio: expected a share between 0 and 1, got {ratio}")
    return Rails(
        allow_hosts=tuple(hosts),
        max_rps=None if "max_rps" not in data else _positive(data["max_rps"], f"{where}.max_rps"),
        abort_error_ratio=None if ratio is None else float(ratio),
        abort_p99_ms=None if "abort_p99_ms" not in data else _positive(data["abort_p99_ms"], f"{where}.abort_p99_ms"),
        abort_window_s=_positive(data.get("abort_window_s", ABORT_WINDOW_S), f"{where}.abort_window_s"),
        max_response_bytes=_whole(data.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES), where),
        bodies=_bodies(data.get("bodies"), where),
        allow_empty_bodies=_flag(data.get("allow_empty_bodies", False), f"{where}.allow_empty_bodies"),
    )


def _bodies(value: Any, where: str) -> str | None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ValueError(f"{where}.bodies: expected the path of a directory of body templates, got {value!r}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value


def _whole(value: Any, where: str) -> int:
    """``max_response_bytes``: a whole number of bytes >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.max_response_bytes: expected a whole number of bytes >= 1, got {value!r}")
    return value
