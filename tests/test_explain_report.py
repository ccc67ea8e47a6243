"""parity.report.explain: what the HTML endpoint detail states about an explanation (pure known answers)."""

from __future__ import annotations

from typing import Any

from parity.report.explain import detail


def _read(requests: int, waits: list[float], rate: str | None) -> dict[str, Any]:
    return {
        "query": "service:web env:ec2", "window": [0, 600], "candidates": 40, "capped": False, "traces": 30,
        "dropped": 0, "requests": requests, "waits_s": waits, "rate_limit": rate, "notes": [],
    }  # fmt: skip


def _entry(reads: dict[str, Any]) -> dict[str, Any]:
    return {
        "endpoint": "GET /users/{id}",
        "available": True,
        "sentence": "+24 ms per request in postgres",
        "components": [],
        "sampling": {"statement": "From 30 old and 30 new sampled traces."},
        "reads": reads,
    }


def test_the_detail_states_the_spans_api_requests_waits_and_rate_limit_seen() -> None:
    entry = _entry(
        {
            "old": _read(2, [], "spans_search: 298 of 300 requests left, resets in 3400 s"),
            "new": _read(3, [12.0], "spans_search: 295 of 300 requests left, resets in 3380 s"),
        }
    )
    line = detail(entry)["rl"]
    assert "5 Spans API requests (old 2, new 3)" in line
    assert "waited 12 s for its rate limit" in line
    assert "spans_search: 295 of 300 requests left, resets in 3380 s" in line  # the last seen: the new side's
    assert detail(entry)["sm"] == "From 30 old and 30 new sampled traces."


def test_no_reads_no_rate_limit_line() -> None:
    assert "rl" not in detail(_entry({"old": None, "new": None}))
    assert "rl" not in detail({"endpoint": "x", "available": False, "sentence": "no explanation: x"})
    line = detail(_entry({"old": _read(1, [], None), "new": None}))["rl"]
    assert line.startswith("1 Spans API request (old 1)")
    assert "no rate-limit headers" in line
