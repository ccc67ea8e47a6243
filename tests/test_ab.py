"""``parity ab`` end to end: one Locust run replays one schedule against two real demo servers at once.

The baseline is the bundled demo day cut to four cheap endpoints and replayed as a steady 240 req/s for 8 s
(every endpoint a few hundred requests per side; the rare one oversampled). Assertions are about behaviour —
exit codes, which endpoint failed, counts against what each server received — never about speed: the targets
are services of one server process (a busy machine delays them alike), and they are judged with tolerances
(20% / 3 ms; 40% / 5 ms for the tails) that a busy machine's noise cannot cross, which the planted +30 ms on a
~10 ms endpoint still crosses many times over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import measurement_json
from parity.demo.processes import Service, fetch_stats, running_servers
from parity.judge.compare import compare
from parity.judge.completeness import UNEQUAL_SIDES, unequal_sides
from parity.judge.result import Verdict
from parity.model import (
    LABEL_REPLAY_OF,
    LABEL_SCHEDULE,
    Endpoint,
    GeneratorHealth,
    Measurement,
    SourceKind,
    fingerprint,
)
from tests.conftest import ROOT, lognormal_side, run_parity, run_replay

pytestmark = pytest.mark.e2e

BUNDLED = ROOT / "baselines" / "demo.json"
#: The endpoints replayed (cheap on the demo server: none is near a capacity limit at these rates).
ENDPOINTS = ("GET /health", "GET /api/employees/{id}", "GET /api/departments", "GET /api/leave-requests")
SLOWED = "GET /api/employees/{id}"  # ~10 ms on the old profile
ADDED_MS = 30.0
RUN_S = 8
RPS = 240
#: GET /api/departments is ~12.5% of this mix: ~30 req/s, raised to 40 req/s (load factor ~4/3).
MIN_RPS = 40.0
OVERSAMPLED = "GET /api/departments"
#: Tolerances a loaded 2-core machine's noise stays inside for two identical targets (measured beside two
#: CPU-bound processes: central metrics within ±15%; tails within ±33% when the generator was held back for
#: half a second); the planted +30 ms (×4 on a quiet machine, ×2.5 when everything is slowed) fails them all.
TOLERANT = "".join(
    f"[compare.metrics.{metric}]\ntolerance = {tolerance}\nmin_delta = {min_delta}\n"
    for metric, tolerance, min_delta in (
        ("shift", 0.2, 3.0),
        ("avg_ms", 0.2, 3.0),
        ("p50_ms", 0.2, 3.0),
        ("p95_ms", 0.4, 5.0),
        ("p99_ms", 0.4, 5.0),
    )
)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundled = measurement_json.read(BUNDLED)
    kept = tuple(e for e in bundled.endpoints if e.endpoint.key in ENDPOINTS)
    assert len(kept) == len(ENDPOINTS)
    return measurement_json.write(replace(bundled, endpoints=kept), tmp_path_factory.mktemp("ab") / "four.json")


@pytest.fixture(scope="module")
def targets() -> Iterator[list[str]]:
    """Two old demo services and a third, old with SLOWED slower by ADDED_MS — in ONE server process, so a busy
    machine that holds the process back delays every target alike (two processes can be held back unequally)."""
    with running_servers([Service("old"), Service("old"), Service("old", {SLOWED: ADDED_MS})]) as urls:
        yield urls


@pytest.fixture
def old_a(targets: list[str]) -> str:
    return targets[0]


@pytest.fixture
def old_b(targets: list[str]) -> str:
    return targets[1]


@pytest.fixture
def slowed(targets: list[str]) -> str:
    return targets[2]


def received(url: str) -> dict[str, int]:
    return dict(fetch_stats(url)["requests"])


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def ab(baseline: Path, old: str, new: str, out: Path, *extra: str, config: Path | None = None) -> Any:
    args = ["ab", str(baseline), "--old", old, "--new", new, "-t", f"{RUN_S}s", "--shape", "steady",
            "--rps", str(RPS), "--min-endpoint-rps", f"{MIN_RPS:g}", "--out", str(out), *extra]  # fmt: skip
    if config is not None:
        args += ["--config", str(config)]
    return run_parity(*args, timeout=150)


def sides(out: Path) -> tuple[Measurement, Measurement]:
    return measurement_json.read(out / "old.measurement.json"), measurement_json.read(out / "new.measurement.json")


def cpu_by_second(m: Measurement) -> dict[float, float]:
    """The generator's CPU samples by the Unix time of their interval."""
    g = m.generator
    assert g is not None
    return {g.start_s + i * g.interval_s: c for i, c in enumerate(g.cpu_percent) if c is not None}


