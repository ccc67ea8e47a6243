"""Safety rails of a replay: which hosts may be targeted, a request-rate cap, and abort rules. Pure: no I/O.

- **Targets:** loopback (127.0.0.0/8, ``localhost``, ``::1``) is always allowed; any other host must be
  allow-listed (``--allow-host`` or ``allow_hosts`` in ``[replay]`` of parity.toml). An entry is a host
  name or address, or ``*.example.com`` for every subdomain. A refused target is refused before any
  request is sent.
- **Rate cap:** at most ``max_rps`` requests per second leave the generator (all workers together); sends
  over the cap are dropped and counted.
- **Abort rules:** over the last ``abort_window_s`` seconds, an error ratio above ``abort_error_ratio`` or
  a p99 above ``abort_p99_ms`` (ms) ends the run; what was recorded is written and the exit code is 4.
  A window with fewer than ``ABORT_MIN_REQUESTS`` requests never aborts (too little to judge).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ABORT_MIN_REQUESTS",
    "Rails",
    "RateCap",
    "WindowStats",
    "abort_reason",
    "host_allowed",
    "rails_from_mapping",
]

#: Requests a window needs before an abort rule may fire.
ABORT_MIN_REQUESTS = 20
#: Default length of the abort rules' sliding window, seconds.
ABORT_WINDOW_S = 30.0


@dataclass(frozen=True)
class Rails:
    """The replay's safety settings (see module docstring); None disables a rule."""

    allow_hosts: tuple[str, ...] = ()
    max_rps: float | None = None
    abort_error_ratio: float | None = None
    abort_p99_ms: float | None = None
    abort_window_s: float = ABORT_WINDOW_S

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
    """Token bucket: at most ``rps`` sends per second, bursts of at most one second's worth (or one send)."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self._capacity = max(rps, 1.0)
        self._tokens = self._capacity
        self._at: float | None = None

    def take(self, now_s: float) -> bool:
        """Spend a token for a send at monotonic time ``now_s``; False when the cap is reached."""
        if self._at is not None:
            self._tokens = min(self._capacity, self._tokens + (now_s - self._at) * self.rps)
        self._at = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(url: str, allow_hosts: tuple[str, ...]) -> bool:
    """True when the URL's host is loopback or matches an allow-list entry (``*.suffix`` allowed)."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return False
    if _is_loopback(host):
        return True
    for entry in (e.lower().strip() for e in allow_hosts):
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
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
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf or value > 2**63:
        raise ValueError(f"{where}: expected a finite number > 0, got {value!r}")
    return float(value)


def rails_from_mapping(data: Mapping[str, Any], where: str = "replay") -> Rails:
    """Build Rails from the ``[replay]`` table of parity.toml; unknown keys raise ValueError naming them.

    Keys: ``allow_hosts`` (list of strings), ``max_rps``, ``abort_error_ratio`` (0–1), ``abort_p99_ms``,
    ``abort_window_s``.
    """
    known = {"allow_hosts", "max_rps", "abort_error_ratio", "abort_p99_ms", "abort_window_s"}
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
    )
