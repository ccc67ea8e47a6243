"""Validation at the edges, with known answers: the probes of issue #12 (NaN/inf/huge numbers, BOMs, deep JSON,
lone surrogates, NaN in parity.toml, a damaged history store) each end in one line and exit 2, or are read."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from parity import measurement_json
from parity.config import load_config
from parity.errors import EXIT_BAD_INPUT, BadInput
from parity.history.store import append, load
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import Verdict
from parity.sketch import LatencySketch
from parity.sources import load_measurement
from tests.conftest import lognormal_side, run_parity
from tests.test_history import NIGHT0, meta, night

BASE = lognormal_side({"GET /a": 20.0, "GET /b": 5.0}, n=400)
TEXT = measurement_json.dumps(BASE)
SKETCH = measurement_json.to_dict(BASE)["endpoints"][0]["latency"]


def _replace(old: str, new: str) -> str:
    assert old in TEXT
    return TEXT.replace(old, new, 1)


def _num(key: str) -> str:
    """The first ``"key": value`` of the file text, as written."""
    start = TEXT.index(f'"{key}": ')
    return TEXT[start : TEXT.index("\n", start)].rstrip(",")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_replace(_num("max"), '"max": 1e400'), "number 1e400 is out of range"),
        (_replace(_num("sum"), '"sum": -25'), "endpoints[0]: latency.sum: expected a number >= 0, got -25"),
        (_replace(_num("offset"), '"offset": 100000000'), "latency.offset: bins from key 100000000"),
        (_replace(_num("offset"), '"offset": -100000000'), "latency.offset: bins from key -100000000"),
        (_replace(_num("relative_accuracy"), '"relative_accuracy": 0.9999999'), "latency.relative_accuracy"),
        (_replace(_num("relative_accuracy"), '"relative_accuracy": 1e-300'), "latency.relative_accuracy"),
        (_replace(_num("max"), '"max": 5000000'), "latency.max: 5e+06 ms is not in the highest bin"),
        (_replace(_num("count"), '"count": 10'), "latency.count: 400 latencies, more than the endpoint's 10"),
        (_replace('"rate_scale": 1.0', '"rate_scale": 1e-320'), "rate_scale"),
        (_replace('"rate_scale": 1.0', '"rate_scale": NaN'), "NaN is not allowed"),
        (
            _replace(
                TEXT[TEXT.index('"start": "') : TEXT.index('"start": "') + 31], '"start": "0001-01-01T00:00:00+14:00"'
            ),
            "window: start",
        ),
        (_replace('"GET /a"', '"GET /a\\ud800"'), "endpoints[0].endpoint: lone surrogate U+D800"),
        (_replace('"labels": {}', '"labels": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}"), "nested more than 64"),
        ("[" * 200_000 + "]" * 200_000, "nested more than 64"),
        (_replace(_num("count"), '"count": 1' + "0" * 5000), "not valid JSON"),
    ],
)
def test_hostile_measurement_json_is_one_line_bad_input(text: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        measurement_json.loads(text, "side.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("side.json: ")
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 400


def test_sketch_parts_that_disagree_are_refused() -> None:
    def check(**changes: object) -> str:
        with pytest.raises(ValueError, match=r"^\w+(\[\d+\])?: ") as caught:
            LatencySketch.from_dict(SKETCH | changes)
        return str(caught.value)

    assert "sum" in check(sum=SKETCH["count"] * SKETCH["max"] * 2)  # mean above the max
    assert "min" in check(min=SKETCH["max"] * 2)
    assert "count" in check(count=SKETCH["count"] + 1)
    assert "bins[0]" in check(bins=[-1, *SKETCH["bins"][1:]])
    assert "offset" in check(offset=1.5)
    # the exact round trip still holds
    assert {"kind": "ddsketch", **LatencySketch.from_dict(SKETCH).to_dict()} == SKETCH


def test_sides_with_different_relative_accuracy_are_judged_on_one_grid() -> None:
    """The judge moves the finer sketch's bins onto the coarser grid: a mismatch is comparable, not an error."""
    coarse = measurement_json.to_dict(BASE)
    fine = lognormal_side({"GET /a": 20.0, "GET /b": 5.0}, n=400, seed=2)
    for side in (coarse,):
        for e in side["endpoints"]:
            sketch = LatencySketch(0.05)
            sketch.add_many(range(1, 401))
            e["latency"] = {"kind": "ddsketch", **sketch.to_dict()}
    result = compare(measurement_json.from_dict(coarse), fine, Policy(), names=("coarse.json", "fine.json"))
    assert result.verdict in set(Verdict)


