"""Safety rails: allow-listed targets, the rate cap, abort rules — unit and end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity import measurement_json
from parity.config import load_config
from parity.demo.processes import fetch_stats, running_server
from parity.errors import BadInput
from parity.replay.rails import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Rails,
    RateCap,
    WindowStats,
    abort_reason,
    host_allowed,
    normalise_host,
    rails_from_mapping,
)
from parity.replay.recorder import Recorder
from tests.conftest import ROOT, run_replay

BASELINE = ROOT / "baselines" / "demo.json"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.3.4.5", True),
        ("http://localhost:1", True),
        ("http://[::1]:80", True),
        ("https://staging.example.com", False),
        ("https://staging.example.com:8443", True),  # listed below
        ("https://api.internal.example.org", True),  # *.internal.example.org
        ("https://internal.example.org", False),
        ("http://10.0.0.1", False),
        ("not a url", False),
    ],
)
def test_host_allow_list(url: str, allowed: bool) -> None:
    hosts = ("STAGING.example.com", "*.internal.example.org") if url != "https://staging.example.com" else ()
    assert host_allowed(url, hosts) is allowed


LISTED = ("staging.example.com", "*.example.com", "10.0.0.7", "[2001:DB8::1]", "Api.Example.NET.")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        # case and one trailing dot
        ("http://LOCALHOST.:8080", True),
        ("http://LocalHost", True),
        ("https://STAGING.Example.COM./x", True),
        ("https://api.example.net", True),  # the entry's own case and trailing dot do not matter
        ("https://api.example.net.", True),
        ("https://example.com.", False),  # *.example.com is its subdomains only
        # userinfo: the host is what follows the last @, whatever precedes it
        ("http://127.0.0.1@evil.example", False),
        ("http://127.0.0.1:80@evil.example/", False),
        ("http://user:pw@127.0.0.1:8080", True),
        ("http://evil.example#@127.0.0.1", False),
        ("http://127.0.0.1\\@evil.example/", False),
        # IPv6 literals
        ("http://[::1]:8080", True),
        ("http://[0:0:0:0:0:0:0:1]/", True),
        ("http://[::ffff:127.0.0.1]:8080", True),  # IPv4-mapped loopback
        ("http://[::ffff:10.0.0.7]", True),  # IPv4-mapped form of a listed address
        ("http://[::ffff:10.0.0.8]", False),
        ("http://[2001:db8:0::1]:443", True),  # compressed the same way as the entry
        ("http://[2001:db8::2]", False),
        ("http://[fe80::1%25eth0]/", False),  # a zone: nothing to prove
        ("http://[::1", False),  # unparsable
        # wildcard entries match whole labels only
        ("https://a.b.example.com", True),
        ("https://evil-example.com", False),
        ("https://example.com.evil.net", False),
        ("https://staging.example.com.evil.net", False),
        # numeric forms the resolver accepts: loopback only, never by the allow-list
        ("http://2130706433/", True),  # 127.0.0.1
        ("http://0x7f.1/", True),
        ("http://127.1", True),
        ("http://0177.0.0.1", True),  # octal 127
        ("http://0x7f000001", True),
        ("http://167772167/", False),  # 10.0.0.7 (listed) as one number: refused
        ("http://10.7", False),  # 10.0.0.7 again
        ("http://0127.0.0.1", False),  # octal 0127 = 87: not loopback
        ("http://0x100000000/", False),  # out of range
        ("http://4294967295", False),
        ("http://1.2.3.4.5", False),
        ("http://10.0.0.7", True),  # the listed address itself
        # no host
        ("http://", False),
        ("", False),
        ("http://:8080", False),
        ("http://127.0.0.1:notaport/", False),
    ],
)
def test_host_allow_list_normalises_hosts(url: str, allowed: bool) -> None:
    assert host_allowed(url, LISTED) is allowed


def test_normalise_host_known_answers() -> None:
    assert normalise_host("LOCALHOST.") == "localhost"
    assert normalise_host("[::FFFF:127.0.0.1]") == "127.0.0.1"
    assert normalise_host("2001:DB8:0:0::1") == "2001:db8::1"
    assert normalise_host("2130706433") == "numeric:127.0.0.1"
    assert normalise_host("0x7f.1") == "numeric:127.0.0.1"
    assert normalise_host("10.1.2") == "numeric:10.1.0.2"
    assert normalise_host("08.1.1.1") == "08.1.1.1"  # not octal: a (weird) name, matched only if listed verbatim
    assert normalise_host(" Example.COM ") == "example.com"


def test_abort_rules() -> None:
    rails = Rails(abort_error_ratio=0.05, abort_p99_ms=500, abort_window_s=10)
    assert abort_reason(WindowStats(19, 19, 9000.0), rails) is None  # too few requests to judge
    assert abort_reason(WindowStats(100, 5, 100.0), rails) is None
    reason = abort_reason(WindowStats(100, 6, 100.0), rails)
    assert reason is not None
    assert "error ratio 6.0% (6 of 100 requests) over the last 10 s" in reason
    slow = abort_reason(WindowStats(100, 0, 501.0), rails)
    assert slow is not None
    assert "p99 501 ms" in slow
    assert abort_reason(WindowStats(100, 100, None), Rails()) is None  # no rule set


def test_rate_cap_never_exceeds_the_rate_in_any_second_from_the_first_on() -> None:
    cap = RateCap(10.0)
    assert sum(cap.take(0.0) for _ in range(15)) == 10  # the first second gets 10, not 20
    assert cap.take(0.5) is False
    assert cap.take(1.0) is False  # the closed window [0, 1] already holds 10
    assert cap.take(1.001) is True
    # sends offered every 10 ms for 5 s: every one-second window holds at most 10, and the cap is used fully
    cap, sent = RateCap(10.0), []
    for i in range(500):
        t = i * 0.01
        if cap.take(t):
            sent.append(t)
    for start in [*sent, *(x * 0.005 for x in range(1000))]:
        assert sum(1 for t in sent if start <= t <= start + 1.0) <= 10, start
    assert len(sent) == 50  # 10 in each of five seconds
    fractional = RateCap(6.7)
    assert sum(fractional.take(0.0) for _ in range(10)) == 6
    slow = RateCap(0.5)
    assert slow.take(0.0) is True
    assert slow.take(1.0) is False
    assert slow.take(2.0) is False  # [0, 2] holds one: one send per 2 s
    assert slow.take(2.01) is True
    assert RateCap(0.0).take(0.0) is False
    with pytest.raises(ValueError, match="rate cap"):
        RateCap(float("nan"))


def test_rate_cap_split_among_lanes_never_exceeds_the_total() -> None:
    assert [RateCap.for_lane(20.0, lane, 3).limit for lane in range(3)] == [7, 7, 6]
    assert [RateCap.for_lane(20.9, lane, 3).limit for lane in range(3)] == [7, 7, 6]
    assert [RateCap.for_lane(2.0, lane, 4).limit for lane in range(4)] == [1, 1, 0, 0]
    assert [RateCap.for_lane(0.5, lane, 2).limit for lane in range(2)] == [1, 0]
    assert RateCap.for_lane(0.5, 0, 2).window_s == 2.0
    assert RateCap.for_lane(7.5, 0, 1).limit == 7
    closed = RateCap.for_lane(2.0, 3, 4)
    assert not any(closed.take(float(t)) for t in range(10))


def test_recorder_window_totals() -> None:
    rec = Recorder(1.0)
    for i in range(100):
        rec.record("GET", "/a", 1000.0 + i * 0.1, float(i), i % 10 == 0)
    requests, errors, p99 = rec.totals_since(1000.0)
    assert (requests, errors) == (100, 10)
    assert p99 == pytest.approx(98.0, rel=0.02)
    requests, errors, _ = rec.totals_since(1005.0)
    assert (requests, errors) == (50, 5)


def test_replay_rails_from_config(tmp_path: Path) -> None:
    path = tmp_path / "parity.toml"
    path.write_text('[replay]\nallow_hosts = ["staging.example.com"]\nmax_rps = 200\nabort_error_ratio = 0.1\n')
    assert load_config(path).rails == Rails(allow_hosts=("staging.example.com",), max_rps=200, abort_error_ratio=0.1)
    with pytest.raises(ValueError, match=r"replay\.abort_error_ratio: expected a share"):
        rails_from_mapping({"abort_error_ratio": 2})
    assert load_config(path).rails.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024
    assert rails_from_mapping({"max_response_bytes": 4096}).max_response_bytes == 4096
    for bad in (0, 1.5, True, "1MB"):
        with pytest.raises(ValueError, match=r"replay\.max_response_bytes: expected a whole number of bytes"):
            rails_from_mapping({"max_response_bytes": bad})
    path.write_text("[replay]\nmax_rsp = 3\n")
    with pytest.raises(BadInput, match=r"replay\.max_rsp: unknown key"):
        load_config(path)


@pytest.mark.e2e
def test_non_allow_listed_target_is_refused_before_any_request(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606): even a broken rail could not send anything anywhere.
    out = tmp_path / "run.json"
    done = run_replay("--host", "http://parity-target.invalid", "--baseline", str(BASELINE), "-t", "3s",
                      "--parity-out", str(out))  # fmt: skip
    assert done.returncode == 4
    assert "parity: refused: target http://parity-target.invalid is not allow-listed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.e2e
def test_abort_rule_stops_the_run_with_exit_4_and_a_partial_measurement(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with running_server("new") as url:
        done = run_replay("--host", url, "--baseline", str(BASELINE), "-t", "60s", "--abort-p99-ms", "1",
                          "--abort-window", "5", "--parity-out", str(out))  # fmt: skip
        received = fetch_stats(url)["total"]
    assert done.returncode == 4, done.stderr[-2000:]
    assert "parity: aborting the run: p99" in done.stderr
    m = measurement_json.read(out)  # a valid file
    assert m.labels["complete"] == "no"
    assert "above the 1 ms abort limit" in m.labels["aborted"]
    assert 20 <= m.total_count <= received
    assert m.window.duration_s < 30


@pytest.mark.e2e
def test_max_rps_caps_what_is_sent(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with running_server("old") as url:
        before = fetch_stats(url)["total"]
        done = run_replay("--host", url, "--baseline", str(BASELINE), "-t", "4s", "--max-rps", "5",
                          "--parity-out", str(out))  # fmt: skip
        received = fetch_stats(url)["total"] - before
    assert done.returncode == 0, done.stderr[-2000:]
    m = measurement_json.read(out)
    assert m.total_count == received
    assert received <= 5 * (4 + 1)  # 5 in any second: the run's 4 s and its 1 s of catching up at most
    assert m.generator is not None
    assert m.generator.dropped > 100
    assert m.generator.sent == m.total_count + m.generator.in_flight
    # from the first second on: never more than 5 sends in a one-second bucket (the cap holds for the dispatch
    # time; +1 for a send whose start slipped past a bucket edge on a busy machine). A full token bucket let 10
    # through in the first second.
    per_second: dict[float, int] = {}
    for e in m.endpoints:
        assert e.timeline is not None
        assert e.timeline.interval_s == 1.0
        for i, n in enumerate(e.timeline.counts):
            start = e.timeline.start_s + i * e.timeline.interval_s
            per_second[start] = per_second.get(start, 0) + (n or 0)
    assert max(per_second.values()) <= 5 + 1, per_second