def counts(m: Measurement) -> dict[str, int]:
    return {e.endpoint.key: e.count for e in m.endpoints}


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_identical_targets_pass_and_the_rare_endpoint_is_oversampled(
    baseline: Path, old_a: str, old_b: str, tmp_path: Path
) -> None:
    config = tmp_path / "parity.toml"
    config.write_text(TOLERANT)
    out = tmp_path / "ab"
    before = (received(old_a), received(old_b))
    done = ab(baseline, old_a, old_b, out, config=config)
    after = (received(old_a), received(old_b))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("index.html", "parity.json", "junit.xml", "summary.md", "old.measurement.json",
                 "new.measurement.json", "locust.log"):  # fmt: skip
        assert (out / name).is_file(), name
    result = json.loads((out / "parity.json").read_text())
    assert result["mode"] == "concurrent-a/b"
    assert result["verdict"] in ("pass", "marginal")
    old, new = sides(out)
    # One schedule, both targets: the same requests, each recorded as its server received it.
    assert counts(old) == counts(new) == grown(before[0], after[0]) == grown(before[1], after[1])
    assert old.pair_id == new.pair_id is not None
    assert (old.source.env, new.source.env) == ("old", "new")
    assert (old.source.target, new.source.target) == (old_a, old_b)
    assert old.labels[LABEL_REPLAY_OF] == new.labels[LABEL_REPLAY_OF] == fingerprint(measurement_json.read(baseline))
    assert old.labels[LABEL_SCHEDULE] == new.labels[LABEL_SCHEDULE]
    assert old.labels["complete"] == new.labels["complete"] == "yes"
    assert min(counts(new).values()) >= 200  # every endpoint judged on a few hundred requests
    # Oversampling: the rare endpoint was raised to MIN_RPS (~MIN_RPS x run time requests) and says so.
    rare = new.by_key()[OVERSAMPLED]
    mix = counts(measurement_json.read(baseline))
    assert rare.load_factor == pytest.approx(MIN_RPS / (RPS * mix[OVERSAMPLED] / sum(mix.values())), rel=1e-9)
    assert rare.count == pytest.approx(MIN_RPS * RUN_S, abs=4 * np.sqrt(MIN_RPS * RUN_S))
    assert all(e.load_factor == 1.0 for e in new.endpoints if e.endpoint.key != OVERSAMPLED)
    assert [x.load_factor for s in new.stages for x in s.endpoints if x.endpoint.key == OVERSAMPLED] == [
        rare.load_factor
    ]
    assert old.by_key()[OVERSAMPLED].load_factor == rare.load_factor
    assert "oversampled GET /api/departments" in (out / "locust.log").read_text()
    # Both recorders got the generator's CPU samples; sends are counted per target.
    assert old.generator is not None
    assert new.generator is not None
    old_cpu, new_cpu = cpu_by_second(old), cpu_by_second(new)
    both = old_cpu.keys() & new_cpu.keys()
    assert len(both) >= RUN_S - 1
    assert all(old_cpu[t] == new_cpu[t] for t in both)
    assert old.generator.sent == old.total_count
    assert new.generator.sent == new.total_count


@pytest.mark.alone  # judges latency measured on this machine: no other test beside it
def test_a_planted_slowdown_fails_exactly_that_endpoint(
    baseline: Path, old_a: str, slowed: str, tmp_path: Path
) -> None:
    config = tmp_path / "parity.toml"
    config.write_text(TOLERANT)
    out = tmp_path / "ab"
    done = ab(baseline, old_a, slowed, out, "--seed", "7", config=config)
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((out / "parity.json").read_text())
    verdicts = {e["endpoint"]: e["verdict"] for e in result["endpoints"]}
    assert set(verdicts) == set(ENDPOINTS)
    assert [k for k, v in verdicts.items() if v == "fail"] == [SLOWED], verdicts
    assert "parity: FAIL" in done.stdout
    slowed_old, slowed_new = (m.by_key()[SLOWED] for m in sides(out))
    assert slowed_old.count == slowed_new.count