def test_byte_order_marks_are_accepted(tmp_path: Path) -> None:
    json_path = tmp_path / "bom.json"
    json_path.write_text("\ufeff" + TEXT, "utf-8")
    assert load_measurement(json_path).total_count == BASE.total_count
    csv_path = tmp_path / "bom.csv"
    csv_path.write_text(
        "\ufefftimestamp,request_type,name,response_time_ms,response_length,status_code,exception\n"
        "1800000000,GET,/a,12,1,200,\n",
        "utf-8",
    )
    assert load_measurement(csv_path).total_count == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[compare.metrics.p95_ms]\ntolerance = nan\n",
            "compare.metrics.p95_ms.tolerance: expected a number >= 0, got nan",
        ),
        ("[compare.metrics.avg_ms]\nmin_delta = nan\n", "compare.metrics.avg_ms.min_delta"),
        ("[compare.metrics.avg_ms]\nmin_delta = inf\n", "compare.metrics.avg_ms.min_delta"),
        ("[compare]\nmax_inconclusive_share = nan\n", "compare.max_inconclusive_share"),
        ("[compare]\nalpha = nan\n", "compare.alpha"),
        ("[compare]\nslo_p95_ms = inf\n", "compare.slo_p95_ms"),
        ('[compare.endpoints."GET /a".metrics.p95_ms]\ntolerance = -inf\n', "tolerance"),
        ("[replay]\nmax_rps = inf\n", "replay.max_rps: expected a finite number > 0, got inf"),
        ("[replay]\nabort_error_ratio = nan\n", "replay.abort_error_ratio"),
        ('[nightly]\nbaseline = "b"\ntarget = "t"\nduration_s = nan\n', "nightly.duration_s: expected a finite number"),
        ('[nightly]\nbaseline = "b"\ntarget = "t"\nprocesses = 100000\n', "nightly.processes: expected at most 1024"),
        ('[nightly]\nbaseline = "b"\ntarget = "t"\nseed = -1\n', "nightly.seed"),
        (
            '[nightly]\nbaseline = "b"\ntarget = "t"\n[nightly.pull]\nservice = "s"\nenv = "e"\nwindow_hours = 1e300\n',
            "window_hours",
        ),
    ],
)
def test_non_finite_and_out_of_range_config_is_refused_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "parity.toml"
    path.write_text(toml, "utf-8")
    with pytest.raises(BadInput) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_a_damaged_history_store_is_never_read_or_written(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    figures = {f"GET /e{i}": {"p95_ms": 1.0, "avg_ms": 1.0} for i in range(10)}
    for day in range(30):
        append(store, night(figures), meta(NIGHT0), run_at=NIGHT0 + timedelta(days=day), report=None)
    with sqlite3.connect(store) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    good = store.read_bytes()
    assert pages > 10
    for page in (2, pages // 2, pages):  # an interior page, a middle one, the last one
        damaged = bytearray(good)
        damaged[(page - 1) * page_size : page * page_size] = (b"junk" * page_size)[:page_size]
        store.write_bytes(bytes(damaged))
        for action in (
            lambda: load(store),
            lambda: append(store, night(figures), meta(NIGHT0), run_at=NIGHT0, report=None),
        ):
            with pytest.raises(BadInput) as caught:
                action()
            message = str(caught.value)
            assert message.startswith(f"{store}: history store is damaged")
            assert "restore it from a backup" in message
            assert "\n" not in message
        assert store.read_bytes() == bytes(damaged)  # never written
    store.write_bytes(good)
    assert len(load(store).runs) == 30


def test_cli_hostile_inputs_one_line_exit_2(tmp_path: Path) -> None:
    """End to end: the real command line prints one line, exits 2, and no traceback."""
    good = tmp_path / "good.json"
    good.write_text(TEXT, "utf-8")
    deep = tmp_path / "deep.json"
    deep.write_text(_replace('"labels": {}', '"labels": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}"), "utf-8")
    csv = tmp_path / "inf.csv"
    csv.write_text(
        "timestamp,request_type,name,response_time_ms,response_length,status_code,exception\ninf,GET,/a,1,1,200,\n",
        "utf-8",
    )
    config = tmp_path / "parity.toml"
    config.write_text("[compare.metrics.p95_ms]\ntolerance = nan\n", "utf-8")
    for args in (
        [str(good), str(deep)],
        [str(csv), str(good)],
        [str(good), str(good), "--config", str(config)],
    ):
        done = run_parity("compare", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
        assert done.returncode == EXIT_BAD_INPUT, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("parity: error: ")
    assert not (tmp_path / "out").exists()


def test_sketch_clamps_sub_femtosecond_values_to_the_zero_bucket() -> None:
    sketch = LatencySketch()
    sketch.add(1e-15)
    sketch.add_many([1e-20, -3.0, 5.0])
    assert sketch._zero_count == 3
    assert LatencySketch.from_dict(json.loads(json.dumps(sketch.to_dict()))).count == 4