def accounted_for(m: Measurement, got: dict[str, int]) -> None:
    """Every request ``m``'s side sent is recorded or in flight, and every one its server received (``got``) was
    recorded; a recorded request the server never got failed on the way (a timeout under load: an error)."""
    assert m.generator is not None
    assert m.generator.sent == m.total_count + m.generator.in_flight
    for e in m.endpoints:
        assert 0 <= e.count - got.get(e.endpoint.key, 0) <= (e.errors or 0), (e.endpoint.key, e.count, got)
    assert set(got) <= set(counts(m))


def test_two_processes_send_both_targets_the_same_requests(
    baseline: Path, old_a: str, old_b: str, tmp_path: Path
) -> None:
    out = tmp_path / "ab"
    before = (received(old_a), received(old_b))
    done = ab(baseline, old_a, old_b, out, "--processes", "2", "--seed", "5")
    after = (received(old_a), received(old_b))
    # The verdict is not this test's point: two identical targets on a loaded machine can differ in their tails.
    assert done.returncode in (0, 1, 3), done.stdout + done.stderr
    old, new = sides(out)
    accounted_for(old, grown(before[0], after[0]))
    accounted_for(new, grown(before[1], after[1]))
    assert old.pair_id == new.pair_id is not None
    assert old.generator is not None
    assert new.generator is not None
    assert old.generator.processes == new.generator.processes == 2
    for g in (old.generator, new.generator):  # each worker measured its scheduling lag and shipped it to the master
        assert len(g.lag_ms) == len(g.cpu_percent)
        assert any(lag is not None for lag in g.lag_ms), g.lag_ms
    assert "[old] /api/departments" in (out / "locust.log").read_text()  # the old side, named in Locust's stats
    # One schedule, both targets: the same requests (what an idle machine does) — or, when one side's sends fell
    # behind and left arrivals unsent that the other sent (a loaded machine), a pair that says so: never complete.
    differ = unequal_sides(old, new)
    if differ is None:
        assert counts(old) == counts(new)
        assert old.labels["complete"] == new.labels["complete"] == "yes" or "lost_lanes" in old.labels, old.labels
    else:
        assert old.labels["complete"] == new.labels["complete"] == "no"
        assert old.labels[UNEQUAL_SIDES] == new.labels[UNEQUAL_SIDES] == differ
        assert done.returncode != 0


def test_a_target_whose_sends_fall_behind_makes_the_pair_partial(
    baseline: Path, old_a: str, slowed: str, tmp_path: Path
) -> None:
    """One sender per target (--max-in-flight 1): the slowed target cannot take its arrivals in time and leaves
    many unsent that the other target got; the pair is labelled partial (exit 3), never complete, and judged so."""
    new_out, old_out = tmp_path / "new.json", tmp_path / "old.json"
    done = run_replay("--host", old_a, "--old-host", slowed, "--baseline", str(baseline), "-t", "3s",
                      "--shape", "steady", "--rps", "120", "--max-in-flight", "1", "--parity-out", str(new_out),
                      "--old-out", str(old_out))  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    old, new = measurement_json.read(old_out), measurement_json.read(new_out)
    assert old.generator is not None
    assert new.generator is not None
    assert old.generator.unsent > new.generator.unsent
    for m in (old, new):
        assert m.generator is not None
        assert m.generator.sent == m.total_count + m.generator.in_flight
    assert old.labels["complete"] == new.labels["complete"] == "no"
    assert old.labels[UNEQUAL_SIDES] == new.labels[UNEQUAL_SIDES] == unequal_sides(old, new)
    assert "the old and new targets were not sent the same requests" in done.stderr
    result = compare(old, new)
    assert [p.side for p in result.partial] == ["baseline", "candidate"]
    assert not result.throughput_gated


def side_sent(m: Measurement, unsent: int) -> Measurement:
    """``m`` as a replay's side that sent its requests and left ``unsent`` more unsent."""
    health = GeneratorHealth(m.window.start.timestamp(), 60.0, (20.0,), (0,), sent=m.total_count, unsent=unsent)
    return replace(m, generator=health, source=replace(m.source, kind=SourceKind.LOCUST_REPLAY))


def test_unequal_sides_of_a_pair_are_named_and_never_gate_throughput() -> None:
    """Known answer: the same latency on both sides, the candidate 6% short on one endpoint (its sends fell
    behind). The pair is named unequal; its throughput is shown, not judged (no false FAIL on rps); equal sides
    are gated as before."""
    medians = {"GET /health": 5.0, "GET /x": 20.0}
    old = side_sent(lognormal_side(medians, n=2000, pair_id="p"), unsent=0)
    short = lognormal_side(medians, n=2000, pair_id="p")
    health = Endpoint.parse("GET /health")
    short = replace(
        short, endpoints=tuple(replace(e, count=1880) if e.endpoint == health else e for e in short.endpoints)
    )
    new = side_sent(short, unsent=120)
    assert unequal_sides(old, old) is None
    assert (
        unequal_sides(old, new)
        == "old target: sent 4,000; new target: sent 3,880, unsent 120; GET /health 2,000 vs 1,880"
    )
    judged = compare(old, new)
    assert not judged.throughput_gated
    assert "were not sent the same requests" in judged.throughput_note
    rps = [m for e in judged.endpoints for m in e.metrics if m.metric == "rps"]
    assert rps
    assert all(m.verdict is not Verdict.FAIL for m in rps)
    assert compare(old, old).throughput_gated


def test_a_refused_old_host_exits_4_before_any_request(baseline: Path, old_a: str, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    before = fetch_stats(old_a)["total"]
    done = ab(baseline, "http://10.255.255.1:8080", old_a, out)
    assert done.returncode == 4, done.stdout + done.stderr
    assert fetch_stats(old_a)["total"] == before  # not even the allowed new side got a request
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("parity: refused: old target http://10.255.255.1:8080 is not allow-listed")
    assert not (out / "new.measurement.json").exists()
    assert not (out / "parity.json").exists()


def test_an_abort_rule_watches_the_old_side_too(baseline: Path, old_a: str, tmp_path: Path) -> None:
    config = tmp_path / "parity.toml"
    config.write_text("[replay]\nabort_error_ratio = 0.5\nabort_window_s = 5\n")
    out = tmp_path / "ab"
    done = ab(baseline, "http://127.0.0.1:9", old_a, out, config=config)  # nothing listens on port 9
    assert done.returncode == 4, done.stdout + done.stderr
    old, new = sides(out)
    assert old.labels["aborted"].startswith("old target http://127.0.0.1:9: error ratio")
    assert old.labels["complete"] == new.labels["complete"] == "no"
    assert all(e.errors == e.count for e in old.endpoints)  # nothing answered on the old side
    assert json.loads((out / "parity.json").read_text())["verdict"]  # judged and reported all the same


def test_bad_input_exits_2_with_one_line(baseline: Path, tmp_path: Path) -> None:
    missing = run_parity("ab", str(tmp_path / "nope.json"), "--old", "http://127.0.0.1:1", "--new",
                         "http://127.0.0.1:2", "--out", str(tmp_path / "r"))  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr == f"parity: error: {tmp_path / 'nope.json'}: no such file\n"
    no_rps = run_parity("ab", str(baseline), "--old", "http://127.0.0.1:1", "--new", "http://127.0.0.1:2",
                        "--shape", "steady", "--out", str(tmp_path / "r"), timeout=60)  # fmt: skip
    assert no_rps.returncode == 2  # caught while planning, before any process starts
    assert no_rps.stderr == "parity: error: --shape steady: steady needs a rate (--rps)\n"
    assert not (tmp_path / "r" / "locust.log").exists()
    assert "Traceback" not in no_rps.stderr
